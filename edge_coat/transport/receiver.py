"""Worker side of the link: the ROUTER socket thread.

The thread owns the socket and does only cheap work: receive, validate the wire format
(`wire.decode`), append accepted audio to a bounded in-memory queue, and answer clients (welcome,
heartbeats, acknowledgements). The windowing loop only reads that queue, so a slow consumer can
never stall the socket. When the queue is full the OLDEST chunk is dropped and counted: dropping
old audio keeps latency bounded, and the stream's sequence/timeline jump makes the windowing loop
report it as a gap of exact length (nothing vanishes silently). Blocking the socket instead
would let the clients' replay buffers overflow, which loses audio just the same but later.

Every received message lands in exactly one counter of ``stats()["messages"]``, so a test can
check that everything sent was accounted for.

Acknowledgements are cumulative per (stream, sender epoch) and are set by the consumer with
`ack`/`ack_many` once it no longer needs a chunk (after windowing), so a client replays, after a
worker restart, everything the dead worker had not finished with. They are sent in one message
per client every ``ack_interval_s``, and again to a client that says hello (it reconnected, and
may have missed them).

Speed: the loop receives the frames of each message itself (see `_recv_batch`), decodes the
header without touching the samples, and counts accepted audio in a plain integer: at 2,000
streams this thread handles 20,000 messages a second (bench/PROFILE.md). It reads in batches
(``read_batch`` messages at most, at most every ``read_interval_s``) and hands each batch to the
queue in one operation; between reads ZeroMQ's own I/O thread queues what arrives.
"""

from __future__ import annotations

import collections
import logging
import threading
import time

import zmq
from zmq.utils.monitor import recv_monitor_message

from edge_coat.messages import SAMPLE_RATE, is_stream_id
from edge_coat.transport import wire
from edge_coat.transport.auth import CountingAuthenticator, secure_server
from edge_coat.transport.config import ReceiverConfig
from edge_coat.v1 import audio_pb2 as pb

log = logging.getLogger(__name__)

_HANDSHAKE_EVENTS = {
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "handshake_failed",
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "handshake_failed_protocol",
    zmq.EVENT_HANDSHAKE_FAILED_AUTH: "handshake_failed_auth",
    zmq.EVENT_HANDSHAKE_SUCCEEDED: "handshakes",
    zmq.EVENT_DISCONNECTED: "disconnects",
}


class _Peer:
    __slots__ = ("client_id", "sender_epoch", "last_seen", "streams")

    def __init__(self, client_id: str, sender_epoch: int, now: float):
        self.client_id = client_id
        self.sender_epoch = sender_epoch
        self.last_seen = now
        self.streams: set[str] = set()


class Receiver:
    """Binds a ROUTER, validates traffic and hands accepted `wire.WireAudio` to `drain`."""

    def __init__(self, cfg: ReceiverConfig, context: zmq.Context | None = None):
        self.cfg = cfg
        self.epoch = time.time_ns()
        # A private context: ZAP authentication is per context, and two workers in one process
        # (tests) must not share one authenticator.
        self._ctx = context or zmq.Context()
        self._own_ctx = context is None
        self._max_frames = int(cfg.max_chunk_s * SAMPLE_RATE)
        self._queue: collections.deque[wire.WireAudio | pb.StreamResume] = collections.deque()
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._acks: dict[str, tuple[int, int]] = {}
        self._acks_dirty: set[str] = set()
        self._ack_lock = threading.Lock()
        self.peers: dict[bytes, _Peer] = {}
        self._stream_peer: dict[str, bytes] = {}
        self.messages = collections.Counter()
        self._n_audio = 0  # accepted audio messages (the hot counter: a plain int, folded into stats())
        self.link = collections.Counter()
        self._auth: CountingAuthenticator | None = None
        self._sock = self._ctx.socket(zmq.ROUTER)
        self._sock.linger = 0
        self._sock.rcvhwm = 200_000
        self._sock.sndhwm = 200_000
        # Hard cap enforced by libzmq (protects memory from a huge frame); anything between the
        # configured chunk limit and this cap is counted as "oversized" by `wire.decode`.
        self._sock.maxmsgsize = 4 * self._max_frames * 4 + 65536
        if cfg.curve is not None:
            self._auth = secure_server(self._sock, cfg.curve, self._ctx)
        self._monitor = self._sock.get_monitor_socket(sum(_HANDSHAKE_EVENTS))
        self._sock.bind(cfg.bind)
        self.endpoint: str = self._sock.getsockopt_string(zmq.LAST_ENDPOINT)
        if cfg.open_to_network:
            log.warning("INSECURE: the worker accepts audio in clear text on %s from any host that reaches it "
                        "(no CurveZMQ; receiver.insecure is set)", self.endpoint)
        self._thread: threading.Thread | None = None

    # ---- consumer side ------------------------------------------------------------------------
    def drain(self, timeout: float) -> list[wire.WireAudio | pb.StreamResume]:
        """All queued chunks (and clients' stream resume points), in arrival order; waits up to
        `timeout` s when there are none."""
        if not self._queue:
            self._ready.wait(timeout)
        self._ready.clear()
        out = []
        q = self._queue
        while q:
            out.append(q.popleft())
        return out

    def ack(self, stream_id: str, sender_epoch: int, seq: int) -> None:
        """Tell the client owning `stream_id` that chunks up to `seq` are no longer needed
        (seq < 0: nothing yet, ignored)."""
        self.ack_many([(stream_id, sender_epoch, seq)])

    def ack_many(self, acks: list[tuple[str, int, int]]) -> None:
        """`ack` for many (stream id, sender epoch, seq) at once, under one lock."""
        with self._ack_lock:
            for sid, epoch, seq in acks:
                if seq >= 0:
                    self._acks[sid] = (epoch, seq)
                    self._acks_dirty.add(sid)

    def queue_depth(self) -> int:
        return len(self._queue)

    def stats(self) -> dict:
        messages = dict(self.messages)
        if self._n_audio:
            messages["audio"] = self._n_audio
        out = {
            "messages": messages,
            "link": dict(self.link),
            "peers": len(self.peers),
            "ingest_queue": len(self._queue),
        }
        if self._auth is not None:
            out["link"]["zap_denied"] = self._auth.denied
            out["link"]["zap_accepted"] = self._auth.accepted
        return out

    # ---- lifecycle ----------------------------------------------------------------------------
    def start(self) -> "Receiver":
        self._thread = threading.Thread(target=self._run, name="receiver", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
        self._monitor.close(linger=0)
        self._sock.close(linger=0)
        if self._auth is not None:
            self._auth.stop()
        if self._own_ctx:
            self._ctx.term()

    # ---- the socket thread --------------------------------------------------------------------
    def _send(self, identity: bytes, frames: list[bytes]) -> None:
        try:
            self._sock.send_multipart([identity, *frames], flags=zmq.NOBLOCK)
        except zmq.ZMQError:
            self.link["send_dropped"] += 1  # peer gone or its queue full: it will reconnect

    def _handle_decoded(self, identity: bytes, decoded, now: float, batch: list) -> None:
        """One message that passed `wire.decode_parts` (a `WireAudio` or a control `pb.Frame`) from
        the peer `identity`. What the windowing loop must see goes to `batch`, in arrival order."""
        peer = self.peers.get(identity)
        if decoded.__class__ is wire.WireAudio:
            if peer is None:
                # Audio before Hello (e.g. the worker restarted under a connected client): drop it
                # and welcome the client, which then says hello and replays from its last ack.
                self.messages["unannounced"] += 1
                self._send(identity, self._welcome)
                return
            peer.last_seen = now
            batch.append(decoded)
            self._n_audio += 1
            sid = decoded.stream_id
            if self._stream_peer.get(sid) != identity:
                self._stream_peer[sid] = identity
                peer.streams.add(sid)
            return
        kind = decoded.WhichOneof("body")
        if kind == "hello":
            if peer is None:
                log.info("client %s connected (epoch %d)", decoded.hello.client_id, decoded.hello.sender_epoch)
            self.peers[identity] = peer = _Peer(decoded.hello.client_id, decoded.hello.sender_epoch, now)
            with self._ack_lock:
                for r in decoded.hello.streams:
                    if is_stream_id(r.stream_id):
                        # in the same queue as the audio, so the windowing loop sees it before the replay
                        batch.append(r)
                        if r.stream_id in self._acks:  # it may have missed our last acknowledgement
                            self._stream_peer[r.stream_id] = identity
                            peer.streams.add(r.stream_id)
                            self._acks_dirty.add(r.stream_id)
            self._send(identity, self._welcome)
            self.messages["hello"] += 1
        elif kind == "heartbeat":
            self.messages["heartbeat"] += 1
            if peer is not None:
                peer.last_seen = now
            else:
                self._send(identity, self._welcome)
        else:
            self.messages["unexpected_kind"] += 1

    def _count_bad(self, reason: str, why: object) -> None:
        n = self.messages[reason] = self.messages[reason] + 1
        if n in (1, 100) or n % 10_000 == 0:
            log.warning("dropped a message (%d so far of this kind): %s", n, why)

    def _recv_batch(self, now: float, limit: int) -> None:
        """Receive and handle up to `limit` waiting messages, without blocking.

        Header and payload are taken as `zmq.Frame` (``copy=False``): their ``more`` flag is read
        in C, where ``socket.get(RCVMORE)`` costs a Python enum conversion per call, and the
        payload's memory is viewed by numpy, not copied, until the ring buffer takes it.

        Batching: accepted chunks collect in a local list that joins the ingest queue in one
        `_enqueue` (one queue operation and one bound check per batch). A chunk from a known
        client whose stream is already routed to it, the common case, is handled right here,
        not through `_handle_decoded` (a method call and four lookups less per message).
        """
        recv = self._sock.recv
        NOBLOCK = zmq.NOBLOCK  # noqa: N806 - local alias in the hot loop
        decode, WireAudio, WireError = wire.decode_parts, wire.WireAudio, wire.WireError  # noqa: N806
        max_frames, peers, stream_peer = self._max_frames, self.peers, self._stream_peer
        batch: list = []
        append = batch.append
        n_audio = 0
        try:
            for _ in range(limit):
                try:
                    identity = recv(NOBLOCK)
                except zmq.Again:
                    break
                # The rest of a multipart message is already here (ZeroMQ delivers it whole), and a
                # ROUTER always puts at least one frame of the peer's after the identity.
                head = recv(NOBLOCK, copy=False)
                payload = None
                if head.more:
                    payload = recv(NOBLOCK, copy=False)
                    if payload.more:
                        k, more = 2, True
                        while more:
                            more = recv(NOBLOCK, copy=False).more
                            k += 1
                        self._count_bad("malformed", f"expected 1 or 2 frames, got {k}")
                        continue
                try:
                    try:
                        decoded = decode(head.bytes, payload, max_frames)
                    except WireError as exc:
                        self._count_bad(exc.reason, exc)
                        continue
                    if decoded.__class__ is WireAudio and stream_peer.get(decoded.stream_id) == identity:
                        peer = peers.get(identity)
                        if peer is not None:
                            peer.last_seen = now
                            append(decoded)
                            n_audio += 1
                            continue
                    self._handle_decoded(identity, decoded, now, batch)
                except Exception:  # noqa: BLE001 - a bug on one message must not stop the socket thread
                    self.messages["internal_error"] += 1
                    log.exception("failed on a message (header of %d bytes)", len(head))
        finally:
            self._n_audio += n_audio
            self._enqueue(batch)

    def _enqueue(self, batch: list) -> None:
        """Append a batch to the ingest queue; beyond ``queue_chunks`` the OLDEST are dropped (counted)."""
        if not batch:
            return
        q = self._queue
        q.extend(batch)
        excess = len(q) - self.cfg.queue_chunks
        if excess > 0:
            dropped = 0
            try:
                for _ in range(excess):
                    q.popleft()
                    dropped += 1
            except IndexError:  # the windowing loop drained it meanwhile
                pass
            if dropped:
                self.messages["queue_dropped"] += dropped

    def _send_acks(self) -> None:
        with self._ack_lock:
            dirty, self._acks_dirty = self._acks_dirty, set()
            acks = {sid: self._acks[sid] for sid in dirty}
        by_peer: dict[bytes, list[pb.StreamAck]] = collections.defaultdict(list)
        for sid, (epoch, seq) in acks.items():
            identity = self._stream_peer.get(sid)
            if identity is not None and identity in self.peers:
                by_peer[identity].append(pb.StreamAck(stream_id=sid, sender_epoch=epoch, sequence=seq))
        for identity, items in by_peer.items():
            self._send(identity, wire.encode_control(ack=pb.Ack(worker_epoch=self.epoch, streams=items)))

    def _heartbeat(self, now: float) -> None:
        expiry = self.cfg.link.heartbeat_s * self.cfg.link.liveness
        for identity, peer in list(self.peers.items()):
            if now - peer.last_seen > expiry:
                log.warning("client %s silent for %.1f s: forgotten", peer.client_id, now - peer.last_seen)
                del self.peers[identity]
                self.link["peers_expired"] += 1
                for sid in peer.streams:
                    if self._stream_peer.get(sid) == identity:
                        del self._stream_peer[sid]
            else:
                self._send(identity, self._welcome)

    def _on_monitor(self) -> None:
        while True:
            try:
                event = recv_monitor_message(self._monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            name = _HANDSHAKE_EVENTS.get(event["event"])
            if name is not None:
                self.link[name] += 1
                if name.startswith("handshake_failed"):
                    log.warning("a client failed the CurveZMQ handshake (%s)", name)

    def _run(self) -> None:
        self._welcome = wire.encode_control(welcome=pb.Welcome(worker_epoch=self.epoch))
        poller = zmq.Poller()
        poller.register(self._sock, zmq.POLLIN)
        poller.register(self._monitor, zmq.POLLIN)
        hb = self.cfg.link.heartbeat_s
        next_hb = next_ack = 0.0
        tick_ms = int(1000 * min(hb, self.cfg.ack_interval_s) / 2) + 1
        sock = self._sock
        pace = self.cfg.read_interval_s
        stop = self._stop
        try:
            while not stop.is_set():
                events = dict(poller.poll(tick_ms))
                now = time.monotonic()
                if sock in events:
                    self._recv_batch(now, self.cfg.read_batch)
                    if self._queue:
                        self._ready.set()
                if self._monitor in events:
                    self._on_monitor()
                if now >= next_ack:
                    self._send_acks()
                    next_ack = now + self.cfg.ack_interval_s
                if now >= next_hb:
                    self._heartbeat(now)
                    next_hb = now + hb
                if pace and sock in events:
                    # Read in paced batches (see ReceiverConfig.read_interval_s): ZeroMQ's I/O thread
                    # queues what arrives meanwhile, and the windowing thread has the interpreter
                    # to itself instead of trading the GIL with this thread at every recv call.
                    rest = now + pace - time.monotonic()
                    if rest > 0:
                        stop.wait(rest)
        except Exception:
            log.exception("receiver thread failed: peers=%d queue=%d counters=%s",
                          len(self.peers), len(self._queue), dict(self.messages))
            raise
