"""CurveZMQ keys and the ZAP authenticator that admits only known client keys.

`create_keypair` wraps ``zmq.auth.create_certificates`` (key files in the ZeroMQ certificate
format). `CountingAuthenticator` is pyzmq's `ThreadAuthenticator` with a counter of denials, so
the worker can publish how many unauthorized clients knocked.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from edge_coat.transport.config import CurveConfig

log = logging.getLogger(__name__)

#: ZAP domain set on the worker's socket.
ZAP_DOMAIN = "edge-coat"


def create_keypair(directory: Path, name: str) -> tuple[Path, Path]:
    """Write ``NAME.key`` (public) and ``NAME.key_secret`` into `directory`; returns both paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    public, secret = zmq.auth.create_certificates(str(directory), name)
    Path(secret).chmod(0o600)
    return Path(public), Path(secret)


def load_keypair(path: Path) -> tuple[bytes, bytes]:
    """(public, secret) from a ``*.key_secret`` file; clear error when it holds no secret key."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"expected a key file made by `edge-coat keys`, but {path} does not exist")
    public, secret = zmq.auth.load_certificate(str(path))
    if secret is None:
        raise ValueError(f"expected a secret key file (*.key_secret), got a public-only key file: {path}")
    return public, secret


def load_public(path: Path) -> bytes:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"expected a public key file (*.key), but {path} does not exist")
    public, _ = zmq.auth.load_certificate(str(path))
    return public


class CountingAuthenticator(ThreadAuthenticator):
    """ZAP handler in a thread that counts accepted and denied handshakes."""

    def __init__(self, context: zmq.Context):
        super().__init__(context, log=logging.getLogger(__name__ + ".zap"))
        self._lock = threading.Lock()
        self.denied = 0
        self.accepted = 0

    def _send_zap_reply(self, request_id, status_code, status_text, user_id="anonymous"):
        with self._lock:
            if status_code == b"200":
                self.accepted += 1
            else:
                self.denied += 1
                log.warning("rejected a client: %s", status_text.decode("utf-8", "replace"))
        super()._send_zap_reply(request_id, status_code, status_text, user_id)


def secure_server(sock: zmq.Socket, cfg: CurveConfig, context: zmq.Context) -> CountingAuthenticator:
    """Make `sock` a CurveZMQ server that admits only the keys in ``cfg.allowed_clients_dir``."""
    if cfg.allowed_clients_dir is None or not Path(cfg.allowed_clients_dir).is_dir():
        raise ValueError(f"expected allowed_clients_dir to be a folder of client *.key files, got {cfg.allowed_clients_dir}")
    auth = CountingAuthenticator(context)
    auth.start()
    auth.configure_curve(domain=ZAP_DOMAIN, location=str(cfg.allowed_clients_dir))
    public, secret = load_keypair(cfg.secret_key_file)
    sock.curve_publickey = public
    sock.curve_secretkey = secret
    sock.curve_server = True
    sock.zap_domain = ZAP_DOMAIN.encode()
    return auth


def secure_client(sock: zmq.Socket, cfg: CurveConfig) -> None:
    """Make `sock` a CurveZMQ client of the worker whose public key is ``cfg.server_public_key_file``."""
    if cfg.server_public_key_file is None:
        raise ValueError("expected server_public_key_file (the worker's *.key) for a CurveZMQ client, got None")
    public, secret = load_keypair(cfg.secret_key_file)
    sock.curve_publickey = public
    sock.curve_secretkey = secret
    sock.curve_serverkey = load_public(cfg.server_public_key_file)
