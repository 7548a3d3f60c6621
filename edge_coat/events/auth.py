"""Per-client bearer tokens scoped to stream ids.

Tokens file (YAML or JSON)::

    clients:
      - name: agent-desk
        token: "k8s0...long random"        # or token_sha256: "<hex digest>" to keep no secret on disk
        streams: ["call-*"]                 # fnmatch patterns; "*" for every stream
        control: false                      # may start/stop enrollment (default false)
        ack: false                          # may acknowledge alerts in the web console (default false)

Clients send ``authorization: Bearer <token>`` metadata. Health and reflection stay open (they
reveal no events); every EventService method checks the token.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

logger = logging.getLogger(__name__)


class ClientEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128, description="who this client is (shown in logs)")
    token: str | None = Field(None, min_length=16, description="the bearer token (at least 16 characters)")
    token_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$", description="sha256 hex of the token")
    streams: list[str] = Field(min_length=1, description="stream id patterns this client may see ('*': all)")
    control: bool = Field(False, description="may control enrollment on its streams")
    ack: bool = Field(False, description="may acknowledge alerts on its streams (web console)")

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
    """An authenticated caller and what it may see."""

    name: str
    streams: tuple[str, ...]
    control: bool
    ack: bool = False

    def allows(self, stream_id: str) -> bool:
        return any(p == "*" or fnmatch.fnmatchcase(stream_id, p) for p in self.streams)


ANONYMOUS = Principal("anonymous", ("*",), True, True)


class AuthError(Exception):
    """Authentication failed (-> UNAUTHENTICATED)."""


class TokenAuth:
    """Maps bearer tokens to principals. ``TokenAuth(None)`` lets everyone in (insecure mode only)."""

    def __init__(self, clients: list[ClientEntry] | None) -> None:
        self.open = clients is None
        self._by_digest: dict[bytes, Principal] = {}
        for c in clients or []:
            digest = bytes.fromhex(c.token_sha256) if c.token_sha256 else hashlib.sha256(c.token.encode()).digest()
            self._by_digest[digest] = Principal(c.name, tuple(c.streams), c.control, c.ack)

    @classmethod
    def from_file(cls, path: Path | None) -> "TokenAuth":
        if path is None:
            return cls(None)
        text = Path(path).read_text()
        if Path(path).suffix == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text) or {}
        try:
            return cls(TokensFile.model_validate(data).clients)
        except Exception as exc:  # pydantic's error names the bad field; add the file
            raise ValueError(f"invalid tokens file {path}: {exc}") from exc

    def authenticate(self, metadata) -> Principal:
        """Principal for gRPC invocation metadata; AuthError when missing or unknown."""
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
        digest = hashlib.sha256(token.strip().encode()).digest()
        for known, principal in self._by_digest.items():
            if hmac.compare_digest(known, digest):
                return principal
        raise AuthError("unknown token")
