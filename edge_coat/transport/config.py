"""Config sections of the transport (validated once, at the edge)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator


def is_loopback_endpoint(endpoint: str) -> bool:
    """Whether a ZeroMQ endpoint is reachable from this host only (tcp on a loopback address, ipc, inproc)."""
    import ipaddress

    scheme, _, rest = endpoint.partition("://")
    if scheme in ("ipc", "inproc"):
        return True
    host = rest.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # "*", an interface name or a host name: may face the network


class CurveConfig(BaseModel):
    """CurveZMQ keys. Absent (``None`` in the parent) means plain TCP: only for loopback tests."""

    model_config = ConfigDict(extra="forbid")

    secret_key_file: Path = Field(description="this side's key pair (*.key_secret from `edge-coat keys`)")
    server_public_key_file: Path | None = Field(
        default=None, description="client side: the worker's public key (*.key)"
    )
    allowed_clients_dir: Path | None = Field(
        default=None, description="worker side: folder of the public keys (*.key) of allowed clients"
    )


class LinkConfig(BaseModel):
    """Heartbeats and reconnection, shared by both ends (zguide's Paranoid Pirate pattern)."""

    model_config = ConfigDict(extra="forbid")

    heartbeat_s: float = Field(0.5, gt=0.0, le=60.0, description="seconds between heartbeats")
    liveness: int = Field(4, ge=2, le=100, description="heartbeats missed before the peer counts as gone")
    backoff_initial_s: float = Field(0.1, gt=0.0, le=60.0, description="first reconnect delay")
    backoff_max_s: float = Field(8.0, gt=0.0, le=600.0, description="reconnect delay cap (doubles up to it)")

    @model_validator(mode="after")
    def _check(self) -> "LinkConfig":
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError(
                f"backoff_max_s ({self.backoff_max_s}) < backoff_initial_s ({self.backoff_initial_s}): "
                "raise backoff_max_s or lower backoff_initial_s"
            )
        return self


class SenderConfig(BaseModel):
    """Capture side of the link."""

    model_config = ConfigDict(extra="forbid")

    endpoint: str = Field(description="worker endpoint, e.g. tcp://10.0.0.5:5555")
    buffer_s: float = Field(
        30.0, gt=0.0, le=3600.0,
        description="audio kept per stream until acknowledged, seconds; replayed on reconnect. "
        "Must exceed the worker's window length, which it holds unacknowledged",
    )
    sample_format: str = Field("s16le", pattern="^(s16le|f32le)$", description="PCM format on the wire")
    link: LinkConfig = Field(default_factory=LinkConfig, description="heartbeats and reconnection")
    curve: CurveConfig | None = Field(default=None, description="CurveZMQ keys; None = plain TCP")
    queue_chunks: int = Field(
        100_000, ge=10, le=10_000_000, description="chunks waiting for the sender thread before submit() drops the oldest"
    )


class ReceiverConfig(BaseModel):
    """Worker side of the link."""

    model_config = ConfigDict(extra="forbid")

    bind: str = Field(description="endpoint to bind, e.g. tcp://127.0.0.1:5555, or tcp://0.0.0.0:5555 with curve")
    insecure: bool = Field(
        False, description="allow a non-loopback bind without CurveZMQ: audio in clear text from any client that "
        "reaches the port (isolated test networks only; logged as a warning at start)",
    )
    max_chunk_s: float = Field(2.0, gt=0.0, le=60.0, description="largest chunk accepted, seconds (else 'oversized')")
    max_gap_s: float = Field(
        7 * 86400.0, gt=0.0, description="largest jump forward in a stream's timeline accepted, seconds (else 'forged')"
    )
    queue_chunks: int = Field(
        200_000, ge=10, le=10_000_000,
        description="chunks between the socket thread and the windowing loop; beyond it the oldest are dropped "
        "(counted, and they become reported gaps)",
    )
    ack_interval_s: float = Field(0.1, gt=0.0, le=10.0, description="how often acknowledgements are sent")
    read_interval_s: float = Field(
        0.02, ge=0.0, le=0.5,
        description="the socket thread reads waiting messages at most this often, seconds (0: as they come); "
        "between reads ZeroMQ queues them and the windowing thread runs without trading the GIL at every "
        "receive (bench/PROFILE.md, round 2). Adds at most this much latency",
    )
    read_batch: int = Field(
        5000, ge=1, le=1_000_000, description="most messages the socket thread handles in one read before it "
        "answers heartbeats and hands the batch on",
    )
    link: LinkConfig = Field(default_factory=LinkConfig, description="heartbeats and peer expiry")
    curve: CurveConfig | None = Field(default=None, description="CurveZMQ keys; None = plain TCP")

    @model_validator(mode="after")
    def _secure_by_default(self) -> "ReceiverConfig":
        if self.curve is None and not self.insecure and not is_loopback_endpoint(self.bind):
            raise ValueError(
                f"the bind address {self.bind} accepts audio from other hosts but curve is not set; set curve "
                "(keys from `edge-coat keys`), bind tcp://127.0.0.1:PORT, or set insecure: true (isolated test "
                "networks only)"
            )
        return self

    @property
    def open_to_network(self) -> bool:
        """A non-loopback bind without CurveZMQ (allowed only with ``insecure``)."""
        return self.curve is None and not is_loopback_endpoint(self.bind)
