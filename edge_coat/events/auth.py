"""Per-client bearer tokens scoped to stream ids, with expiry, revocation and reload while running.

Tokens file (YAML or JSON)::

    clients:
      - name: agent-desk
        token: "k8s0...long random"        # or token_sha256: "<hex digest>" to keep no secret on disk
        streams: ["call-*"]                 # fnmatch patterns; "*" for every stream
        control: false                      # may start/stop enrollment (default false)
        ack: false                          # may acknowledge alerts in the web console (default false)
        expires: 2027-06-30T00:00:00Z       # optional: refused from then on (ISO 8601 or Unix seconds)
        revoked: false                      # optional: true refuses the token (as does deleting the entry)

Clients send ``authorization: Bearer <token>`` metadata. Health and reflection stay open (they
reveal no events); every EventService method checks the token.

Changes to the file apply without a restart: :meth:`TokenAuth.authenticate` looks at the file's
modification time and size at most every ``check_interval_s`` (a ``stat``), and
:meth:`TokenAuth.reload` reads it at once (``edge-coat serve`` calls it on SIGHUP). A file that no longer
validates is not applied: the tokens in force stay, the error is logged. Long-lived calls (Subscribe)
ask :meth:`TokenAuth.still_valid` as they go, so a revoked or expired token loses its stream within a
heartbeat. The web console uses this same module, so both surfaces honour the same file.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

logger = logging.getLogger(__name__)


class ClientEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128, description="who this client is (shown in logs)")
    token: str | None = Field(None, min_length=16, description="the bearer token (at least 16 characters)")
    token_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$", description="sha256 hex of the token")
    streams: list[str] = Field(min_length=1, description="stream id patterns this client may see ('*': all)")
    control: bool = Field(False, description="may control enrollment on its streams")
    ack: bool = Field(False, description="may acknowledge alerts on its streams (web console)")
    expires: AwareDatetime | None = Field(
        None, description="refused from this time on (ISO 8601 with a time zone, e.g. 2027-06-30T00:00:00Z)"
    )
    revoked: bool = Field(False, description="refused (as if the entry were deleted), kept for the record")

    @model_validator(mode="after")
    def _one_token(self) -> "ClientEntry":
        if (self.token is None) == (self.token_sha256 is None):
            raise ValueError(f"client {self.name!r}: give exactly one of token or token_sha256")
        return self


class TokensFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    clients: list[ClientEntry] = Field(default_factory=list, description="authorised clients")


@dataclass(frozen=True)
class Principal:
    """An authenticated caller and what it may see.

    ``expires_ts`` (Unix seconds, None: never) and ``key`` (the token's digest) do not take part in
    equality: two principals with the same scope share the event hub's filters."""

    name: str
    streams: tuple[str, ...]
    control: bool
    expires_ts: float | None = field(default=None, compare=False)
    key: bytes = field(default=b"", compare=False, repr=False)
    ack: bool = False  # may acknowledge alerts on its streams (web console)

    def allows(self, stream_id: str) -> bool:
        return any(p == "*" or fnmatch.fnmatchcase(stream_id, p) for p in self.streams)

    @property
    def sees_everything(self) -> bool:
        return "*" in self.streams


ANONYMOUS = Principal("anonymous", ("*",), True, ack=True)


class AuthError(Exception):
    """Authentication failed (-> UNAUTHENTICATED)."""


def _read_tokens(path: Path) -> list[ClientEntry]:
    """The entries of a tokens file; ValueError naming the file and the bad field."""
    try:
        text = Path(path).read_text()
        if Path(path).suffix == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text) or {}
        return TokensFile.model_validate(data).clients
    except OSError as exc:
        raise ValueError(f"cannot read the tokens file {path}: {exc.strerror or exc}") from None
    except Exception as exc:  # noqa: BLE001 - YAML/JSON syntax or pydantic: the error names the bad field
        raise ValueError(f"invalid tokens file {path}: {exc}") from None


def _table(clients: list[ClientEntry]) -> dict[bytes, Principal]:
    out: dict[bytes, Principal] = {}
    for c in clients:
        if c.revoked:
            continue
        digest = bytes.fromhex(c.token_sha256) if c.token_sha256 else hashlib.sha256(c.token.encode()).digest()
        expires = c.expires.timestamp() if isinstance(c.expires, datetime) else None
        out[digest] = Principal(c.name, tuple(c.streams), c.control, expires, digest, c.ack)
    return out


class TokenAuth:
    """Maps bearer tokens to principals. ``TokenAuth(None)`` lets everyone in (insecure mode only).

    ``TokenAuth.from_file(path)`` follows the file (see the module docstring); ``clock`` is the time
    source for expiry (tests)."""

    def __init__(self, clients: list[ClientEntry] | None, *, path: Path | None = None,
                 check_interval_s: float = 1.0, clock=time.time) -> None:
        self.open = clients is None
        self.path = Path(path) if path is not None else None
        self.check_interval_s = check_interval_s
        self.clock = clock
        self._by_digest = _table(clients or [])
        self._lock = threading.Lock()
        self._signature = self._stat()
        self._next_check = time.monotonic() + check_interval_s
        self.reloads = 0
        self.reload_errors = 0
        self.last_error = ""

    @classmethod
    def from_file(cls, path: Path | None, check_interval_s: float = 1.0) -> "TokenAuth":
        if path is None:
            return cls(None)
        return cls(_read_tokens(Path(path)), path=Path(path), check_interval_s=check_interval_s)

    # ------------------------------------------------------------------ reload
    def _stat(self) -> tuple | None:
        if self.path is None:
            return None
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def reload(self) -> bool:
        """Read the tokens file again now; True when the new tokens apply. On an invalid or missing file
        the tokens in force stay (fail closed would lock every client out over a typo) and the error
        is logged and kept in ``last_error``."""
        if self.path is None:
            return False
        signature = self._stat()
        try:
            table = _table(_read_tokens(self.path))
        except ValueError as exc:
            with self._lock:
                self._signature = signature
                self.reload_errors += 1
                self.last_error = str(exc)
            logger.error("tokens file not reloaded, the previous tokens stay in force: %s", exc)
            return False
        with self._lock:
            removed = len(set(self._by_digest) - set(table))
            self._by_digest, self._signature = table, signature
            self.reloads += 1
            self.last_error = ""
        logger.info("tokens file %s reloaded: %d client(s), %d token(s) no longer valid", self.path, len(table),
                    removed)
        return True

    def maybe_reload(self) -> None:
        """Reload when the file changed (looked at, at most every ``check_interval_s``)."""
        if self.path is None or time.monotonic() < self._next_check:
            return
        self._next_check = time.monotonic() + self.check_interval_s
        if self._stat() != self._signature:
            self.reload()

    # ------------------------------------------------------------------ checks
    def authenticate(self, metadata) -> Principal:
        """Principal for gRPC invocation metadata; AuthError when missing, unknown, revoked or expired."""
        if self.open:
            return ANONYMOUS
        value = None
        for key, val in metadata or ():
            if key == "authorization":
                value = val
        if not value:
            raise AuthError("no credentials: send metadata 'authorization: Bearer <token>'")
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise AuthError("authorization metadata must be 'Bearer <token>'")
        return self.authenticate_token(token.strip())

    def authenticate_token(self, token: str) -> Principal:
        """Principal for a bare token (the web console's sessions); AuthError as :meth:`authenticate`."""
        if self.open:
            return ANONYMOUS
        self.maybe_reload()
        digest = hashlib.sha256(token.encode()).digest()
        found = None
        for known, principal in self._by_digest.items():
            if hmac.compare_digest(known, digest):
                found = principal
        if found is None:
            raise AuthError("unknown or revoked token")
        if found.expires_ts is not None and self.clock() >= found.expires_ts:
            raise AuthError(f"token of {found.name!r} expired at "
                            f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(found.expires_ts))}")
        return found

    def still_valid(self, principal: Principal) -> str:
        """'' while ``principal`` may go on (its token is still in the file, unexpired, with the same
        scope), else why not: for long-lived calls that authenticated earlier."""
        if self.open or principal is ANONYMOUS:
            return ""
        self.maybe_reload()
        current = self._by_digest.get(principal.key)
        if current is None:
            return f"the token of {principal.name!r} was revoked"
        if current != principal or current.expires_ts != principal.expires_ts:
            return f"the scope of {principal.name!r} changed; reconnect"
        if current.expires_ts is not None and self.clock() >= current.expires_ts:
            return f"the token of {principal.name!r} expired"
        return ""
