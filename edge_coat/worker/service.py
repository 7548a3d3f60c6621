"""The worker's streaming half: socket -> per-stream windowing and gates -> batches -> model stage.

Threads, each touching only its own data plus queues:

* ``receiver`` (`edge_coat.transport.receiver.Receiver`): the ROUTER socket; validates messages and
  appends chunks to the ingest queue; never waits on anything else.
* ``windowing``: drains the ingest queue, runs the per-stream sequence checks, ring buffers and
  gates, and appends windows to the batch queue. Sets acknowledgements.
* ``model``: takes batches (up to ``max_batch`` windows, or fewer after ``max_wait_s``) across
  streams and calls ``ModelStage.process``; results go to the callback. When no window is queued it
  encodes chunks ahead (below).

Encoding ahead: a stage with ``ahead_chunk_samples`` (the CoAT stage with its encoder cache) names the
encoder chunk it can encode before a window is due; each stream whose hop is a whole number of them
then also hands on the complete chunks that its next windows will hold and no window cut so far holds
(`AudioChunk`, see `edge_coat.worker.windowing`). They wait in the batch queue's own bounded lane and
reach ``ModelStage.encode_ahead`` only while no window or end is queued: idle-time work, never ahead
of a window. So a stream's first window encodes the one chunk that completed it, not all of its
chunks (issue 14: the first windows of streams that start together dominated the latency p99). A
chunk holds no acknowledgement (its audio is acknowledged through its windows), an end of stream
removes its stream's waiting chunks, and a full lane drops its oldest.

End of a stream: when a stream's source sends end-of-stream (or the stream is forgotten after
``stream_idle_s`` of silence), an `EndOfStream` item joins the batch queue behind the stream's last
window. The model thread hands it to ``on_end`` only after the results of every window before it went
to ``on_result``, so the detectors close the stream's episodes after judging its last window. It is
never dropped by the queue's drop-oldest (it holds no audio).

`Worker.unfinished` counts what is still on its way (ingest queue, the windowing thread's hands, the
batch queue, the batch in the model thread); `Worker.wait_idle` waits for it to reach zero.

Backpressure: both queues are bounded and drop their OLDEST item when full, counting it (a chunk
dropped there becomes a reported gap of its stream). A slow model therefore costs windows, never a
stalled socket or a frozen stream; and the newest audio, the one an operator cares about, wins.

Acknowledgements wait for the model: a chunk is acknowledged to its client only once every window
that needs it has been through the model stage (or was dropped, counted), so a worker killed with
windows still queued loses nothing: the client replays those chunks to the next worker, which cuts
the same windows again (at-least-once).
"""

from __future__ import annotations

import collections
import gc
import logging
import threading
import time
from collections.abc import Callable

from edge_coat.messages import SAMPLE_RATE, AudioChunk, EndOfStream, Window, WindowResult
from edge_coat.transport.receiver import Receiver
from edge_coat.v1 import audio_pb2 as pb
from edge_coat.worker.config import WorkerConfig
from edge_coat.worker.gate import Gate, SpeechFn
from edge_coat.worker.stage import ModelStage
from edge_coat.worker.windowing import BufferPool, PhasePlanner, StreamState

log = logging.getLogger(__name__)

ResultFn = Callable[[WindowResult], None]
EndFn = Callable[[EndOfStream], None]
Item = Window | EndOfStream


def _tune_gc(gen0: int) -> None:
    """See `WorkerConfig.gc_gen0_threshold`. Process-wide: a worker owns its process in production;
    in a process with several workers (tests) the first one sets it and the rest find it set."""
    if gen0 and gc.get_threshold()[0] < gen0:
        gc.freeze()  # what exists now lives as long as the process: no collection needs to walk it
        gc.set_threshold(gen0, *gc.get_threshold()[1:])
        log.info("garbage collector: generation-0 threshold %d, %d objects frozen", gen0, gc.get_freeze_count())


class BatchQueue:
    """Bounded FIFO of windows (and `EndOfStream` items) with batch-taking (max batch / max wait) and
    drop-oldest window, plus a lane of `AudioChunk` items to encode ahead, taken only when no window
    or end is queued (up to max_batch at a time, without waiting). The lane has the same bound as the
    windows, in items (a chunk holds a fraction of a window's samples; under overload its chunks wait,
    the oldest are dropped, and those that reach the stage late are skipped there without encoding).
    Items taken count as unfinished until `task_done`."""

    def __init__(self, max_batch: int, max_wait_s: float, capacity: int):
        self.max_batch, self.max_wait_s, self.capacity = max_batch, max_wait_s, capacity
        self._q: collections.deque[tuple[float, Item]] = collections.deque()
        self._ahead: collections.deque[AudioChunk] = collections.deque()  # oldest first
        self._cv = threading.Condition()
        self._taken = 0  # taken and not yet done
        self.dropped = 0
        self.dropped_ahead = 0  # chunks to encode ahead dropped (lane full)

    def __len__(self) -> int:
        return len(self._q)

    def unfinished(self) -> int:
        """Items queued (chunks to encode ahead included) plus items taken and not yet `task_done`."""
        with self._cv:
            return len(self._q) + len(self._ahead) + self._taken

    def put_many(self, items: list[Item | AudioChunk]) -> list[Window]:
        """Queue `items`; returns the windows dropped to make room (oldest first; an `EndOfStream`
        item is never dropped). An `AudioChunk` goes to the ahead lane (its oldest dropped when full);
        an `EndOfStream` removes its stream's chunks from it."""
        now = time.monotonic()
        dropped = []
        with self._cv:
            for item in items:
                cls = item.__class__
                if cls is AudioChunk:
                    if len(self._ahead) >= self.capacity:
                        self._ahead.popleft()
                        self.dropped_ahead += 1
                    self._ahead.append(item)
                    continue
                if cls is EndOfStream and self._ahead:
                    self._ahead = collections.deque(c for c in self._ahead if c.stream_id != item.stream_id)
                if len(self._q) >= self.capacity:
                    w = self._drop_oldest_window()
                    if w is not None:
                        dropped.append(w)
                        self.dropped += 1
                self._q.append((now, item))
            self._cv.notify()
        return dropped

    def _drop_oldest_window(self) -> Window | None:
        q = self._q
        for i, (_, item) in enumerate(q):
            if item.__class__ is not EndOfStream:  # almost always i == 0
                del q[i]
                return item
        return None

    def take(self, timeout: float) -> list[Item] | list[AudioChunk]:
        """Up to max_batch items once max_batch are there or the oldest has waited max_wait_s; else,
        when no window or end is queued, up to max_batch chunks to encode ahead at once; [] after
        `timeout` s with nothing."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                now = time.monotonic()
                if len(self._q) >= self.max_batch or (self._q and now - self._q[0][0] >= self.max_wait_s):
                    n = min(self.max_batch, len(self._q))
                    self._taken += n
                    return [self._q.popleft()[1] for _ in range(n)]
                if self._ahead and not self._q:
                    n = min(self.max_batch, len(self._ahead))
                    self._taken += n
                    return [self._ahead.popleft() for _ in range(n)]
                if now >= deadline:
                    return []
                wait = deadline - now
                if self._q:
                    wait = min(wait, self._q[0][0] + self.max_wait_s - now)
                self._cv.wait(max(wait, 0.0005))

    def task_done(self, n: int) -> None:
        with self._cv:
            self._taken -= n


class Worker:
    """Receives streams and feeds windows to a model stage in batches.

    Use::

        worker = Worker(cfg, stage=NoopStage(), on_result=print, on_end=print).start()
        ...
        worker.stats(); worker.wait_idle(10.0); worker.close()
    """

    def __init__(
        self,
        cfg: WorkerConfig,
        stage: ModelStage,
        on_result: ResultFn | None = None,
        speech_fn: SpeechFn | None = None,
        on_window: Callable[[Window, float], None] | None = None,
        on_end: EndFn | None = None,
    ):
        self.cfg = cfg
        self.stage = stage
        self.on_result = on_result
        self.on_end = on_end  # (EndOfStream) after the results of the stream's last window
        self.on_window = on_window  # (window, monotonic time it became ready): benchmarks, taps
        self.speech_fn = speech_fn
        Gate(cfg.default_stream, speech_fn)  # fail now, not at the first stream, on a bad gate config
        for sc in cfg.streams.values():
            Gate(sc, speech_fn)
        self.receiver = Receiver(cfg.receiver)
        self.endpoint = self.receiver.endpoint
        self.batches = BatchQueue(cfg.batch.max_batch, cfg.batch.max_wait_s, cfg.batch.queue_windows)
        # the encoder chunk the stage encodes ahead of a window (0: none), asked per stream for its hop
        self._ahead_for = getattr(stage, "ahead_chunk_samples", None) if hasattr(stage, "encode_ahead") else None
        self.streams: dict[str, StreamState] = {}
        self.phases = PhasePlanner()  # grid phases that spread the streams' windows over the hop
        self._pool = BufferPool()  # window arrays, recycled once every consumer let go (windowing thread only)
        self._gates: dict[str, Gate] = {}
        self._counts: dict[str, collections.Counter] = {}
        self.totals = collections.Counter()
        self._finished: collections.deque[tuple[str, int]] = collections.deque()  # (stream, window start)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._ingesting = 0  # chunks the windowing thread drained and has not queued the windows of yet
        self._rounds = 0  # windowing loop iterations completed (see wait_idle)

    # ---- lifecycle ----------------------------------------------------------------------------
    def start(self) -> "Worker":
        _tune_gc(self.cfg.gc_gen0_threshold)
        self.receiver.start()
        for name, target in (("windowing", self._windowing_loop), ("model", self._model_loop)):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(5.0)
        self.receiver.close()

    def __enter__(self) -> "Worker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- progress -----------------------------------------------------------------------------
    def unfinished(self) -> int:
        """Chunks and windows still on their way: the ingest queue, the windowing thread's drained
        chunks, the batch queue and the batch in the model thread (with its callbacks)."""
        return self.receiver.queue_depth() + self._ingesting + self.batches.unfinished()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing received is unfinished; False after ``timeout`` s. Zero is confirmed after
        one more windowing round, so chunks drained at the moment of the first look are not missed."""
        deadline = time.monotonic() + timeout
        while True:
            if self.unfinished() == 0:
                seen = self._rounds
                while self._rounds <= seen and time.monotonic() < deadline and self._threads \
                        and self._threads[0].is_alive():
                    time.sleep(0.005)
                if self.unfinished() == 0:
                    return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)

    # ---- statistics ---------------------------------------------------------------------------
    def stats(self) -> dict:
        """Plain dict for metrics: per stream, totals, queue depths, socket counters."""
        streams = {}
        for sid, c in list(self._counts.items()):
            st = self.streams.get(sid)
            live = st.ring.skipped_in_gap if st else 0
            streams[sid] = {
                # counters of the stream's earlier lives (forgotten when idle) plus the current one
                "audio_s_in": (c["samples_in"] + (st.samples_in if st else 0)) / SAMPLE_RATE,
                "gap_s": (c["gap_samples"] + (st.gap_samples if st else 0)) / SAMPLE_RATE,
                "recent_gaps": [(start, n / SAMPLE_RATE) for start, n in st.recent_gaps] if st else [],
                "windows_processed": c["windows"],
                "windows_skipped": c["windows_skipped"],
                "windows_in_gap": c["windows_in_gap"] + live,
                "duplicates": c["duplicate"],
                "dropped": c["stale"] + c["ended"] + c["inconsistent"],
                "active": st is not None and not st.ended,
                "window_phase_s": st.ring.phase / SAMPLE_RATE if st else None,
            }
        return {
            "streams": streams,
            "totals": dict(self.totals),
            "queues": {"ingest": self.receiver.queue_depth(), "batch": len(self.batches)},
            "batch_dropped": self.batches.dropped,
            "ahead_dropped": self.batches.dropped_ahead,
            "receiver": self.receiver.stats(),
        }

    # ---- windowing thread -----------------------------------------------------------------------
    def _state(self, sid: str, resume_at: int | None = None) -> StreamState:
        """The stream's state, new when it has none (``resume_at``: the sample a client's hello resumes it at,
        None for a new stream). With ``window_phase`` spread, its grid phase is set at its first chunk with
        samples, when the chunk length and arrival time are known."""
        st = self.streams.get(sid)
        if st is None:
            sc = self.cfg.stream(sid)
            window, hop = round(sc.window_s * SAMPLE_RATE), round(sc.hop_s * SAMPLE_RATE)
            st = StreamState(sid, window, hop, round(self.cfg.receiver.max_gap_s * SAMPLE_RATE), self._pool,
                             ahead=self._ahead_for(window, hop) if self._ahead_for is not None else 0)
            st.phase_pending = (resume_at,) if self.cfg.window_phase == "spread" else None
            self.streams[sid] = st
            self._gates[sid] = Gate(sc, self.speech_fn)
            self._counts.setdefault(sid, collections.Counter())
            self.totals["streams_joined"] += 1
            log.info("stream %s joined", sid)
        return st

    def _phase(self, sid: str, window: int, hop: int, end_pos: int, now: float, chunk: int,
               resume_at: int | None) -> int:
        """A stream's grid phase (``worker.window_phase`` spread). A new stream: `PhasePlanner.assign`. A stream
        resumed part-way after a worker restart: its grid must be the one the worker before this one cut, which
        this one was not told; with a chunk length that divides the hop the planner put the grid on the chunk
        grid, so the acknowledged audio ends on it and the resume sample is on it (phase ``resume_at % hop``);
        with any other chunk length the planner left the grid at phase 0, so the stream keeps phase 0."""
        if resume_at is None:
            return self.phases.assign(sid, window, hop, end_pos, now, chunk)
        phase = resume_at % hop if hop % chunk == 0 else 0
        self.phases.keep(sid, hop, now + (window - end_pos + phase) / SAMPLE_RATE)
        return phase

    def _windowing_loop(self) -> None:
        next_housekeeping = 0.0
        while not self._stop.is_set():
            chunks = self.receiver.drain(0.05)
            now = time.monotonic()
            if chunks:
                self._ingesting = len(chunks)
                step = self.cfg.ingest_slice  # each slice's windows go on without waiting for the whole drain
                for i in range(0, len(chunks), step):
                    self._ingest(chunks[i:i + step], now)
                self._ingesting = 0
            if self._finished:
                self._ack(self._release(self._finished_windows()))
            if now >= next_housekeeping:
                self._forget_idle(now)
                next_housekeeping = now + 1.0
            self._rounds += 1

    def _ingest(self, chunks: list, now: float) -> None:
        """Sequence checks, ring buffers and gates for one drained batch; windows to the batch
        queue; acknowledgements for the streams whose acknowledged sequence moved.

        The per-chunk path is kept to dictionary lookups and the ring's one copy: counters of the
        common outcome are summed per batch, per-stream totals live on the `StreamState`.
        """
        streams, counts, totals = self.streams, self._counts, self.totals
        touched: dict[str, StreamState] = {}
        ready: list[Item] = []
        n_ok = 0
        resume_cls = pb.StreamResume
        for a in chunks:
            if a.__class__ is resume_cls:
                # a sender's hello names every stream it has, new ones too (nothing acknowledged yet:
                # sample 0); only a stream resumed part-way keeps the grid through its resume point
                st = self._state(a.stream_id, resume_at=a.next_sample if a.next_sample or a.next_sequence else None)
                if st.resume(a.sender_epoch, a.next_sequence, a.next_sample):
                    st.last_seen = now
                    log.info("stream %s resumes at chunk %d", a.stream_id, a.next_sequence)
                continue
            sid = a[0]  # WireAudio.stream_id, read by index: this loop runs per chunk
            st = streams.get(sid) or self._state(sid)
            if st.phase_pending and len(a[5]):  # a new stream's first audio: its grid phase (a[3]: start_sample)
                (resume_at,), st.phase_pending = st.phase_pending, None
                st.ring.set_phase(self._phase(sid, st.ring.L, st.ring.hop, a[3] + len(a[5]), now, len(a[5]),
                                              resume_at))
            try:
                outcome, raws = st.accept(a)
            except ValueError as exc:  # a chunk the ring cannot place: count, keep the stream
                outcome, raws = "inconsistent", []
                log.warning("stream %s: %s", sid, exc)
            if outcome != "ok":
                counts[sid][outcome] += 1
                totals[outcome] += 1
                if outcome == "duplicate" or outcome == "ended":
                    # a replay of what we have: our last acknowledgement may have been lost; resend it
                    st.ack_reported = None
                    st.last_seen = now
                    touched[sid] = st
                continue
            n_ok += 1
            st.last_seen = now
            if st.ring.pos0 != st.ack_pos or st.ended:  # else its acknowledgement cannot have moved
                touched[sid] = st
            if raws:
                try:
                    ready.extend(self._gate(st, raws))
                except Exception:  # noqa: BLE001 - e.g. a failing speech function: lose windows, not the loop
                    totals["gate_errors"] += 1
                    log.exception("gate failed on stream %s", sid)
            if st.ring.ahead_out:  # chunks its next windows hold, to encode before they are due
                epoch = st.epoch or 0
                ready.extend(AudioChunk(sid, c.start, c.samples, epoch) for c in st.ring.take_ahead())
            if st.ended:  # this chunk ended it (accept took `end_of_stream`): the end follows its windows
                log.info("stream %s ended", sid)
                self.phases.release(sid)
                ready.append(EndOfStream(sid, st.end_ts, "ended"))
        totals["ok"] += n_ok
        if ready:
            if self.on_window is not None:
                t = time.monotonic()
                for w in ready:
                    if w.__class__ is Window:
                        self.on_window(w, t)
            touched.update(self._release(self.batches.put_many(ready)))
        self._ack(touched)

    def _finished_windows(self) -> list[tuple[str, int]]:
        out, q = [], self._finished
        while q:
            out.append(q.popleft())
        return out

    def _release(self, windows) -> dict[str, StreamState]:
        """Windows (`Window` or (stream, start)) that left the pipeline: their audio may now be
        acknowledged. Returns the streams concerned."""
        touched = {}
        for w in windows:
            sid, start = (w.stream_id, w.start_sample) if isinstance(w, Window) else w
            st = self.streams.get(sid)
            if st is None or start not in st.inflight:
                continue  # forgotten meanwhile, or a window of the stream's previous life
            if st.inflight[0] == start:
                st.inflight.popleft()
            else:
                st.inflight.remove(start)
            touched[sid] = st
        return touched

    def _ack(self, touched: dict[str, StreamState]) -> None:
        acks = []
        for sid, st in touched.items():
            ack = (st.epoch, st.ack_seq())
            if ack != st.ack_reported:  # only acknowledgements that moved go to the socket thread
                st.ack_reported = ack
                acks.append((sid, *ack))
        if acks:
            self.receiver.ack_many(acks)

    def _gate(self, st: StreamState, raws: list) -> list[Window]:
        """Gate a stream's new raw windows; returns those worth a model call."""
        sid = st.stream_id
        c = self._counts[sid]
        gate = self._gates[sid]
        out = []
        tasks = ()
        for raw in raws:
            tasks, level, speech = gate(raw.samples)
            if not tasks:
                c["windows_skipped"] += 1
                continue
            out.append(Window(
                stream_id=sid,
                index=raw.start // st.ring.hop,
                start_sample=raw.start,
                start_ts=raw.start_ts,
                end_ts=raw.start_ts + len(raw.samples) / SAMPLE_RATE,
                samples=raw.samples,
                gap_seconds=raw.gap_samples / SAMPLE_RATE,
                rms_dbfs=level,
                speech_ratio=speech,
                tasks=tasks,
                sender_epoch=st.epoch or 0,
            ))
            st.inflight.append(raw.start)
        c["windows"] += len(out)
        st.ring.ahead_paused = not tasks  # its latest window was gated out: encode nothing ahead for now
        return out

    def _forget_idle(self, now: float) -> None:
        for sid, st in list(self.streams.items()):
            if now - st.last_seen > self.cfg.stream_idle_s:
                log.info("stream %s idle for %.0f s: forgotten", sid, now - st.last_seen)
                if not st.ended:  # an ended stream's end is already queued
                    self._ack(self._release(self.batches.put_many([EndOfStream(sid, st.end_ts, "idle")])))
                c = self._counts[sid]  # keep what it did for the stats of its next life
                c["samples_in"] += st.samples_in
                c["gap_samples"] += st.gap_samples
                c["windows_in_gap"] += st.ring.skipped_in_gap
                del self.streams[sid]
                del self._gates[sid]
                self.phases.release(sid)
                self.totals["streams_left"] += 1

    # ---- model thread ---------------------------------------------------------------------------
    def _model_loop(self) -> None:
        while not self._stop.is_set():
            items = self.batches.take(0.1)
            if not items:
                continue
            if items[0].__class__ is AudioChunk:  # idle time: no window is queued
                self._encode_ahead(items)
                self.batches.task_done(len(items))
                continue
            start = 0
            for i, item in enumerate([*items, None]):  # windows in runs, each end after its run
                if item is not None and item.__class__ is not EndOfStream:
                    continue
                batch = items[start:i]
                start = i + 1
                if batch:
                    self._run_batch(batch)
                    # done with, even when it failed (counted): the windows' audio may be acknowledged now
                    self._finished.extend((w.stream_id, w.start_sample) for w in batch)
                if item is not None:
                    self._end(item)
            self.batches.task_done(len(items))

    def _end(self, end: EndOfStream) -> None:
        self.totals["streams_ended" if end.reason == "ended" else "streams_idle_ended"] += 1
        end_stream = getattr(self.stage, "end_stream", None)  # optional: a stage may keep nothing per stream
        if end_stream is not None:
            try:
                end_stream(end)
            except Exception:  # noqa: BLE001 - a stage bug must not stop the model loop
                self.totals["stage_errors"] += 1
                log.exception("model stage failed to end stream %s", end.stream_id)
        if self.on_end is None:
            return
        try:
            self.on_end(end)
        except Exception:  # noqa: BLE001 - a consumer bug must not stop the model loop
            self.totals["callback_errors"] += 1
            log.exception("end-of-stream callback failed for stream %s", end.stream_id)

    def _encode_ahead(self, chunks: list[AudioChunk]) -> None:
        try:
            self.stage.encode_ahead(chunks)
        except Exception:  # noqa: BLE001 - work ahead is optional: the windows encode their chunks anyway
            self.totals["stage_errors"] += 1
            log.exception("model stage failed to encode %d chunks ahead", len(chunks))
            return
        self.totals["chunks_ahead"] += len(chunks)

    def _run_batch(self, batch: list[Window]) -> None:
        try:
            results = self.stage.process(batch)
        except Exception:  # noqa: BLE001 - one bad batch must not stop every stream
            self.totals["stage_errors"] += 1
            log.exception("model stage failed on a batch of %d windows from %s",
                          len(batch), sorted({w.stream_id for w in batch}))
            return
        if len(results) != len(batch):
            self.totals["stage_errors"] += 1
            log.error("model stage returned %d results for %d windows: dropped", len(results), len(batch))
            return
        self.totals["windows_done"] += len(results)
        if self.on_result is not None:
            for r in results:
                try:
                    self.on_result(r)
                except Exception:  # noqa: BLE001 - a consumer bug must not stop the model loop
                    self.totals["callback_errors"] += 1
                    log.exception("result callback failed for stream %s window %d",
                                  r.window.stream_id, r.window.index)
