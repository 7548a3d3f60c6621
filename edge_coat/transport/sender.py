"""Capture side of the link: a DEALER that streams chunks of many streams to one worker.

Why DEALER -> ROUTER: the worker must answer each client (welcome, heartbeats, acknowledgements)
and many clients share one worker socket; DEALER/ROUTER is the asynchronous pattern that allows
both directions without REQ/REP lock-step (PUSH/PULL has no way back for acknowledgements).

Reliability follows zguide's Paranoid Pirate client:

* every new socket first sends ``Hello`` and waits for ``Welcome`` before any audio;
* both sides send heartbeats; when nothing arrives for ``liveness`` heartbeats the socket is
  closed (linger 0) and replaced after an exponential backoff;
* every chunk stays in a per-stream replay buffer until the worker acknowledges it; on a new
  connection, or when the worker's epoch changes (a restarted worker), everything unacknowledged
  is sent again in order and the worker drops what it already has (by sequence number);
* the buffer is bounded (``buffer_s`` of audio per stream): beyond it the oldest chunks are
  dropped, counted and logged, and the worker sees the jump in ``start_sample`` and reports it
  as a gap of exactly that many samples. Nothing is lost silently.

The socket is owned by one thread (ZeroMQ sockets are not thread-safe); `submit` is thread-safe
and only appends to a queue, so a capture thread never waits on the network.
"""

from __future__ import annotations

import collections
import logging
import os
import socket as pysocket
import threading
import time
from dataclasses import dataclass

import numpy as np
import zmq

from edge_coat.logutil import RateLimitedLog
from edge_coat.messages import SAMPLE_RATE, check_stream_id
from edge_coat.transport import wire
from edge_coat.transport.auth import secure_client
from edge_coat.transport.config import SenderConfig
from edge_coat.v1 import audio_pb2 as pb

log = logging.getLogger(__name__)

_FORMATS = {"s16le": wire.S16, "f32le": wire.F32}


@dataclass
class _Entry:
    seq: int
    start: int
    num_samples: int
    frames: list[bytes]
    dropped: bool = False


class _StreamState:
    """Sequence/timeline counters and the replay buffer of one stream."""

    def __init__(self, stream_id: str, epoch: int):
        self.stream_id = stream_id
        self.epoch = epoch  # the sender's, or the one a resumed stream continues (see Sender.resume_stream)
        self.next_seq = 0
        self.next_sample = 0
        self.buffer: collections.deque[_Entry] = collections.deque()
        self.buffered_samples = 0
        self.acked_seq = -1
        self.acked_end = 0  # timeline position where the acknowledged audio ends
        self.sent = 0
        self.dropped_samples = 0
        self.source_gap_samples = 0


class Sender:
    """Streams audio chunks to a worker; see the module docstring for the guarantees.

    Use::

        sender = Sender(SenderConfig(endpoint="tcp://127.0.0.1:5555"))
        sender.start()
        sender.submit("press-3", samples, capture_ts)   # (N,) float32, 16 kHz mono
        ...
        sender.close()
    """

    def __init__(self, cfg: SenderConfig, context: zmq.Context | None = None, client_id: str | None = None):
        self.cfg = cfg
        self.epoch = time.time_ns()
        self.client_id = client_id or f"{pysocket.gethostname()}:{os.getpid()}"
        self._ctx = context or zmq.Context.instance()
        self._format = _FORMATS[cfg.sample_format]
        self._max_buffer = int(cfg.buffer_s * SAMPLE_RATE)
        self._lock = threading.Lock()
        self._streams: dict[str, _StreamState] = {}
        self._inbox: collections.deque[tuple[_StreamState, _Entry]] = collections.deque()
        self._pending: collections.deque[tuple[_StreamState, _Entry]] = collections.deque()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sock: zmq.Socket | None = None
        self.worker_epoch: int | None = None
        self.connected = threading.Event()
        self.counters = collections.Counter()
        self._nonfinite_log = RateLimitedLog(log, 60.0)

    # ---- called from capture threads -------------------------------------------------------
    def submit(
        self,
        stream_id: str,
        samples: np.ndarray,  # (N,) float32, 16 kHz mono
        capture_ts: float,
        gap_samples: int = 0,
        end_of_stream: bool = False,
    ) -> int:
        """Queue one chunk; returns its sequence number. Thread-safe, never blocks on the network.

        `gap_samples`: samples the source lost right before this chunk (e.g. an RTSP outage).
        """
        check_stream_id(stream_id)
        if samples.ndim != 1:
            raise ValueError(f"expected (N,) mono samples at {SAMPLE_RATE} Hz, got shape {samples.shape}")
        if samples.size and not np.isfinite(samples).all():
            samples = self._sanitize(stream_id, samples)
        if gap_samples < 0:
            raise ValueError(f"gap_samples must be >= 0, got {gap_samples}")
        with self._lock:
            st = self._streams.get(stream_id)
            if st is None:
                st = self._streams[stream_id] = _StreamState(stream_id, self.epoch)
            seq = st.next_seq
            start = st.next_sample + gap_samples
            frames = wire.encode_audio(
                stream_id, st.epoch, seq, start, capture_ts, samples, self._format, gap_samples, end_of_stream
            )
            st.next_seq += 1
            st.next_sample = start + len(samples)
            st.source_gap_samples += gap_samples
            if len(self._inbox) >= self.cfg.queue_chunks:
                old_st, old = self._inbox.popleft()
                old_st.dropped_samples += old.num_samples
                self.counters["inbox_dropped_chunks"] += 1
            self._inbox.append((st, _Entry(seq, start, len(samples), frames)))
        self._wake()
        return seq

    def resume_stream(self, stream_id: str, sender_epoch: int, next_seq: int, next_sample: int) -> None:
        """Continue a stream a previous capture process sent, as that process: same sender epoch,
        sequence and timeline from its first unacknowledged chunk. The worker drops what it already has
        (by sequence) and carries on with no gap; a restarted worker starts the stream there (Hello).
        Call before the stream's first :meth:`submit`."""
        check_stream_id(stream_id)
        if next_seq < 0 or next_sample < 0:
            raise ValueError(f"a resume point needs next_seq, next_sample >= 0; got {next_seq}, {next_sample}")
        with self._lock:
            if stream_id in self._streams:
                raise ValueError(f"stream {stream_id!r} already started in this sender; resume it before submitting")
            st = self._streams[stream_id] = _StreamState(stream_id, sender_epoch)
            st.next_seq, st.next_sample = next_seq, next_sample
            st.acked_seq, st.acked_end = next_seq - 1, next_sample

    def progress(self, stream_id: str) -> dict | None:
        """Where a stream stands: its sender epoch, the last acknowledged sequence and the timeline
        position the acknowledged audio ends at, and how many chunks were submitted (None: unknown)."""
        with self._lock:
            st = self._streams.get(stream_id)
            if st is None:
                return None
            return {"sender_epoch": st.epoch, "acked_seq": st.acked_seq, "acked_sample": st.acked_end,
                    "next_seq": st.next_seq}

    def _sanitize(self, stream_id: str, samples: np.ndarray) -> np.ndarray:
        """(N,) samples with NaN replaced by 0 and +-inf by full scale (a decoder or device glitch):
        counted in ``nonfinite_samples``, logged at most once a minute, never a numpy warning per chunk."""
        bad = int(np.count_nonzero(~np.isfinite(samples)))
        with self._lock:
            self.counters["nonfinite_samples"] += bad
            total = self.counters["nonfinite_samples"]
        self._nonfinite_log.warning("stream %s: %d NaN/inf sample(s) replaced (%d so far)", stream_id, bad, total)
        return np.nan_to_num(samples, nan=0.0, posinf=1.0, neginf=-1.0)

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass  # the pipe is full (the thread will wake anyway) or closed

    def stats(self) -> dict:
        """Plain counters: totals plus per stream (sent, acked, buffered seconds, dropped samples)."""
        with self._lock:
            streams = {
                sid: {
                    "chunks_submitted": st.next_seq,
                    "chunks_sent": st.sent,
                    "acked_seq": st.acked_seq,
                    "buffered_s": st.buffered_samples / SAMPLE_RATE,
                    "dropped_samples": st.dropped_samples,
                    "source_gap_samples": st.source_gap_samples,
                }
                for sid, st in self._streams.items()
            }
        return {"connected": self.connected.is_set(), "inbox": len(self._inbox), **self.counters, "streams": streams}

    def unacked(self) -> int:
        """Chunks submitted and not yet acknowledged by the worker (still queued, in flight or in its windows)."""
        with self._lock:
            return sum(st.next_seq - 1 - st.acked_seq for st in self._streams.values())

    def wait_acked(self, timeout: float) -> bool:
        """True once every submitted chunk is acknowledged (tests, clean shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._inbox and all(st.acked_seq == st.next_seq - 1 for st in self._streams.values()):
                    return True
            time.sleep(0.01)
        return False

    # ---- lifecycle --------------------------------------------------------------------------
    def start(self) -> "Sender":
        self._thread = threading.Thread(target=self._run, name=f"sender-{self.cfg.endpoint}", daemon=True)
        self._thread.start()
        return self

    def close(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout)
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> "Sender":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- the socket thread --------------------------------------------------------------------
    def _new_socket(self) -> zmq.Socket:
        sock = self._ctx.socket(zmq.DEALER)
        sock.linger = 0
        sock.immediate = True  # queue nothing on a connection that is not up: it lives in our buffer
        sock.sndhwm = 100_000
        sock.rcvhwm = 100_000
        if self.cfg.curve is not None:
            secure_client(sock, self.cfg.curve)
        sock.connect(self.cfg.endpoint)
        return sock

    def _drop_socket(self, why: str) -> None:
        if self._sock is not None:
            log.warning("link to %s lost (%s); reconnecting", self.cfg.endpoint, why)
            self._sock.close(linger=0)
            self._sock = None
        self.connected.clear()
        self.counters["disconnects"] += 1

    def _replay_all(self) -> None:
        """Queue every unacknowledged chunk of every stream for sending, in order."""
        with self._lock:
            self._pending.clear()
            for st in self._streams.values():
                self._pending.extend((st, e) for e in st.buffer)
        self.counters["replays"] += 1

    def _take_inbox(self, limit: int = 256) -> None:
        """Move up to `limit` submitted chunks into the replay buffers and the send queue (a
        bounded step, so sending interleaves with taking during a burst)."""
        for _ in range(limit):
            if not self._inbox:
                return
            st, entry = self._inbox.popleft()
            with self._lock:
                st.buffer.append(entry)
                st.buffered_samples += entry.num_samples
                while st.buffered_samples > self._max_buffer and len(st.buffer) > 1:
                    old = st.buffer.popleft()
                    old.dropped = True
                    st.buffered_samples -= old.num_samples
                    st.dropped_samples += old.num_samples
                    self.counters["overflow_dropped_chunks"] += 1
                    if self.counters["overflow_dropped_chunks"] in (1, 10, 100) or \
                            self.counters["overflow_dropped_chunks"] % 1000 == 0:
                        log.warning(
                            "replay buffer of %s full (%.1f s): dropped chunk %d; %d chunks dropped so far",
                            st.stream_id, self.cfg.buffer_s, old.seq, self.counters["overflow_dropped_chunks"],
                        )
            self._pending.append((st, entry))

    def _send_pending(self) -> None:
        sock = self._sock
        while self._pending:
            st, entry = self._pending[0]
            if entry.dropped or entry.seq <= st.acked_seq:
                self._pending.popleft()
                continue
            try:
                sock.send_multipart(entry.frames, flags=zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            self._pending.popleft()
            st.sent += 1

    def _on_message(self, frames: list[bytes]) -> tuple[str | None, bool]:
        """Handle one message from the worker; returns (kind, whether the worker's epoch changed)."""
        try:
            msg = wire.decode(frames, max_frames=0)
        except wire.WireError as exc:
            self.counters["bad_replies"] += 1
            log.debug("bad reply from worker: %s", exc)
            return None, False
        kind = msg.WhichOneof("body")
        if kind == "welcome":
            epoch = msg.welcome.worker_epoch
            if epoch != self.worker_epoch:
                if self.worker_epoch is not None:
                    log.warning("worker restarted (epoch %d -> %d): replaying unacknowledged audio", self.worker_epoch, epoch)
                    self.counters["worker_restarts"] += 1
                self.worker_epoch = epoch
                return kind, True
        elif kind == "ack":
            if msg.ack.worker_epoch != self.worker_epoch:
                return kind, False
            with self._lock:
                for a in msg.ack.streams:
                    st = self._streams.get(a.stream_id)
                    if st is None or a.sender_epoch != st.epoch or a.sequence <= st.acked_seq:
                        continue
                    st.acked_seq = a.sequence
                    while st.buffer and st.buffer[0].seq <= a.sequence:
                        done = st.buffer.popleft()
                        st.buffered_samples -= done.num_samples
                        st.acked_end = done.start + done.num_samples
        return kind, False

    def _hello(self) -> list[bytes]:
        """Hello with each stream's resume point (first unacknowledged chunk)."""
        with self._lock:
            resumes = [
                pb.StreamResume(stream_id=st.stream_id, sender_epoch=st.epoch,
                                next_sequence=st.acked_seq + 1, next_sample=st.acked_end)
                for st in self._streams.values()
            ]
        return wire.encode_control(hello=pb.Hello(client_id=self.client_id, sender_epoch=self.epoch, streams=resumes))

    def _run(self) -> None:
        link = self.cfg.link
        backoff = link.backoff_initial_s
        next_try = 0.0
        live = False
        poller = zmq.Poller()
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if self._sock is None:
                    if now < next_try:
                        self._take_inbox()
                        time.sleep(min(0.05, next_try - now))
                        continue
                    self._sock = self._new_socket()
                    poller = zmq.Poller()
                    poller.register(self._sock, zmq.POLLIN)
                    poller.register(self._wake_r, zmq.POLLIN)
                    live = False
                    last_rx = now
                    last_tx = 0.0
                if not live and now - last_tx >= link.heartbeat_s:
                    try:
                        self._sock.send_multipart(self._hello(), flags=zmq.NOBLOCK)
                        last_tx = now
                    except zmq.Again:
                        pass
                self._take_inbox()
                if live:
                    self._send_pending()
                    if now - last_tx >= link.heartbeat_s:
                        try:
                            self._sock.send_multipart(
                                wire.encode_control(heartbeat=pb.Heartbeat(ts=time.time())), flags=zmq.NOBLOCK
                            )
                        except zmq.Again:
                            pass
                        last_tx = now
                if self._inbox:
                    timeout_ms = 0
                elif live and self._pending and not self._pending[0][1].dropped:
                    timeout_ms = 1  # the socket pushed back: retry soon
                else:
                    timeout_ms = link.heartbeat_s * 250
                events = dict(poller.poll(timeout_ms))
                if self._wake_r in events:
                    os.read(self._wake_r, 65536)
                if self._sock in events:
                    for _ in range(10_000):
                        try:
                            frames = self._sock.recv_multipart(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        last_rx = time.monotonic()
                        kind, new_worker = self._on_message(frames)
                        if not live and kind == "welcome":
                            live = True
                            self.connected.set()
                            backoff = link.backoff_initial_s
                            self._replay_all()
                        elif live and new_worker:
                            self._sock.send_multipart(self._hello())  # register with the new worker first
                            self._replay_all()
                if time.monotonic() - last_rx > link.heartbeat_s * link.liveness:
                    self._drop_socket(f"no reply for {link.heartbeat_s * link.liveness:.1f} s")
                    live = False
                    next_try = time.monotonic() + backoff
                    backoff = min(backoff * 2, link.backoff_max_s)
        except Exception:
            log.exception("sender thread failed (streams: %s)", sorted(self._streams))
            raise
        finally:
            if self._sock is not None:
                self._sock.close(linger=0)
