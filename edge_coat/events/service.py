"""The gRPC event service: a thin servicer over the event hub, plus health and reflection.

``EventServer`` runs a ``grpc.aio`` server on its own event-loop thread (so the worker, tests and the
``serve`` command all drive it the same way)::

    server = EventServer(config, control=detector_set_or_LogStreamControl)
    port = server.start()        # bound port (config.listen may use port 0)
    ...
    server.stop(grace=2.0)       # health -> NOT_SERVING, subscribers told to resume elsewhere
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from concurrent.futures import Future

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

import edge_coat
from edge_coat.detectors.config import check_enrollment_request
from edge_coat.events.auth import AuthError, Principal, TokenAuth
from edge_coat.logutil import RateLimitedLog
from edge_coat.events.config import EventsConfig, check_tls_files
from edge_coat.events.control import StreamControl
from edge_coat.events.convert import encode_response, enrollment_to_pb, stream_status_to_pb
from edge_coat.events.hub import EventHub, ring_event
from edge_coat.events.log import CursorAhead, CursorExpired, EventLog
from edge_coat.v1 import events_pb2 as pb
from edge_coat.v1 import events_pb2_grpc as pb_grpc

logger = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["EventService"].full_name


class EventServicer(pb_grpc.EventServiceServicer):
    """Authenticates, applies scope, and reads from the hub/log. No state of its own."""

    def __init__(self, hub: EventHub, auth: TokenAuth, control: StreamControl | None, config: EventsConfig):
        self.hub, self.auth, self.control, self.config = hub, auth, control, config
        self.started = time.time()

    async def _principal(self, context, request=None) -> Principal:
        """The caller, checked before anything else about the request; then a request body that did
        not parse (see :func:`_safe_deserializer`) is refused as INVALID_ARGUMENT."""
        try:
            who = self.auth.authenticate(context.invocation_metadata())
        except AuthError as exc:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
        if request is MALFORMED:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the request body is not a valid message")
        return who

    # ------------------------------------------------------------------ Subscribe
    async def Subscribe(self, request, context):
        who = await self._principal(context, request)
        denied = [s for s in request.stream_ids if not who.allows(s)]
        if denied:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED,
                                f"client {who.name!r} may not see stream(s) {', '.join(sorted(denied))}")
        if not 0.0 <= request.min_score <= 1.0:  # NaN fails this too
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                f"min_score must be in [0, 1]; got {request.min_score}")
        if len(request.stream_ids) > 1000 or len(request.kinds) > 100:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                "at most 1000 stream_ids and 100 kinds per subscription")
        hub, cfg = self.hub, self.config
        filt = hub.filter_for(who, request.stream_ids, request.kinds, request.min_score)
        cursor = request.from_cursor if request.HasField("from_cursor") else hub.head
        if cursor > hub.head:
            head = await asyncio.to_thread(hub.log.head)
            if cursor > head:
                await context.abort(grpc.StatusCode.OUT_OF_RANGE, str(CursorAhead(cursor, head)))
        live = False
        last_sent = time.monotonic()
        hub.subscribers += 1
        logger.info("subscriber %s from cursor %d (streams=%s kinds=%s min_score=%.2f)", who.name, cursor,
                    sorted(filt.streams) or "*", sorted(filt.kinds) or "*", filt.min_score)
        try:
            while not hub.closing:
                revoked = self.auth.still_valid(who)
                if revoked:
                    await context.abort(grpc.StatusCode.UNAUTHENTICATED,
                                        f"{revoked}; subscription closed at cursor {cursor}")
                changed = hub.changed()
                if cursor < hub.head:
                    batch = hub.after(cursor, cfg.max_batch)
                    shared = batch is not None
                    if batch is None:
                        if live:
                            await context.abort(
                                grpc.StatusCode.RESOURCE_EXHAUSTED,
                                f"subscriber fell more than {cfg.queue_events} events behind; resume with "
                                f"from_cursor={cursor}")
                        batch = await self._replay(cursor, context)
                    else:
                        live = True
                    for i in range(0, len(batch), cfg.max_batch):
                        chunk = batch[i:i + cfg.max_batch]
                        cursor = chunk[-1].id
                        payload = hub.response(filt, chunk, shared)
                        if payload is not None:
                            yield payload  # serialized once, sent as is (see _service_handlers)
                            last_sent = time.monotonic()
                    if batch:
                        continue
                if time.monotonic() - last_sent >= cfg.heartbeat_s:
                    yield encode_response(b"", cursor, hub.head, heartbeat=True)
                    last_sent = time.monotonic()
                await changed.wait()  # set on a ring change, and periodically for heartbeats
            await context.abort(grpc.StatusCode.UNAVAILABLE,
                                f"event service shutting down; resume with from_cursor={cursor}")
        finally:
            hub.subscribers -= 1

    async def _replay(self, cursor: int, context) -> list:
        try:
            stored = await asyncio.to_thread(self.hub.log.read_after, cursor, self.config.replay_page)
        except CursorExpired as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        except CursorAhead as exc:
            await context.abort(grpc.StatusCode.OUT_OF_RANGE, str(exc))
        return [ring_event(ev) for ev in stored]

    # ------------------------------------------------------------------ status
    async def ListStreams(self, request, context):
        who = await self._principal(context, request)
        return pb.ListStreamsResponse(streams=await self._streams(who))

    async def GetStatus(self, request, context):
        """The log's head, oldest and count, over the streams the caller may see (a scoped token learns
        nothing of the others' events), and the statuses of those streams."""
        who = await self._principal(context, request)
        if who.sees_everything:
            stats = await asyncio.to_thread(self.hub.log.stats)
        else:
            stats = await asyncio.to_thread(self.hub.log.stats_for, who.allows)
        return pb.ServiceStatus(version=edge_coat.__version__,
                                head=stats["head"], oldest=stats["oldest"], events_stored=stats["events"],
                                subscribers=self.hub.subscribers, uptime_s=time.time() - self.started,
                                streams=await self._streams(who))

    async def _streams(self, who: Principal) -> list:
        if self.control is None:
            return []
        statuses = await asyncio.to_thread(self.control.list_streams)
        return [stream_status_to_pb(s) for s in statuses if who.allows(s.stream_id)]

    # ------------------------------------------------------------------ enrollment
    async def StartEnrollment(self, request, context):
        await self._may_control(request.stream_id, context, request)
        windows, seconds = request.windows or None, request.seconds or None
        try:
            check_enrollment_request(windows, seconds)
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return await self._call(context, "start_enrollment", request.stream_id, windows=windows, seconds=seconds)

    async def StopEnrollment(self, request, context):
        await self._may_control(request.stream_id, context, request)
        return await self._call(context, "stop_enrollment", request.stream_id, commit=not request.discard)

    async def GetEnrollment(self, request, context):
        who = await self._principal(context, request)
        if not who.allows(request.stream_id):
            await context.abort(grpc.StatusCode.PERMISSION_DENIED,
                                f"client {who.name!r} may not see stream {request.stream_id!r}")
        return await self._call(context, "get_enrollment", request.stream_id)

    async def _may_control(self, stream_id: str, context, request=None) -> None:
        who = await self._principal(context, request)
        if not (who.control and who.allows(stream_id)):
            await context.abort(grpc.StatusCode.PERMISSION_DENIED,
                                f"client {who.name!r} may not control enrollment of stream {stream_id!r}")

    async def _call(self, context, method: str, stream_id: str, **kwargs):
        if self.control is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "this server has no worker control attached")
        try:
            status = await asyncio.to_thread(getattr(self.control, method), stream_id, **kwargs)
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return enrollment_to_pb(status)


def _service_handlers(servicer: EventServicer) -> dict:
    """The generated method handlers, except that Subscribe sends the bytes it yields as they are.

    Subscribe yields responses serialized once per ring slice and filter (see EventHub.response) and
    shared by every subscriber at that position; a ``None`` response serializer makes gRPC pass them
    through instead of serializing a message per subscriber.
    """

    class _Collect:  # stands in for the server to read the handlers off the generated function
        def add_generic_rpc_handlers(self, _handlers) -> None:
            pass

        def add_registered_method_handlers(self, _name: str, handlers: dict) -> None:
            self.handlers = handlers

    collect = _Collect()
    pb_grpc.add_EventServiceServicer_to_server(servicer, collect)
    handlers = {name: h._replace(request_deserializer=_safe_deserializer(name, h.request_deserializer))
                for name, h in collect.handlers.items()}
    handlers["Subscribe"] = handlers["Subscribe"]._replace(response_serializer=None)
    return handlers


#: What a request body that does not parse becomes (the handler refuses it after the token check).
MALFORMED = object()
#: request bodies that did not parse, by method (the service's counters)
malformed_requests: collections.Counter = collections.Counter()


def _safe_deserializer(method: str, parse):
    """``parse`` that never raises: gRPC logs a full traceback for every body its deserializer fails on,
    before any token is checked, so an unauthenticated client could flood the log. A body that does not
    parse becomes :data:`MALFORMED`, is counted, and is logged at most once a minute."""
    limiter = RateLimitedLog(logger, 60.0)

    def deserialize(data: bytes):
        try:
            return parse(data)
        except Exception as exc:  # noqa: BLE001 - DecodeError and whatever protobuf raises on junk
            malformed_requests[method] += 1
            limiter.warning("%s: %d request body(ies) that did not parse so far (last: %d bytes, %s)", method,
                            malformed_requests[method], len(data or b""), type(exc).__name__)
            return MALFORMED

    return deserialize


def server_credentials(config: EventsConfig) -> grpc.ServerCredentials | None:
    """TLS (or mTLS when client_ca_file is set) credentials from PEM files; None in insecure mode."""
    tls = config.tls
    if tls is None:
        return None
    check_tls_files(tls)
    key, cert = tls.key_file.read_bytes(), tls.cert_file.read_bytes()
    client_ca = tls.client_ca_file.read_bytes() if tls.client_ca_file else None
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=client_ca,
                                       require_client_auth=client_ca is not None)


class EventServer:
    """The event service on a background event loop. Thread-safe start/stop/notify."""

    def __init__(self, config: EventsConfig, control: StreamControl | None = None, log: EventLog | None = None):
        self.config = config
        self.control = control
        self.log = log or EventLog(config.db_path, config.retention, config.synchronous, config.file_mode)
        self.auth = TokenAuth.from_file(config.tokens_file)
        self.port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server = None
        self._hub: EventHub | None = None
        self._health = None
        self._follower = None

    def start(self, timeout: float = 30.0) -> int:
        """Bind and serve; return the bound port. Raises what binding raised."""
        self.config.warn_if_insecure()
        ready: Future = Future()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, args=(ready,), name="events-grpc", daemon=True)
        self._thread.start()
        self.port = ready.result(timeout)
        return self.port

    def _run_loop(self, ready: Future) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._start(ready))
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            return
        self._loop.run_forever()
        self._loop.close()

    async def _start(self, ready: Future) -> None:
        self._hub = EventHub(self.log, self.config)
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        handlers = _service_handlers(EventServicer(self._hub, self.auth, self.control, self.config))
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
        server.add_registered_method_handlers(SERVICE_NAME, handlers)
        self._health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
        creds = server_credentials(self.config)
        port = (server.add_secure_port(self.config.listen, creds) if creds
                else server.add_insecure_port(self.config.listen))
        if port == 0:
            raise OSError(f"could not bind the event service to {self.config.listen}")
        await server.start()
        for name in ("", SERVICE_NAME):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self._server = server
        self._follower = asyncio.create_task(self._hub.run())
        logger.info("event service listening on port %d (log %s)", port, self.log.path)
        ready.set_result(port)

    @property
    def subscribers(self) -> int:
        """Open Subscribe calls right now (0 before start)."""
        return self._hub.subscribers if self._hub is not None else 0

    def followed(self) -> dict[tuple[str, str], int]:
        """(kind, phase) -> events this server read from the log since it started (empty before start)."""
        return dict(self._hub.followed) if self._hub is not None else {}

    def drain(self, head: int, timeout: float) -> bool:
        """Wait until the fan-out has read the log up to event id ``head`` (so live subscribers get
        every event written so far) or ``timeout`` seconds pass; True when it got there."""
        if self._hub is None:
            return False
        self.notify()
        deadline = time.monotonic() + timeout
        while self._hub.head < head:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def notify(self) -> None:
        """Tell the follower new events were appended in this process (lower latency than polling)."""
        if self._hub is not None:
            self._hub.notify_threadsafe()

    def stop(self, grace: float = 2.0) -> None:
        """Graceful shutdown: NOT_SERVING broadcast, subscribers closed with a resume hint, then stop."""
        if self._loop is None or self._server is None:
            return
        asyncio.run_coroutine_threadsafe(self._stop(grace), self._loop).result(grace + 30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._server = None

    async def _stop(self, grace: float) -> None:
        await self._health.enter_graceful_shutdown()
        self._hub.close()
        await self._server.stop(grace)
        self._follower.cancel()
