"""A local certificate authority and TLS certificates for an air-gapped site (``edge-coat certs``)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from pathlib import Path


def _crypto():
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("edge-coat certs needs the 'cryptography' package: pip install cryptography") from exc
    return x509, hashes, serialization, ec, ExtendedKeyUsageOID, NameOID


def _write_key(path: Path, key) -> None:
    _, _, serialization, *_ = _crypto()
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # keys are never world-readable
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _write_cert(path: Path, cert) -> None:
    _, _, serialization, *_ = _crypto()
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _load(out: Path, name: str):
    x509, _, serialization, *_ = _crypto()
    cert = x509.load_pem_x509_certificate((out / f"{name}.pem").read_bytes())
    key = serialization.load_pem_private_key((out / f"{name}-key.pem").read_bytes(), password=None)
    return cert, key


def create_ca(out: Path, name: str = "edge-coat local CA", days: int = 3650) -> Path:
    """Write ca.pem and ca-key.pem (EC P-256) into ``out``; return the certificate path."""
    x509, hashes, _, ec, _, NameOID = _crypto()
    out.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False),
                           critical=True)
            .sign(key, hashes.SHA256()))
    _write_key(out / "ca-key.pem", key)
    _write_cert(out / "ca.pem", cert)
    return out / "ca.pem"


def issue(out: Path, name: str, *, server: bool, hosts: tuple[str, ...] = (), days: int = 825) -> Path:
    """Issue ``<name>.pem`` / ``<name>-key.pem`` signed by the CA in ``out`` (server or client usage)."""
    x509, hashes, _, ec, EKU, NameOID = _crypto()
    ca_cert, ca_key = _load(out, "ca")
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
               .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([EKU.SERVER_AUTH if server else EKU.CLIENT_AUTH]),
                              critical=False))
    if server:
        sans = []
        for h in hosts or ("localhost", "127.0.0.1"):
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(h)))
            except ValueError:
                sans.append(x509.DNSName(h))
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    _write_key(out / f"{name}-key.pem", key)
    _write_cert(out / f"{name}.pem", cert)
    return out / f"{name}.pem"


def create_site(out: Path, hosts: tuple[str, ...] = ("localhost", "127.0.0.1"),
                clients: tuple[str, ...] = ("client",)) -> dict[str, Path]:
    """CA (kept if present), server certificate for ``hosts`` and one client certificate per name."""
    out = Path(out)
    if not (out / "ca.pem").exists():
        create_ca(out)
    paths = {"ca": out / "ca.pem", "server": issue(out, "server", server=True, hosts=hosts)}
    for c in clients:
        paths[c] = issue(out, c, server=False)
    return paths
