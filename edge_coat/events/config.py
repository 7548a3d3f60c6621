"""Configuration of the event log and service (the ``events:`` section of the site config)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

logger = logging.getLogger(__name__)


class RetentionConfig(BaseModel):
    """What the durable log keeps. Whichever limit is hit first drops the oldest events."""

    model_config = ConfigDict(extra="forbid")

    max_age_s: float = Field(30 * 86400.0, gt=0, description="drop events stored longer ago than this (seconds)")
    max_events: int = Field(5_000_000, ge=1, description="keep at most this many events")
    max_bytes: int = Field(2 * 1024**3, ge=1024, description="keep at most about this many bytes of event payload")
    prune_interval_s: float = Field(30.0, gt=0, le=86400, description="how often retention is enforced")


class TlsConfig(BaseModel):
    """Server TLS from PEM files; set ``client_ca_file`` for mutual TLS."""

    model_config = ConfigDict(extra="forbid")

    cert_file: Path = Field(description="server certificate chain (PEM)")
    key_file: Path = Field(description="server private key (PEM)")
    client_ca_file: Path | None = Field(None, description="CA that signs client certificates: enables mutual TLS")


class EventsConfig(BaseModel):
    """The ``events:`` section: durable log, gRPC service, security."""

    model_config = ConfigDict(extra="forbid")

    db_path: Path = Field(Path("events.db"), description="SQLite event log (WAL mode); shared by worker and serve")
    synchronous: Literal["NORMAL", "FULL"] = Field(
        "NORMAL", description="SQLite fsync policy: NORMAL survives process crashes, FULL also power loss"
    )
    listen: str = Field("127.0.0.1:50051", min_length=3, description="gRPC listen address host:port (port 0: any)")
    retention: RetentionConfig = Field(default_factory=RetentionConfig, description="retention of the log")
    tls: TlsConfig | None = Field(None, description="TLS/mTLS certificates; required unless insecure")
    tokens_file: Path | None = Field(None, description="YAML/JSON file of client tokens and their stream scopes")
    group_readable: bool = Field(
        False, description="event log files mode 0640 (the owner's group may read them, e.g. a backup user) "
        "instead of 0600",
    )
    insecure: bool = Field(
        False, description="allow plaintext gRPC (and no tokens when tokens_file is unset): tests and demos only"
    )
    queue_events: int = Field(
        4096, ge=16, le=1_000_000,
        description="how far (in events) a live subscriber may fall behind before it is closed to resume later",
    )
    max_batch: int = Field(256, ge=1, le=10_000, description="most events in one Subscribe message")
    heartbeat_s: float = Field(5.0, gt=0, le=3600, description="heartbeat period on an idle subscription")
    poll_interval_s: float = Field(
        0.02, gt=0, le=10, description="how often serve checks the log for events written by another process"
    )
    replay_page: int = Field(1000, ge=1, le=100_000, description="events read from the log per replay query")

    @model_validator(mode="after")
    def _security(self) -> "EventsConfig":
        if not self.insecure:
            if self.tls is None:
                raise ValueError("events.tls (cert_file, key_file) is required; set events.insecure: true to "
                                 "serve plaintext (tests and demos only)")
            if self.tokens_file is None:
                raise ValueError("events.tokens_file is required with TLS; set events.insecure: true to allow "
                                 "unauthenticated clients (tests and demos only)")
        return self

    @property
    def file_mode(self) -> int:
        """Mode of the event log file and its -wal/-shm files."""
        return 0o640 if self.group_readable else 0o600

    def warn_if_insecure(self) -> None:
        if self.insecure and self.tls is None:
            logger.warning("events service is in INSECURE mode: plaintext gRPC on %s", self.listen)
        if self.insecure and self.tokens_file is None:
            logger.warning("events service is in INSECURE mode: no tokens, every client sees every stream")


def check_tls_files(tls) -> None:
    """Raise ValueError naming the file and the fix when the certificate, key or client CA cannot be used
    (gRPC itself only says "Failed to bind to address")."""
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(tls.cert_file, tls.key_file)
    except FileNotFoundError as exc:
        raise ValueError(f"events.tls: {exc.filename} does not exist; fix the path") from None
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc) or "key values mismatch" in str(exc):
            raise ValueError(f"events.tls: the key {tls.key_file} does not belong to the certificate "
                             f"{tls.cert_file}; give the key made with that certificate (`edge-coat certs` "
                             "writes both)") from None
        raise ValueError(f"events.tls: cannot use the certificate {tls.cert_file} with the key {tls.key_file} "
                         f"({exc.reason or exc}); both must be PEM files, the key unencrypted") from None
    if tls.client_ca_file is not None:
        try:
            ctx.load_verify_locations(cafile=str(tls.client_ca_file))
        except (ssl.SSLError, OSError) as exc:
            raise ValueError(f"events.tls.client_ca_file: {tls.client_ca_file} is not a usable PEM CA "
                             f"certificate ({exc}); give the CA that signs the client certificates") from None
