"""Per-stream ring buffer and windowing, plus the sequence checks that keep a stream's timeline
honest (duplicates, lost chunks, restarts, forged positions).

Pure code (no threads, no sockets): the service feeds it chunks and collects windows.

Timeline: each chunk carries ``start_sample``, its position on the stream's timeline with gaps
included. Windows start on a fixed grid (``phase`` plus multiples of the hop), so a restarted worker
that receives the replay of a stream cuts exactly the windows the dead worker would have cut (a resumed
stream's grid goes through the sample its client resumes at).

Phase: streams whose windows would fall due at the same instant (capture workers started together)
would reach the model stage as one batch every hop, and on a CPU worker a batch of 8 windows costs
about 6x one, so every window of the batch waits for the whole batch. `PhasePlanner` gives each new
stream a grid phase (0 <= phase < hop) that puts its windows' due times in the middle of the largest
free stretch of the hop among the streams already running, so their windows arrive one by one; the
price is that a stream's first ``phase`` samples (less than one hop) are in no window. ``worker.
window_phase: aligned`` keeps every phase 0.

Cost: this runs once per received chunk for every stream, so a chunk costs a few tuple and
attribute updates and no copy (the ring keeps the received samples); a window costs two numpy
calls (its samples gathered into an array of its own, then scaled).

Encoding ahead: a ring built with ``ahead`` (the model's encoder chunk, which divides the hop) also
cuts the complete chunks of that grid that a later window will hold and no window cut so far holds
(``RawChunk`` in ``Ring.ahead_out``), so the model stage can encode them before their windows are due
(``edge_coat.worker.encoder_cache``). At a 2 s hop with 2 s chunks that is the chunks before a stream's
first window (and after a restart or a gap skip): every later chunk completes a window. A chunk that a
gap touches is not cut (windows holding a gap start the stream's cache over anyway), nor while
``ahead_paused`` (the service sets it while the stream's windows are gated out: silent audio is not
encoded for windows the gate will skip).
"""

from __future__ import annotations

import collections
import logging
import sys
from typing import NamedTuple

import numpy as np

from edge_coat.messages import SAMPLE_RATE
from edge_coat.transport.wire import WireAudio

log = logging.getLogger(__name__)


class RawWindow(NamedTuple):
    """A window before gating (immutable).

    A NamedTuple rather than the house's frozen dataclass: one is built per window in the
    windowing thread (thousands a second), and built with ``tuple.__new__`` it costs a third of a
    frozen dataclass's ``__init__`` (bench/PROFILE.md, round 2).

    Attributes:
        samples: shape ``(window_samples,)`` float32 (a copy).
    """

    start: int
    samples: np.ndarray  # (L,) float32
    start_ts: float
    gap_samples: int


class RawChunk(NamedTuple):
    """A chunk of the ahead grid (see the module docstring; immutable).

    Attributes:
        samples: shape ``(ahead,)`` float32 (a copy, scaled like a window's: bit-identical to its stretch).
    """

    start: int
    samples: np.ndarray  # (C,) float32


_new_tuple = tuple.__new__
#: what `Ring.push` and `StreamState.accept` hand back when no window was cut (the common case):
#: one shared empty tuple, not a fresh list per chunk
NO_WINDOWS: tuple = ()
# `StreamState.accept`'s answers that carry no window, built once
_OK_NONE = ("ok", NO_WINDOWS)
_STALE, _ENDED, _DUPLICATE, _INCONSISTENT = (("stale", NO_WINDOWS), ("ended", NO_WINDOWS),
                                             ("duplicate", NO_WINDOWS), ("inconsistent", NO_WINDOWS))


_I16 = np.dtype("<i2")
_TO_PCM = np.float32(32768.0)
_FROM_PCM = np.float32(1 / 32768)


class BufferPool:
    """Recycles the float32 arrays that windows are cut into. One per windowing thread (not
    thread-safe).

    Why: at 2,000 streams the worker cuts thousands of windows a second, in bursts, and the C
    allocator hands the freed memory back to the system between bursts, so every fresh (L,) array
    paid its page faults again (about 16 for a 1 s window; bench/PROFILE.md). numpy has no such
    pool. An array is handed out again only once nothing but this pool refers to it
    (``sys.getrefcount``): its window, every view of it and every wrapper of its memory
    (``torch.from_numpy``, ``memoryview``) hold a reference, so a window a consumer still uses,
    even a slice of one, is never overwritten. The pool keeps at most ``max_bytes`` of arrays;
    beyond that it forgets the oldest (their holders keep them).
    """

    def __init__(self, max_bytes: int = 256 << 20):
        self.max_bytes = max_bytes
        self._out: dict[int, collections.deque[np.ndarray]] = {}  # length -> arrays handed out, oldest first
        self.reused = self.allocated = 0

    def take(self, n: int) -> np.ndarray:
        """An (n,) float32 array with undefined contents, the caller's to fill."""
        q = self._out.get(n)
        if q is None:
            q = self._out[n] = collections.deque()
        for _ in range(min(2, len(q))):  # the oldest is nearly always free (windows go FIFO); skip a kept one
            if sys.getrefcount(q[0]) == 2:  # the deque's reference and getrefcount's argument: free
                q.rotate(-1)
                self.reused += 1
                return q[-1]
            q.rotate(-1)
        a = np.empty(n, np.float32)
        q.append(a)
        self.allocated += 1
        if len(q) * 4 * n > self.max_bytes:
            q.popleft()
        return a


def _grid_up(x: int, step: int, phase: int) -> int:
    """The first point of the grid ``phase + k * step`` (k any integer) at or after ``x``."""
    return phase + -(-(x - phase) // step) * step


class Ring:
    """The samples of one stream not yet fully windowed, as a run of contiguous segments.

    Chunks are kept as they arrived (int16 PCM, usually read-only views of the received ZeroMQ
    frames) and are copied exactly once, when a window is cut from them: ``np.concatenate``
    straight into the window's array, then one in-place scaling to [-1, 1]. There is no copy per
    chunk, no compaction, and a stream holds about one window of int16 audio instead of a float32
    buffer of two; at 2,000 streams the per-chunk copy into a preallocated float buffer was the
    largest line of the ingest profile (bench/PROFILE.md). Float32 chunks are stored multiplied
    by 32768, so every segment is in int16 units; both scalings are by a power of two, hence
    exact: a window equals the samples sent, bit for bit.

    `push` keeps a reference to a read-only `samples` array until it is windowed; a writable one
    is copied first, so the caller may reuse its array.
    """

    def __init__(self, window: int, hop: int, pool: BufferPool | None = None, ahead: int = 0, phase: int = 0):
        if window <= 0 or hop <= 0:
            raise ValueError(f"window and hop must be > 0 samples, got {window} and {hop}")
        if ahead < 0 or (ahead and hop % ahead):
            raise ValueError(f"ahead chunks must divide the hop ({hop} samples), got {ahead}; 0 cuts none")
        if not 0 <= phase < hop:
            raise ValueError(f"the grid phase must be in [0, hop) = [0, {hop}) samples, got {phase}")
        self.L, self.hop = window, hop
        self.phase = phase  # windows start at phase + k * hop (chunks ahead: phase + j * ahead)
        self.pool = pool  # where window arrays come from (None: fresh arrays)
        self.ahead = ahead  # chunk length of the ahead grid (0: none cut)
        self.ahead_out: list[RawChunk] = []  # cut and not yet taken (`take_ahead`)
        self.ahead_paused = False
        self.next_chunk = 0  # start of the next chunk of the ahead grid not yet considered
        self.cut_end = 0  # end of the latest window cut (no chunk inside it is cut ahead)
        # (pos, (n,) int16 units, anchor pos, anchor capture ts): each segment carries the clock of
        # the chunk it came from (a chunk: its own start; zeros filling a gap: the chunk right
        # after the gap), so a window's start time is read off the segment it starts in, with no
        # second per-chunk queue of timestamps to fill and trim
        self.segs: collections.deque[tuple[int, np.ndarray, int, float]] = collections.deque()
        self.pos0: int | None = None  # timeline position of the first sample held
        self.end_pos = 0  # timeline position just after the last sample held
        self.next_win = 0
        self.gaps: collections.deque[tuple[int, int]] = collections.deque()  # [start, end) zero-filled
        self.skipped_in_gap = 0  # windows that would lie entirely inside a gap

    @property
    def end(self) -> int:
        return self.end_pos

    @staticmethod
    def _units(x: np.ndarray) -> np.ndarray:
        """(n,) int16 PCM or float32 in [-1, 1] -> (n,) array in int16 units that nobody else writes."""
        if x.dtype == _I16:
            return x if not x.flags.writeable else x.copy()
        return np.multiply(x, _TO_PCM, dtype=np.float32)

    def _zeros(self, n: int, anchor_pos: int, anchor_ts: float) -> None:
        """Fill n samples of a gap with zeros, on the clock of the chunk at `anchor_pos` (after the gap)."""
        if n > 0:
            self.segs.append((self.end_pos, np.zeros(n, _I16), anchor_pos, anchor_ts))
            self.end_pos += n

    def _emit(self, out: list) -> None:
        L = self.L
        while self.next_win + L <= self.end_pos:
            s = self.next_win
            e = s + L
            parts = []
            ts = None
            for p, a, ap, at in self.segs:
                if p >= e:
                    break
                q = p + len(a)
                if q > s:
                    if ts is None:  # the segment the window starts in: its chunk's clock
                        ts = at + (s - ap) / SAMPLE_RATE
                    # a whole chunk inside the window (the common case) goes in as it is, no view
                    parts.append(a if p >= s and q <= e else a[max(0, s - p):e - p])
            gap = sum(max(0, min(g1, e) - max(g0, s)) for g0, g1 in self.gaps) if self.gaps else 0
            out.append(_new_tuple(RawWindow, (s, self._samples(parts, L), ts, gap)))
            self.next_win += self.hop
            self.cut_end = e

    def _samples(self, parts: list[np.ndarray], n: int) -> np.ndarray:
        """Segments (int16 units) -> (n,) float32 in [-1, 1], owned by the caller."""
        samples = np.empty(n, np.float32) if self.pool is None else self.pool.take(n)
        np.concatenate(parts, out=samples, casting="unsafe")  # int16 -> float32 is exact
        samples *= _FROM_PCM
        return samples

    def _cut_ahead(self) -> None:
        """Cut the complete chunks of the ahead grid that a later window holds and no cut window holds."""
        c, n = self.next_chunk, self.ahead
        if c < self.next_win:  # chunks before the next window: no window to come holds them
            c = _grid_up(self.next_win, n, self.phase)
        while c + n <= self.end_pos:
            e = c + n
            if e > self.cut_end and not self.ahead_paused and not any(g0 < e and g1 > c for g0, g1 in self.gaps):
                parts = [a[max(0, c - p):e - p] for p, a, _, _ in self.segs if p < e and p + len(a) > c]
                self.ahead_out.append(RawChunk(c, self._samples(parts, n)))
            c = e
        self.next_chunk = c

    def take_ahead(self) -> list[RawChunk]:
        """The chunks cut ahead since the last call, oldest first."""
        out, self.ahead_out = self.ahead_out, []
        return out

    def _trim(self) -> None:
        keep = min(self.next_win, self.end_pos)
        if keep > self.pos0:
            segs = self.segs
            while segs and segs[0][0] + len(segs[0][1]) <= keep:
                segs.popleft()
            if segs and segs[0][0] < keep:
                p, a, ap, at = segs[0]
                segs[0] = (keep, a[keep - p:], ap, at)
            self.pos0 = keep
        gaps = self.gaps
        while gaps and gaps[0][1] <= self.pos0:
            gaps.popleft()

    def start_at(self, pos: int) -> None:
        """Begin the (empty) ring at timeline `pos`, so audio arriving later than that is a gap."""
        self.pos0 = self.end_pos = self.cut_end = pos
        self.next_win = _grid_up(pos, self.hop, self.phase)
        if self.ahead:
            self.next_chunk = _grid_up(pos, self.ahead, self.phase)

    def set_phase(self, phase: int) -> None:
        """Move the grid of a ring that holds no audio yet (a new stream, before its first samples)."""
        if not 0 <= phase < self.hop:
            raise ValueError(f"the grid phase must be in [0, hop) = [0, {self.hop}) samples, got {phase}")
        if self.pos0 is not None and self.end_pos != self.pos0:
            raise ValueError("the grid of a ring that holds audio cannot move")
        self.phase = phase
        if self.pos0 is not None:
            self.start_at(self.pos0)

    def push(self, pos: int, samples: np.ndarray, ts: float) -> list[RawWindow] | tuple:
        """Add (n,) samples (int16 PCM or float32 in [-1, 1]) starting at timeline `pos` (>= the
        current end) captured at `ts`. Returns the windows completed (`NO_WINDOWS` when none)."""
        if pos == self.end_pos and self.pos0 is not None:
            # the common case, contiguous audio: one append, and window work only when one is due
            end = pos + len(samples)
            self.segs.append((pos, samples if samples.dtype == _I16 and not samples.flags.writeable
                              else self._units(samples), pos, ts))
            self.end_pos = end
            if self.next_win + self.L > end:
                if self.ahead and self.next_chunk + self.ahead <= end:
                    self._cut_ahead()
                return NO_WINDOWS
            out: list[RawWindow] = []
            self._emit(out)
            if self.ahead:
                self._cut_ahead()
            self._trim()
            return out
        out = []
        if self.pos0 is None:
            self.start_at(pos)  # the first grid point at or after pos
        end = self.end_pos
        if pos < end:
            raise ValueError(f"chunk at {pos} overlaps the buffer ending at {end}")
        if pos > end:
            self.gaps.append((end, pos))
            # windows that start before the gap are completed with zeros...
            if self.next_win < end:
                last_start = self.next_win + ((end - 1 - self.next_win) // self.hop) * self.hop
                fill_to = min(pos, last_start + self.L)
            else:
                fill_to = end
            self._zeros(fill_to - end, pos, ts)
            self._emit(out)
            if fill_to < pos:
                # ...windows entirely inside the gap are skipped (counted), and the ring restarts
                # at the first window that reaches the new audio.
                first = max(self.next_win, _grid_up(pos - self.L + 1, self.hop, self.phase))
                self.skipped_in_gap += (first - self.next_win) // self.hop
                self.next_win = first
                start = min(first, pos)
                self.segs.clear()
                self.pos0 = self.end_pos = start
                self._zeros(pos - start, pos, ts)
        self.segs.append((pos, self._units(samples), pos, ts))
        self.end_pos = pos + len(samples)
        self._emit(out)
        if self.ahead:
            self._cut_ahead()
        self._trim()
        return out


class PhasePlanner:
    """Grid phases that spread the windows of a worker's streams over the hop (see the module docstring).

    A stream's windows fall due when their last sample arrives; for a real-time stream that is one
    instant per hop, its *slot*: the due time modulo the hop on this worker's clock. `assign` places a
    new stream's slot in the middle of the largest free stretch of the hop between the slots of the
    running streams with the same hop (a lone stream keeps phase 0), by shifting its window grid by
    ``phase`` samples; `release` frees a slot when its stream ends or is forgotten.

    Pure bookkeeping, no clock of its own: the caller passes ``now`` (seconds, monotonic) and where the
    stream's latest received sample is. Phases are whole multiples of the stream's chunk length, and only
    a stream whose chunk length divides the hop is moved (the capture default: 100 ms chunks): its windows
    then end where a received chunk ends, so a window is cut as soon as its last chunk arrives (on a 20 ms
    grid a window waited 40 ms on average for the next chunk), and its acknowledged audio ends on its grid,
    so a restarted worker finds the grid again from the sample the stream resumes at (the service's
    ``_phase``). A stream with other chunk lengths keeps phase 0.
    """

    def __init__(self):
        self._slots: dict[str, tuple[int, float]] = {}  # stream id -> (hop in samples, slot in s)

    def assign(self, stream_id: str, window: int, hop: int, end_pos: int, now: float, chunk: int = 0) -> int:
        """The grid phase (samples, 0 <= phase < hop) of a new stream whose sample ``end_pos`` (the end of
        the chunk that made it known, ``chunk`` samples long, on its timeline) arrived at ``now``; its slot
        is kept until `release`."""
        hop_s = hop / SAMPLE_RATE
        regular = 0 < chunk <= hop and hop % chunk == 0
        # at phase 0 its windows start at multiples of the hop: the one starting at 0 is due when sample
        # `window` arrives, (window - end_pos) samples after `now`, and every other one whole hops from it
        natural = (now + (window - end_pos) / SAMPLE_RATE) % hop_s
        taken = sorted(s for h, s in (v for k, v in self._slots.items() if k != stream_id) if h == hop)
        phase = 0
        if taken and regular:
            gaps = [((taken[(i + 1) % len(taken)] - s) % hop_s or hop_s, s) for i, s in enumerate(taken)]
            width, start = max(gaps)
            target = (start + width / 2) % hop_s
            phase = round(((target - natural) % hop_s) * SAMPLE_RATE / chunk) * chunk % hop
        self._slots[stream_id] = (hop, (natural + phase / SAMPLE_RATE) % hop_s)
        return phase

    def keep(self, stream_id: str, hop: int, slot: float) -> None:
        """Record the slot of a stream whose phase was not assigned here (a resumed stream keeps its grid)."""
        self._slots[stream_id] = (hop, slot % (hop / SAMPLE_RATE))

    def release(self, stream_id: str) -> None:
        self._slots.pop(stream_id, None)

    def slots(self) -> dict[str, float]:
        """Stream id -> slot (seconds into the hop, on the caller's clock)."""
        return {k: s for k, (_, s) in self._slots.items()}


class StreamState:
    """Sequence checks, timeline and ring of one stream.

    `accept` classifies each chunk: ``"ok"``, ``"duplicate"`` (already have it: replay), ``"stale"``
    (an older sender epoch), ``"ended"`` (after end-of-stream), ``"inconsistent"`` (its position
    contradicts the sequence: forged or corrupt). Only ``"ok"`` chunks reach the ring.
    """

    def __init__(self, stream_id: str, window: int, hop: int, max_gap: int, pool: BufferPool | None = None,
                 ahead: int = 0, phase: int = 0):
        self.stream_id = stream_id
        self.ring = Ring(window, hop, pool, ahead, phase)
        self.max_gap = max_gap
        self.epoch: int | None = None
        self.offset = 0  # worker timeline = sender timeline + offset (changes on a sender restart)
        self.next_seq = 0
        self.next_sample = 0
        self.end_ts = 0.0
        self.ended = False
        self.gap_samples = 0  # total missing, over the stream's life
        self.recent_gaps: collections.deque[tuple[int, int]] = collections.deque(maxlen=16)  # (start, length)
        self.samples_in = 0
        # Chunks not yet acknowledged, as runs of equal-length contiguous chunks rather than one
        # (seq, end) entry per chunk (that entry was the largest per-chunk line of windowing, 11 %,
        # bench/PROFILE.md round 3): closed runs (first seq, end pos of that chunk, chunk length,
        # count) in `pending`, plus the open run (`run_seq`, `run_end`, `run_n`) that holds the
        # chunks `run_seq` .. `next_seq - 1` and grows with no per-chunk work while chunks arrive
        # in order with the same length. Chunk `run_seq + i` ends at `run_end + i * run_n`.
        self.pending: collections.deque[tuple[int, int, int, int]] = collections.deque()
        self.run_seq = 0
        self.run_end = 0
        self.run_n = -1  # -1: no open run
        self.acked = -1
        self.ack_reported: tuple[int, int] | None = None  # (epoch, seq) last handed to the socket thread
        self.ack_pos: int | None = None  # ring.pos0 when `ack_seq` last ran (the ack moves only with it)
        # starts of this stream's windows not yet through the model stage, oldest first (the
        # service keeps it): their audio is not acknowledged yet
        self.inflight: collections.deque[int] = collections.deque()
        self.last_seen = 0.0
        # (resume sample or None,) until the service sets its grid phase at its first chunk with samples
        self.phase_pending: tuple[int | None] | None = None

    def resume(self, sender_epoch: int, next_seq: int, next_sample: int) -> bool:
        """Start a stream this worker has no state for where its client says the acknowledged
        audio ended (after a worker restart); False (ignored) when the stream is already known."""
        if self.epoch is not None:
            return False
        self.epoch, self.next_seq, self.next_sample = sender_epoch, next_seq, next_sample
        self.acked = next_seq - 1
        self.ring.start_at(next_sample)
        return True

    def accept(self, a: WireAudio) -> tuple[str, list[RawWindow] | tuple]:
        # one tuple unpacking instead of a dozen attribute reads by name (this runs per chunk)
        _, epoch, seq, start, ts, samples, gap, eos = a
        n = len(samples)
        if seq == self.next_seq and start == self.next_sample and epoch == self.epoch and not gap and not self.ended:
            # the next chunk, where expected (the common case): no check below can fail, and
            # with the open run's length it joins that run with no bookkeeping at all
            if n != self.run_n:
                self._new_run(seq, start + self.offset + n, n)
        elif self.epoch is None or epoch > self.epoch:
            if self.epoch is not None:
                # the capture process restarted: sequence and timeline restart at 0; place the new
                # timeline after the old one, with the wall-clock gap between them.
                est_gap = max(0, round((ts - self.end_ts) * SAMPLE_RATE))
                self.offset = self.ring.end + est_gap - start
                self.gap_samples += est_gap
                self.recent_gaps.append((self.ring.end, est_gap))
                log.warning("stream %s: sender restarted; about %.2f s missing", self.stream_id, est_gap / SAMPLE_RATE)
                self.pending.clear()
                self.run_n = -1  # the old life's chunks are never acknowledged (as before)
            self.epoch, self.ended = epoch, False
            self.next_seq, self.next_sample = seq, start
            self.acked = seq - 1
            self._new_run(seq, start + self.offset + n, n)
        elif epoch < self.epoch:
            return _STALE
        elif self.ended:
            return _ENDED
        elif seq < self.next_seq:
            return _DUPLICATE
        else:
            jump = start - self.next_sample
            # same seq: the position must be exactly where the last chunk ended, plus the declared gap;
            # a later seq (chunks lost in between) must move forward at least by the declared gap.
            if (seq == self.next_seq and jump != gap) or jump < gap or jump > self.max_gap:
                return _INCONSISTENT
            if jump > 0:
                self.gap_samples += jump
                self.recent_gaps.append((self.next_sample + self.offset, jump))
                log.info("stream %s: %.3f s missing before chunk %d", self.stream_id, jump / SAMPLE_RATE, seq)
            self._new_run(seq, start + self.offset + n, n)
        pos = start + self.offset
        windows = self.ring.push(pos, samples, ts)
        self.next_seq, self.next_sample = seq + 1, start + n
        self.end_ts = ts + n / SAMPLE_RATE
        self.samples_in += n
        self.ended = eos
        return ("ok", windows) if windows else _OK_NONE

    def ack_seq(self) -> int:
        """Highest sequence whose samples no window still needs (all of them once ended), counting
        the windows still on their way through the model (`inflight`)."""
        keep = self.ack_pos = self.ring.pos0 if not self.ended else None
        if self.inflight:
            keep = self.inflight[0] if keep is None else min(keep, self.inflight[0])
        runs = self.pending
        while runs:
            seq0, end0, n, count = runs[0]
            k = _done_in_run(end0, n, count, keep)
            if k:
                self.acked = seq0 + k - 1
            if k < count:
                if k:
                    runs[0] = (seq0 + k, end0 + k * n, n, count - k)
                return self.acked
            runs.popleft()
        if self.run_n >= 0:
            k = _done_in_run(self.run_end, self.run_n, self.next_seq - self.run_seq, keep)
            if k:
                self.acked = self.run_seq + k - 1
                self.run_seq += k
                self.run_end += k * self.run_n
        return self.acked

    def _new_run(self, seq: int, end: int, n: int) -> None:
        """Close the open run (if it holds chunks) and open one at chunk `seq` ending at `end`, length n."""
        if self.run_n >= 0 and self.next_seq > self.run_seq:
            self.pending.append((self.run_seq, self.run_end, self.run_n, self.next_seq - self.run_seq))
        self.run_seq, self.run_end, self.run_n = seq, end, n


def _done_in_run(end0: int, n: int, count: int, keep: int | None) -> int:
    """How many of a run's `count` chunks (the first ending at `end0`, each n samples) end at or
    before `keep` (None: all)."""
    if keep is None:
        return count
    if end0 > keep:
        return 0
    if n == 0:  # empty chunks (e.g. a bare end-of-stream) all end where the first does
        return count
    return min(count, (keep - end0) // n + 1)
