"""The console's HTTP(S) server: static pages, a JSON API and one server-sent-event stream per page.

Why the standard library's ``ThreadingHTTPServer`` and not a web framework: the console is a handful
of routes for a few operators' browsers on a site with no internet; the stdlib server adds no
dependency to the air-gapped bundle, and a thread per open page (a live page holds one SSE
connection) is cheap at that scale. TLS wraps each connection in its own thread, so a slow handshake
never blocks ``accept``. Every response carries a strict Content-Security-Policy (``'self'`` only:
no inline script or style, no third-party origin; the chart library is served from this package).

Routes (``/api/*`` answers JSON; 401 without a valid session or bearer token):

=====================================  ==========================================================
GET  /  and /static/...                the page and its assets (no secrets; the page logs in)
POST /api/login  {"token"}             sets the HttpOnly session cookie; answers the session
POST /api/logout
GET  /api/session                      who you are, what you may do, the CSRF token
GET  /api/streams                      one tile per visible stream
GET  /api/streams/ID                   the tile plus the enrollment status
GET  /api/streams/ID/series?since=TS   timeline points (per window) since TS
POST /api/streams/ID/enrollment        {"windows": N}: start (re)enrollment (``control`` scope)
GET  /api/events?stream=&kind=&since=&until=&before=&limit=   the durable log, newest first, paged
POST /api/events/ID/ack {"note"}       acknowledge: an ``ack`` event of its own in the log (``ack`` scope)
GET  /api/live?from=CURSOR&series=ID   SSE: ``events`` (id: the cursor, so a reconnect resumes with
                                       Last-Event-ID), ``streams`` (tiles), ``points`` (of ``series``)
GET  /healthz                          "ok" (no authentication; reveals nothing)
=====================================  ==========================================================

POSTs with the session cookie need the ``X-CSRF-Token`` header; a POST whose ``Origin`` is not this
console is refused whatever it carries. Nothing secret goes in a URL, and request logs carry the
method and path only (never the query string or the body).
"""

from __future__ import annotations

import http.cookies
import json
import logging
import mimetypes
import ssl
import threading
import time
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from edge_coat.console.config import ConsoleConfig
from edge_coat.console.feed import Feed
from edge_coat.console.series import SeriesReader
from edge_coat.console.sessions import Session, Sessions
from edge_coat.console.views import enrollment_json, event_json, tile
from edge_coat.events.auth import ANONYMOUS, AuthError, Principal, TokenAuth
from edge_coat.events.config import EventsConfig
from edge_coat.events.log import EventLog
from edge_coat.logutil import RateLimitedLog
from edge_coat.messages import EventRecord, StreamStatus

logger = logging.getLogger(__name__)
_REFUSED = RateLimitedLog(logger)  # refused logins come from outside: counted, logged once a minute

STATIC = Path(__file__).resolve().parent / "static"
COOKIE = "edge_coat_session"
MAX_BODY = 64 * 1024
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
LOGIN_DELAY_S = 0.5  # every refused login waits this long before its answer
ACK_KIND = "ack"
NOTE_MAX = 500


class HttpError(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class ConsoleServer:
    """Use::

        console = ConsoleServer(cfg.console, cfg.events, control=..., auth=event_server.auth)
        port = console.start()
        ...
        console.stop()
    """

    def __init__(self, config: ConsoleConfig, events: EventsConfig, control=None, auth: TokenAuth | None = None,
                 on_append=None) -> None:
        self.config, self.events = config, events
        self.control = control
        self.auth = auth if auth is not None else TokenAuth.from_file(events.tokens_file)
        self.on_append = on_append  # e.g. EventServer.notify: the gRPC fan-out reads an ack at once
        self.sessions = Sessions(self.auth, config.session_ttl_s)
        self.refused = 0  # logins refused since start
        self.tls = events.tls is not None
        self.port: int | None = None
        self.log: EventLog | None = None
        self.series: SeriesReader | None = None
        self.feed: Feed | None = None
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._ssl: ssl.SSLContext | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> int:
        """Bind, start the feed and serve on a background thread; return the bound port."""
        missing = [p for p in (STATIC / "index.html", STATIC / "vendor" / "uplot" / "uPlot.iife.min.js")
                   if not p.is_file()]
        if missing:
            raise RuntimeError(f"console assets missing ({', '.join(map(str, missing))}): reinstall edge-coat "
                               "or run scripts/fetch_ui_assets.sh")
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.load_cert_chain(str(self.events.tls.cert_file), str(self.events.tls.key_file))
            self._ssl = ctx
        host, _, port = self.config.listen.rpartition(":")
        host = host.strip("[]")
        self.log = EventLog(self.events.db_path, self.events.retention, self.events.synchronous)
        self.series = SeriesReader(self.events.db_path)
        self.feed = Feed(self.log, self.series, self.control, self.config).start()
        handler = type("Handler", (_Handler,), {"console": self})
        try:
            self._httpd = _Server((host, int(port)), handler)
        except OSError:
            self._close_stores()
            raise
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="console-http", daemon=True)
        self._thread.start()
        logger.info("console on %s://%s:%d/", self.scheme, host or "0.0.0.0", self.port)
        return self.port

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def stop(self) -> None:
        if self._httpd is None:
            return
        self.feed.close()  # open SSE streams see `closing` and end
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5.0)
        self._httpd = None
        self._close_stores()

    def _close_stores(self) -> None:
        if self.feed is not None:
            self.feed.close()
        for store in (self.series, self.log):
            if store is not None:
                store.close()

    # ------------------------------------------------------------------ actions
    def acknowledge(self, who: Principal, event_id: int, note: str) -> dict:
        stored = self.log.read_after(event_id - 1, 1) if event_id > 0 else []
        if not stored or stored[0].id != event_id or not who.allows(stored[0].record.stream_id):
            raise HttpError(HTTPStatus.NOT_FOUND, f"no event {event_id} you may see")
        r = stored[0].record
        if r.kind == ACK_KIND:
            raise HttpError(HTTPStatus.BAD_REQUEST, "an acknowledgement cannot be acknowledged")
        note = " ".join(note.split())[:NOTE_MAX]
        text = f"{r.stream_id}: {r.kind} {r.label} (event {event_id}) acknowledged by {who.name}"
        record = EventRecord(stream_id=r.stream_id, kind=ACK_KIND, phase="update", episode_id=r.episode_id,
                             label=r.label, score=r.score, window_start_ts=r.window_start_ts,
                             window_end_ts=r.window_end_ts, text=text + (f": {note}" if note else ""),
                             evidence={"acknowledges": {"event_id": event_id, "kind": r.kind, "phase": r.phase,
                                                        "episode_id": r.episode_id},
                                       "by": who.name, "note": note, "acknowledged_ts": time.time()})
        ack = self.log.append(record)
        logger.info("event %d (%s %s on %s) acknowledged by %s as event %d", event_id, r.kind, r.phase,
                    r.stream_id, who.name, ack.id)
        if self.on_append is not None:
            self.on_append()
        self.feed.poke()
        return event_json(ack)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


class _Handler(BaseHTTPRequestHandler):
    console: ConsoleServer  # set on the per-server subclass
    protocol_version = "HTTP/1.1"
    server_version = "edge-coat-console"
    sys_version = ""
    timeout = 30  # seconds a request may take to arrive (and an SSE write to drain)

    # ------------------------------------------------------------------ plumbing
    def setup(self) -> None:
        ctx = self.console._ssl
        self.handshake_failed = False
        if ctx is not None:
            self.request.settimeout(self.timeout)
            try:
                self.request = ctx.wrap_socket(self.request, server_side=True)
            except (ssl.SSLError, OSError) as exc:  # plaintext or a client that gave up: nothing to answer
                logger.debug("console TLS handshake with %s failed: %s", self.client_address[0], exc)
                self.handshake_failed = True
        super().setup()

    def handle(self) -> None:
        if self.handshake_failed:
            return
        try:
            super().handle()
        except (ssl.SSLError, ConnectionError, TimeoutError) as exc:
            logger.debug("console connection from %s ended: %s", self.client_address[0], exc)

    def log_message(self, fmt: str, *args) -> None:  # no query strings, bodies or headers in logs
        logger.debug("%s %s", self.client_address[0], fmt % args)

    def log_request(self, code="-", size="-") -> None:
        path = urllib.parse.urlsplit(self.path).path
        logger.debug("%s %s %s %s", self.client_address[0], self.command, path, code)

    def _headers(self, status: HTTPStatus, ctype: str, length: int | None, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        if self.console.tls:
            self.send_header("Strict-Transport-Security", "max-age=31536000")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()

    def _json(self, payload, status: HTTPStatus = HTTPStatus.OK, extra: dict | None = None) -> None:
        body = json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
        self._headers(status, "application/json", len(body), {"Cache-Control": "no-store", **(extra or {})})
        self.wfile.write(body)

    def _error(self, status: HTTPStatus, message: str) -> None:
        self._json({"error": message}, status)

    def _body(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"request body over {MAX_BODY} bytes")
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return {}
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise HttpError(HTTPStatus.BAD_REQUEST, f"expected a JSON object: {exc}") from None
        if not isinstance(data, dict):
            raise HttpError(HTTPStatus.BAD_REQUEST, "expected a JSON object")
        return data

    def _cookie(self) -> str | None:
        raw = self.headers.get("Cookie")
        if not raw:
            return None
        jar = http.cookies.SimpleCookie()
        try:
            jar.load(raw)
        except http.cookies.CookieError:
            return None
        morsel = jar.get(self._cookie_name())
        return morsel.value if morsel else None

    def _cookie_name(self) -> str:
        return f"__Host-{COOKIE}" if self.console.tls else COOKIE

    def _set_cookie(self, value: str, max_age: int | None) -> str:
        parts = [f"{self._cookie_name()}={value}", "Path=/", "HttpOnly", "SameSite=Strict"]
        if self.console.tls:
            parts.append("Secure")
        if max_age is not None:
            parts.append(f"Max-Age={max_age}")
        return "; ".join(parts)

    # ------------------------------------------------------------------ authentication
    def _caller(self, state_changing: bool) -> tuple[Principal, Session | None]:
        """The caller: a bearer token in the Authorization header, else the session cookie (with the
        CSRF header on state-changing requests), else the anonymous principal of an open service."""
        sessions = self.console.sessions
        header = self.headers.get("Authorization")
        if header:
            try:
                return sessions.auth.authenticate([("authorization", header)]), None
            except AuthError as exc:
                raise HttpError(HTTPStatus.UNAUTHORIZED, str(exc)) from None
        session = sessions.resolve(self._cookie())
        if session is not None:
            if state_changing and not session.csrf_ok(self.headers.get("X-CSRF-Token")):
                raise HttpError(HTTPStatus.FORBIDDEN, "missing or wrong X-CSRF-Token header")
            return session.principal, session
        if sessions.open and not state_changing:
            return ANONYMOUS, None
        raise HttpError(HTTPStatus.UNAUTHORIZED, "log in with a token (or send 'Authorization: Bearer <token>')")

    def _same_origin(self) -> None:
        origin = self.headers.get("Origin")
        if origin is None:  # not a browser's cross-site request (browsers send Origin on every POST)
            return
        host = self.headers.get("Host", "")
        if origin != f"{self.console.scheme}://{host}":
            raise HttpError(HTTPStatus.FORBIDDEN, "cross-origin request refused")

    # ------------------------------------------------------------------ dispatch
    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_HEAD(self) -> None:
        self._error(HTTPStatus.METHOD_NOT_ALLOWED, "HEAD is not supported")

    def _dispatch(self, method: str) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
        parts = [urllib.parse.unquote(p) for p in url.path.split("/") if p]
        try:
            if method == "POST":
                self._same_origin()
                self._post(parts, self._body())
            else:
                self._get(parts, query)
        except HttpError as exc:
            self._error(exc.status, exc.message)
        except (ConnectionError, TimeoutError, ssl.SSLError):
            self.close_connection = True
        except Exception:  # noqa: BLE001 - one request's bug must not take the console down
            logger.exception("console: %s %s failed", method, url.path)
            try:
                self._error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error (see the service log)")
            except OSError:
                self.close_connection = True

    def _get(self, parts: list[str], query: dict) -> None:
        c = self.console
        if not parts or parts == ["index.html"]:
            return self._static("index.html")
        if parts[0] == "static" and len(parts) > 1:
            return self._static("/".join(parts[1:]))
        if parts == ["healthz"]:
            return self._json({"ok": True})
        if parts == ["favicon.ico"]:
            return self._static("favicon.svg")
        if parts[0] != "api":
            raise HttpError(HTTPStatus.NOT_FOUND, "no such page")
        who, session = self._caller(state_changing=False)
        route = parts[1:]
        if route == ["session"]:
            if session is None and c.sessions.open:  # an open service: a session only for its CSRF token
                session = c.sessions.login(None)
                return self._json(self._session_json(who, session),
                                  extra={"Set-Cookie": self._set_cookie(session.id, None)})
            return self._json(self._session_json(who, session))
        if route == ["streams"]:
            return self._json({"streams": c.feed.visible_tiles(who.allows), "head": c.feed.head,
                               "server_time": time.time()})
        if len(route) >= 2 and route[0] == "streams":
            sid = route[1]
            if not who.allows(sid):
                raise HttpError(HTTPStatus.NOT_FOUND, f"no stream {sid!r} you may see")
            if len(route) == 2:
                return self._json(self._stream(sid))
            if route[2:] == ["series"]:
                since = _float(query.get("since"), time.time() - c.config.timeline_s)
                points = c.series.stream(sid, since)
                return self._json({"stream_id": sid, "points": [p.as_json() for p in points],
                                   "point_head": c.feed.point_head})
        if route == ["events"]:
            return self._json(self._events(who, query))
        if route == ["live"]:
            return self._live(who, session, query)
        raise HttpError(HTTPStatus.NOT_FOUND, "no such API route")

    def _post(self, parts: list[str], body: dict) -> None:
        c = self.console
        route = parts[1:] if parts[:1] == ["api"] else None
        if route == ["login"]:
            token = body.get("token")
            if not isinstance(token, str) and not c.sessions.open:
                raise HttpError(HTTPStatus.BAD_REQUEST, "expected {\"token\": \"...\"}")
            try:
                session = c.sessions.login(token if isinstance(token, str) else None)
            except AuthError as exc:
                c.refused += 1
                _REFUSED.warning("console: login refused from %s: %s", self.client_address[0], exc)
                time.sleep(LOGIN_DELAY_S)  # a guessing client waits (this thread only)
                raise HttpError(HTTPStatus.UNAUTHORIZED, "token not accepted") from None
            logger.info("console: %s logged in from %s", session.principal.name, self.client_address[0])
            return self._json(self._session_json(session.principal, session),
                              extra={"Set-Cookie": self._set_cookie(session.id, None)})
        if route == ["logout"]:
            sid = self._cookie()
            if sid:
                c.sessions.logout(sid)
            return self._json({"ok": True}, extra={"Set-Cookie": self._set_cookie("", 0)})
        if route is None:
            raise HttpError(HTTPStatus.NOT_FOUND, "no such API route")
        who, _ = self._caller(state_changing=True)
        if len(route) == 3 and route[0] == "streams" and route[2] == "enrollment":
            return self._json(self._enroll(who, route[1], body))
        if len(route) == 3 and route[0] == "events" and route[2] == "ack":
            if not route[1].isdigit():
                raise HttpError(HTTPStatus.NOT_FOUND, "event ids are numbers")
            if not who.ack:
                raise HttpError(HTTPStatus.FORBIDDEN, f"client {who.name!r} may not acknowledge alerts "
                                "(needs `ack: true` in the tokens file)")
            note = body.get("note", "")
            return self._json(c.acknowledge(who, int(route[1]), note if isinstance(note, str) else ""))
        raise HttpError(HTTPStatus.NOT_FOUND, "no such API route")

    # ------------------------------------------------------------------ API bodies
    def _session_json(self, who: Principal, session: Session | None) -> dict:
        cfg = self.console.config
        return {"name": who.name, "streams": list(who.streams), "control": who.control, "ack": who.ack,
                "csrf": session.csrf if session is not None else None, "open": self.console.sessions.open,
                "timeline_s": cfg.timeline_s, "page_events": cfg.page_events, "refresh_s": cfg.refresh_s}

    def _stream(self, sid: str) -> dict:
        c = self.console
        statuses = [t for t in c.feed.tiles if t["stream_id"] == sid]
        if statuses:
            out = dict(statuses[0])
        else:
            out = tile(StreamStatus(stream_id=sid), c.feed.latest.get(sid), time.time(), c.config.stale_after_s)
        if c.control is not None:
            try:
                out["enrollment"] = enrollment_json(c.control.get_enrollment(sid))
            except ValueError:
                pass
        return out

    def _enroll(self, who: Principal, sid: str, body: dict) -> dict:
        c = self.console
        if not who.allows(sid):
            raise HttpError(HTTPStatus.NOT_FOUND, f"no stream {sid!r} you may see")
        if not who.control:
            raise HttpError(HTTPStatus.FORBIDDEN, f"client {who.name!r} may not control enrollment "
                            "(needs `control: true` in the tokens file)")
        if c.control is None:
            raise HttpError(HTTPStatus.NOT_IMPLEMENTED, "this console has no worker control attached")
        windows = body.get("windows")
        if windows is not None and (not isinstance(windows, int) or isinstance(windows, bool)
                                    or not 1 <= windows <= 1_000_000):
            raise HttpError(HTTPStatus.BAD_REQUEST, f"windows must be a whole number from 1 to 1000000; got {windows!r}")
        try:
            status = c.control.start_enrollment(sid, windows=windows)
        except ValueError as exc:
            raise HttpError(HTTPStatus.BAD_REQUEST, str(exc)) from None
        logger.info("console: %s started enrollment of %s (windows=%s)", who.name, sid, windows)
        c.feed.poke()
        return enrollment_json(status)

    def _events(self, who: Principal, query: dict) -> dict:
        c = self.console
        limit = int(min(max(_float(query.get("limit"), c.config.page_events), 1), 1000))
        before = int(_float(query.get("before"), 0)) or None
        streams = [s for s in (query.get("stream") or "").split(",") if s]
        kinds = [k for k in (query.get("kind") or "").split(",") if k]
        events, next_before = c.log.page(before, limit, stream_ids=streams, kinds=kinds,
                                         since_ts=_float(query.get("since"), None),
                                         until_ts=_float(query.get("until"), None), allow=who.allows)
        out = [event_json(e) for e in events]
        episodes = sorted({e["episode_id"] for e in out if e["kind"] != ACK_KIND and e["episode_id"]})
        acks: dict[str, list] = {}
        if episodes:
            found, _ = c.log.page(None, 1000, kinds=[ACK_KIND], episode_ids=episodes, allow=who.allows)
            for a in found:
                acks.setdefault(a.record.episode_id, []).append(
                    {"id": a.id, "by": a.record.evidence.get("by", ""), "note": a.record.evidence.get("note", ""),
                     "event_id": (a.record.evidence.get("acknowledges") or {}).get("event_id")})
        return {"events": out, "next_before": next_before, "head": c.feed.head, "acks": acks}

    # ------------------------------------------------------------------ SSE
    def _live(self, who: Principal, session: Session | None, query: dict) -> None:
        c = self.console
        feed = c.feed
        last = self.headers.get("Last-Event-ID") or query.get("from")
        cursor = int(_float(last, feed.head))
        cursor = max(0, min(cursor, feed.head)) if cursor >= 0 else feed.head
        series = query.get("series") or None
        if series is not None and not who.allows(series):
            raise HttpError(HTTPStatus.NOT_FOUND, f"no stream {series!r} you may see")
        point_id = int(_float(query.get("points_from"), feed.point_head))
        self._headers(HTTPStatus.OK, "text/event-stream", None,
                      {"Cache-Control": "no-store", "Connection": "close", "X-Accel-Buffering": "no"})
        self.close_connection = True
        self.wfile.write(b"retry: 2000\n\n")
        tiles_sent = -1
        last_write = time.monotonic()
        while not feed.closing:
            generation = feed.generation  # read before the rings, so a change made meanwhile wakes the wait
            if session is not None:
                if c.sessions.resolve(session.id) is None:  # logged out, expired or the token revoked
                    self.wfile.write(b"event: logout\ndata: {}\n\n")
                    return
                who = session.principal  # re-authenticated: a narrowed scope applies at once
            elif c.auth.still_valid(who):  # a bearer token revoked, expired or narrowed since the call began
                self.wfile.write(b"event: logout\ndata: {}\n\n")
                return
            chunks = []
            for _ in range(20):  # at most 20 x 500 events per wake-up; the rest on the next turn
                events, new_cursor = feed.events_after(cursor, who.allows)
                if new_cursor == cursor:
                    break
                data = f"event: events\ndata: {_dumps(events)}\n" if events else ""
                chunks.append(f"id: {new_cursor}\n{data}\n")  # an id alone still moves Last-Event-ID
                cursor = new_cursor
            if series is not None:
                points, point_id = feed.points_after(point_id, series)
                if points:
                    chunks.append(f"event: points\ndata: {_dumps(points)}\n\n")
            if tiles_sent != feed.tiles_version:
                tiles_sent = feed.tiles_version
                chunks.append(f"event: streams\ndata: {_dumps(feed.visible_tiles(who.allows))}\n\n")
            if chunks:
                self.wfile.write("".join(chunks).encode())
                self.wfile.flush()
                last_write = time.monotonic()
            elif time.monotonic() - last_write > 15:
                self.wfile.write(b": keepalive\n\n")
                self.wfile.flush()
                last_write = time.monotonic()
            if len(chunks) < 20:
                feed.wait(generation, 15.0)

    def _static(self, name: str) -> None:
        path = (STATIC / name).resolve()
        if STATIC not in path.parents or not path.is_file():
            raise HttpError(HTTPStatus.NOT_FOUND, "no such file")
        body = path.read_bytes()
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if ctype.startswith("text/") or ctype in ("application/javascript",):
            ctype += "; charset=utf-8"
        self._headers(HTTPStatus.OK, ctype, len(body), {"Cache-Control": "no-cache"})
        self.wfile.write(body)


def _float(value, default):
    if value is None or value == "":
        return default
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise HttpError(HTTPStatus.BAD_REQUEST, f"expected a number, got {value!r}") from None
    if out != out or out in (float("inf"), float("-inf")):
        raise HttpError(HTTPStatus.BAD_REQUEST, f"expected a finite number, got {value!r}")
    return out


def _dumps(payload) -> str:
    return json.dumps(payload, separators=(",", ":"), allow_nan=False)
