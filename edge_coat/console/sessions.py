"""Console logins: the gRPC side's bearer tokens, exchanged once for an HttpOnly session cookie.

A browser cannot put an ``Authorization`` header on a page load or an ``EventSource``, and a token in
a URL ends up in histories, proxies and logs. So the login form posts the token once; the console
checks it with the event service's :class:`~edge_coat.events.auth.TokenAuth` (the same clients, the
same stream scopes) and answers with a random session id in an HttpOnly, SameSite=Strict cookie
(Secure under TLS). The token stays in this process's memory only, and every request
re-authenticates it, so a token the tokens file no longer accepts (revoked, expired, reloaded) ends
its sessions at their next request (TokenAuth re-reads a changed tokens file by itself).

State-changing requests made with the cookie must carry the session's CSRF token in the
``X-CSRF-Token`` header (the page reads it from ``/api/session``); requests that carry the bearer
token themselves (scripts) need none, since a browser never adds that header on its own.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field

from edge_coat.events.auth import ANONYMOUS, AuthError, Principal, TokenAuth

#: most sessions kept at once (the oldest idle one is dropped beyond it)
MAX_SESSIONS = 10_000


@dataclass
class Session:
    id: str
    csrf: str
    token: str | None  # None for the anonymous session of an open (insecure) service
    principal: Principal
    last_seen: float = field(default_factory=time.monotonic)

    def csrf_ok(self, value: str | None) -> bool:
        return bool(value) and hmac.compare_digest(self.csrf.encode(), value.encode())


class Sessions:
    """Session ids -> principals, with an idle timeout. Thread-safe."""

    def __init__(self, auth: TokenAuth, ttl_s: float) -> None:
        self.auth = auth
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._by_id: dict[str, Session] = {}

    @property
    def open(self) -> bool:
        """No tokens file: everyone is the anonymous principal (insecure mode, tests and demos)."""
        return self.auth.open

    def login(self, token: str | None) -> Session:
        """A new session for ``token`` (AuthError when the token is unknown or missing)."""
        if self.auth.open:
            principal, token = ANONYMOUS, None
        else:
            if not token or not token.strip():
                raise AuthError("no token given")
            token = token.strip()
            principal = self.auth.authenticate_token(token)
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), token, principal)
        with self._lock:
            if len(self._by_id) >= MAX_SESSIONS:
                oldest = min(self._by_id.values(), key=lambda s: s.last_seen)
                del self._by_id[oldest.id]
            self._by_id[session.id] = session
        return session

    def resolve(self, session_id: str | None) -> Session | None:
        """The live session of this id, re-authenticated; None when unknown, idle too long or revoked."""
        if not session_id:
            return None
        now = time.monotonic()
        with self._lock:
            session = self._by_id.get(session_id)
            if session is None:
                return None
            if now - session.last_seen > self.ttl_s:
                del self._by_id[session_id]
                return None
        if session.token is not None:
            try:
                session.principal = self.auth.authenticate_token(session.token)
            except AuthError:
                self.logout(session_id)
                return None
        elif not self.auth.open:
            self.logout(session_id)
            return None
        session.last_seen = now
        return session

    def logout(self, session_id: str) -> None:
        with self._lock:
            self._by_id.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._by_id)
