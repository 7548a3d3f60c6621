"""Per-stream ring buffer and windowing, plus the sequence checks that keep a stream's timeline
honest (duplicates, lost chunks, restarts, forged positions).

Pure code (no threads, no sockets): the service feeds it chunks and collects windows.

Timeline: each chunk carries ``start_sample``, its position on the stream's timeline with gaps
included. Windows start on a fixed grid (multiples of the hop), so a restarted worker that
receives the replay of a stream cuts exactly the windows the dead worker would have cut.

Cost: this runs once per received chunk for every stream, so a chunk costs a few tuple and
attribute updates and no copy (the ring keeps the received samples); a window costs two numpy
calls (its samples gathered into an array of its own, then scaled).
"""

from __future__ import annotations

import collections
import logging
import sys
from dataclasses import dataclass

import numpy as np

from edge_coat.messages import SAMPLE_RATE
from edge_coat.transport.wire import WireAudio

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RawWindow:
    """A window before gating.

    Attributes:
        samples: shape ``(window_samples,)`` float32 (a copy).
    """

    start: int
    samples: np.ndarray  # (L,) float32
    start_ts: float
    gap_samples: int


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

    def __init__(self, window: int, hop: int, pool: BufferPool | None = None):
        if window <= 0 or hop <= 0:
            raise ValueError(f"window and hop must be > 0 samples, got {window} and {hop}")
        self.L, self.hop = window, hop
        self.pool = pool  # where window arrays come from (None: fresh arrays)
        self.segs: collections.deque[tuple[int, np.ndarray]] = collections.deque()  # (pos, (n,) int16 units)
        self.pos0: int | None = None  # timeline position of the first sample held
        self.end_pos = 0  # timeline position just after the last sample held
        self.next_win = 0
        self.gaps: collections.deque[tuple[int, int]] = collections.deque()  # [start, end) zero-filled
        self.anchors: collections.deque[tuple[int, int, float]] = collections.deque()  # (pos, end, capture ts)
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

    def _zeros(self, n: int) -> None:
        if n > 0:
            self.segs.append((self.end_pos, np.zeros(n, _I16)))
            self.end_pos += n

    def _ts(self, pos: int) -> float:
        """Capture time of timeline position `pos`: from the chunk holding it or, inside a gap,
        from the chunk right after the gap."""
        best = self.anchors[0]
        for a in self.anchors:
            if a[0] > pos:
                if pos >= best[1]:  # pos lies in a gap: the later chunk's clock is the right one
                    best = a
                break
            best = a
        return best[2] + (pos - best[0]) / SAMPLE_RATE

    def _emit(self, out: list[RawWindow]) -> None:
        L = self.L
        while self.next_win + L <= self.end_pos:
            s = self.next_win
            e = s + L
            parts = []
            for p, a in self.segs:
                if p >= e:
                    break
                if p + len(a) > s:
                    parts.append(a[max(0, s - p):e - p])
            gap = sum(max(0, min(g1, e) - max(g0, s)) for g0, g1 in self.gaps) if self.gaps else 0
            # (L,) float32 in [-1, 1], owned by the window
            samples = np.empty(L, np.float32) if self.pool is None else self.pool.take(L)
            np.concatenate(parts, out=samples, casting="unsafe")  # int16 -> float32 is exact
            samples *= _FROM_PCM
            out.append(RawWindow(s, samples, self._ts(s), gap))
            self.next_win += self.hop

    def _trim(self) -> None:
        keep = min(self.next_win, self.end_pos)
        if keep > self.pos0:
            segs = self.segs
            while segs and segs[0][0] + len(segs[0][1]) <= keep:
                segs.popleft()
            if segs and segs[0][0] < keep:
                p, a = segs[0]
                segs[0] = (keep, a[keep - p:])
            self.pos0 = keep
        while self.gaps and self.gaps[0][1] <= self.pos0:
            self.gaps.popleft()
        while len(self.anchors) > 1 and self.anchors[1][0] <= self.pos0:
            self.anchors.popleft()

    def start_at(self, pos: int) -> None:
        """Begin the (empty) ring at timeline `pos`, so audio arriving later than that is a gap."""
        self.pos0 = self.end_pos = pos
        self.next_win = -(-pos // self.hop) * self.hop

    def push(self, pos: int, samples: np.ndarray, ts: float) -> list[RawWindow]:
        """Add (n,) samples (int16 PCM or float32 in [-1, 1]) starting at timeline `pos` (>= the
        current end) captured at `ts`."""
        if self.pos0 is not None and pos == self.end_pos:
            # the common case, contiguous audio: two appends, and window work only when one is due
            end = pos + len(samples)
            self.anchors.append((pos, end, ts))
            self.segs.append((pos, samples if samples.dtype == _I16 and not samples.flags.writeable
                              else self._units(samples)))
            self.end_pos = end
            if self.next_win + self.L > end:
                return []
            out: list[RawWindow] = []
            self._emit(out)
            self._trim()
            return out
        out = []
        if self.pos0 is None:
            self.start_at(pos)  # the first grid point at or after pos
        end = self.end_pos
        if pos < end:
            raise ValueError(f"chunk at {pos} overlaps the buffer ending at {end}")
        self.anchors.append((pos, pos + len(samples), ts))
        if pos > end:
            self.gaps.append((end, pos))
            # windows that start before the gap are completed with zeros...
            if self.next_win < end:
                last_start = self.next_win + ((end - 1 - self.next_win) // self.hop) * self.hop
                fill_to = min(pos, last_start + self.L)
            else:
                fill_to = end
            self._zeros(fill_to - end)
            self._emit(out)
            if fill_to < pos:
                # ...windows entirely inside the gap are skipped (counted), and the ring restarts
                # at the first window that reaches the new audio.
                first = max(self.next_win, (-(-(pos - self.L + 1) // self.hop)) * self.hop)
                self.skipped_in_gap += (first - self.next_win) // self.hop
                self.next_win = first
                start = min(first, pos)
                self.segs.clear()
                self.pos0 = self.end_pos = start
                self._zeros(pos - start)
        self.segs.append((pos, self._units(samples)))
        self.end_pos = pos + len(samples)
        self._emit(out)
        self._trim()
        return out


class StreamState:
    """Sequence checks, timeline and ring of one stream.

    `accept` classifies each chunk: ``"ok"``, ``"duplicate"`` (already have it: replay), ``"stale"``
    (an older sender epoch), ``"ended"`` (after end-of-stream), ``"inconsistent"`` (its position
    contradicts the sequence: forged or corrupt). Only ``"ok"`` chunks reach the ring.
    """

    def __init__(self, stream_id: str, window: int, hop: int, max_gap: int, pool: BufferPool | None = None):
        self.stream_id = stream_id
        self.ring = Ring(window, hop, pool)
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
        self.pending: collections.deque[tuple[int, int]] = collections.deque()  # (seq, end pos) not yet acked
        self.acked = -1
        self.ack_reported: tuple[int, int] | None = None  # (epoch, seq) last handed to the socket thread
        self.ack_pos: int | None = None  # ring.pos0 when `ack_seq` last ran (the ack moves only with it)
        # starts of this stream's windows not yet through the model stage, oldest first (the
        # service keeps it): their audio is not acknowledged yet
        self.inflight: collections.deque[int] = collections.deque()
        self.last_seen = 0.0

    def resume(self, sender_epoch: int, next_seq: int, next_sample: int) -> bool:
        """Start a stream this worker has no state for where its client says the acknowledged
        audio ended (after a worker restart); False (ignored) when the stream is already known."""
        if self.epoch is not None:
            return False
        self.epoch, self.next_seq, self.next_sample = sender_epoch, next_seq, next_sample
        self.acked = next_seq - 1
        self.ring.start_at(next_sample)
        return True

    def accept(self, a: WireAudio) -> tuple[str, list[RawWindow]]:
        n = len(a.samples)
        if (a.seq == self.next_seq and a.start_sample == self.next_sample and a.sender_epoch == self.epoch
                and not a.gap_samples and not self.ended):
            pass  # the next chunk, where expected (the common case): no check below can fail
        elif self.epoch is None or a.sender_epoch > self.epoch:
            if self.epoch is not None:
                # the capture process restarted: sequence and timeline restart at 0; place the new
                # timeline after the old one, with the wall-clock gap between them.
                est_gap = max(0, round((a.capture_ts - self.end_ts) * SAMPLE_RATE))
                self.offset = self.ring.end + est_gap - a.start_sample
                self.gap_samples += est_gap
                self.recent_gaps.append((self.ring.end, est_gap))
                log.warning("stream %s: sender restarted; about %.2f s missing", self.stream_id, est_gap / SAMPLE_RATE)
                self.pending.clear()
            self.epoch, self.ended = a.sender_epoch, False
            self.next_seq, self.next_sample = a.seq, a.start_sample
            self.acked = a.seq - 1
        elif a.sender_epoch < self.epoch:
            return "stale", []
        elif self.ended:
            return "ended", []
        elif a.seq < self.next_seq:
            return "duplicate", []
        else:
            jump = a.start_sample - self.next_sample
            # same seq: the position must be exactly where the last chunk ended, plus the declared gap;
            # a later seq (chunks lost in between) must move forward at least by the declared gap.
            if (a.seq == self.next_seq and jump != a.gap_samples) or jump < a.gap_samples or jump > self.max_gap:
                return "inconsistent", []
            if jump > 0:
                self.gap_samples += jump
                self.recent_gaps.append((self.next_sample + self.offset, jump))
                log.info("stream %s: %.3f s missing before chunk %d", self.stream_id, jump / SAMPLE_RATE, a.seq)
        windows = self.ring.push(a.start_sample + self.offset, a.samples, a.capture_ts)
        self.next_seq, self.next_sample = a.seq + 1, a.start_sample + n
        self.end_ts = a.capture_ts + n / SAMPLE_RATE
        self.samples_in += n
        self.pending.append((a.seq, a.start_sample + self.offset + n))
        self.ended = a.end_of_stream
        return "ok", windows

    def ack_seq(self) -> int:
        """Highest sequence whose samples no window still needs (all of them once ended), counting
        the windows still on their way through the model (`inflight`)."""
        keep = self.ack_pos = self.ring.pos0 if not self.ended else None
        if self.inflight:
            keep = self.inflight[0] if keep is None else min(keep, self.inflight[0])
        while self.pending and (keep is None or self.pending[0][1] <= keep):
            self.acked = self.pending.popleft()[0]
        return self.acked
