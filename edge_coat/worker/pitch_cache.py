"""Per-stream cache of pitch frames: the ``pitch`` reading of a stream's overlapping windows costs the YIN frames
of the audio each window adds, not of the whole window (issue 14).

The reading (``edge_coat.experts.dsp.pitch_readings``) decimates a window to 8 kHz, runs YIN on 64 ms frames
every 20 ms and reduces them to the median F0 of the voiced frames and the voiced share. With 10 s windows and a
2 s hop each frame is in 5 windows. What is reused, exactly:

* A frame's values (F0, voicing, energy) depend on the 16 kHz samples within ``FRAME_REACH`` (544) of its
  centre. A frame at least that far inside a window (its *inner* frames: all but 2 at each end of a 10 s
  window) reads the same, to the bit, in every window that holds it at the same place on the stream's
  timeline: those are kept, keyed by the absolute sample of their centres.
* A window's edge frames see its zero padding and the decimation filter's edge, so they differ from window to
  window: they are computed for each window, on a short stretch at its head and on the stretch at its tail that
  also holds the frames no earlier window had (each stretch with ``FRAME_REACH`` of context, whose frames are
  thrown away). A window therefore reads from the same frames as ``pitch_readings`` gives it, and its reading
  equals ``pitch_readings``'s exactly (tests/worker/test_pitch_cache.py, on real speech).

What a stream keeps: the inner frames of its latest window (what the next windows can reuse: windows only move
forward) and a check sample of that window's audio (one sample per frame, on the frame grid): frames are reused
only where the new window's audio has the same check samples, so audio that is not what the frames came from
(a replay after a gap) is a miss, never a wrong hit. At most ~16 bytes per frame plus 4 per check sample:
~10 KB for a 10 s window. At most ``max_streams`` streams (the least recently used is dropped).

When a stream starts over (its frames dropped): the rules of the encoder cache
(``edge_coat.worker.encoder_cache.reset_reason``) on the 20 ms frame grid: a window that carries a gap, a new
sender run, a timeline that goes backwards, a window that does not start a whole number of frames after the
one before (a hop that is not a whole number of 20 ms frames: each window is then read whole, correct and as
slow as without the cache); and at the end of the stream (``drop``, from the worker's ``EndOfStream``). A
silent window (peak under -60 dBFS: not analysed) keeps nothing. A stream's frames are never looked up for
another stream.

Used from the model thread only (no lock). ``readings(windows)`` reads a batch: the frames every window of it
needs go through one ``pitch_frames`` call (one FFT call), two windows of one stream in the same batch in two.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edge_coat.experts.dsp import (
    FRAME_REACH, PitchFrames, PitchReading, is_silent, pitch_frames, reading_hop_samples, reduce_pitch,
)
from edge_coat.messages import Window
from edge_coat.worker.encoder_cache import reset_reason

log = logging.getLogger(__name__)

#: the counters ``stats`` always reports (``frames_reused`` / ``frames_computed``: frames taken from the cache /
#: run through YIN, context frames included; ``windows_<how>``: read with reused frames, whole, or silent)
COUNTERS = ("windows_cached", "windows_whole", "windows_silent", "frames_reused", "frames_computed", "mismatches",
            "streams_evicted", "resets_gap", "resets_restart", "resets_rewind", "resets_off_grid", "resets_ended",
            "resets_idle")


@dataclass
class _Stream:
    """One stream's frames: the inner frames of the latest window it read, the first centred on 16 kHz sample
    ``held_start`` (None: none held), and a check sample of that window's audio (one per frame from
    ``check_start``, that window's start). ``last_start``: the start of its latest window."""

    sid: str
    epoch: int
    last_start: int | None = None
    held_start: int | None = None
    held: PitchFrames | None = None
    check: np.ndarray | None = None  # (C,) float32
    check_start: int = 0

    @property
    def nbytes(self) -> int:
        if self.held is None:
            return 0
        return sum(a.nbytes for a in self.held) + self.check.nbytes


@dataclass
class _Plan:
    """How one window's frames are made: stretches of its samples to run (start, end, first frame of the
    stretch kept), and the cached frames between them (window frames ``reuse[0]..reuse[1]`` from ``held``)."""

    window: Window
    stream: _Stream
    stretches: list[tuple[int, int, int]]
    held: PitchFrames | None = None
    reuse: tuple[int, int] = (0, 0)


class PitchFrameCache:
    """Pitch frames per stream (see the module docstring).

    Use::

        cache = PitchFrameCache()
        readings = cache.readings(windows)   # one PitchReading per window, as pitch_readings gives
        frames = cache.frames(windows)       # or their frames (PitchFrames, None when silent)
        cache.drop(stream_id, "ended")       # at EndOfStream
        cache.stats()
    """

    def __init__(self, *, hop_s: float = 0.02, voiced_threshold: float = 0.8, silence_dbfs: float = -60.0,
                 max_streams: int = 4096):
        if max_streams < 1:
            raise ValueError(f"expected max_streams >= 1, got {max_streams}")
        self.hop_s, self.voiced_threshold, self.silence_dbfs = hop_s, voiced_threshold, silence_dbfs
        self.hop = reading_hop_samples(hop_s)  # 16 kHz samples between frame centres (the grid)
        self.inner = -(-FRAME_REACH // self.hop)  # frames at the head of a window that see its edge
        self.max_streams = max_streams
        self._streams: collections.OrderedDict[str, _Stream] = collections.OrderedDict()  # least recent first
        self.counts = collections.Counter(dict.fromkeys(COUNTERS, 0))
        self.nbytes = 0  # held by every stream

    # ---- the batch ----------------------------------------------------------------------------
    def readings(self, windows: Sequence[Window]) -> list[PitchReading]:
        """The pitch reading of each window (any streams, each stream's in time order; samples finite, at least
        1024): what ``pitch_readings`` gives for its samples."""
        return [reduce_pitch(f, voiced_threshold=self.voiced_threshold, silence_dbfs=self.silence_dbfs)
                if f is not None else PitchReading(0.0, 0.0) for f in self.frames(windows)]

    def frames(self, windows: Sequence[Window]) -> list[PitchFrames | None]:
        """Each window's pitch frames (None: a silent window, not analysed): what ``pitch_frames`` gives for its
        samples, from the frames its stream's earlier windows held and the stretches it adds."""
        out: list[PitchFrames | None] = [None] * len(windows)
        rounds: list[list[int]] = []  # a stream's second window of the batch reuses its first one's frames
        seen: collections.Counter = collections.Counter()
        for i, w in enumerate(windows):
            k = seen[w.stream_id]
            seen[w.stream_id] += 1
            if k == len(rounds):
                rounds.append([])
            rounds[k].append(i)
        for idx in rounds:
            plans = [(i, plan) for i in idx if (plan := self._plan(windows[i])) is not None]
            runs = [p.window.samples[a:b] for _, p in plans for a, b, _ in p.stretches]
            computed = iter(pitch_frames(runs, hop_s=self.hop_s))  # one FFT call for the round
            for i, plan in plans:
                parts = [self._keep(next(computed), first) for _, _, first in plan.stretches]
                out[i] = self._assemble(plan, parts)
                self._hold(plan, out[i])
        return out

    def _plan(self, w: Window) -> _Plan | None:
        """The stretches a window needs computed (None: silent, reading (0, 0)), after the reset rules."""
        st = self._stream_for(w)
        x = w.samples
        if is_silent(x, self.silence_dbfs):
            self.nbytes -= st.nbytes
            st.held = st.held_start = st.check = None
            self.counts["windows_silent"] += 1
            return None
        n = self._frames(x.size)
        first, end = self.inner, self._inner_end(x.size)  # inner frames: first..end-1
        reuse_end = first
        if st.held is not None:
            h0 = (st.held_start - w.start_sample) // self.hop  # window frame of the first held frame (<= first)
            reuse_end = min(h0 + st.held.f0_hz.size, end)
            if reuse_end > first and not self._same_audio(st, w):
                self.counts["mismatches"] += 1
                reuse_end = first
        if reuse_end <= 2 * first:  # little or nothing to reuse: the whole window
            self.counts["windows_whole"] += 1
            self.counts["frames_computed"] += n
            return _Plan(w, st, [(0, x.size, 0)])
        tail = self.hop * (reuse_end - first)  # the tail stretch's first frame is ``first`` frames before reuse_end
        head = self.hop * (first - 1) + FRAME_REACH
        self.counts["windows_cached"] += 1
        self.counts["frames_reused"] += reuse_end - first
        self.counts["frames_computed"] += self._frames(head) + self._frames(x.size - tail)
        return _Plan(w, st, [(0, head, 0), (tail, x.size, first)], held=st.held,
                     reuse=(first - h0, reuse_end - h0))

    @staticmethod
    def _keep(frames: PitchFrames, first: int) -> PitchFrames:
        """A stretch's frames from ``first`` on (those before see the stretch's cut, not the window's audio)."""
        return PitchFrames(*(a[first:] for a in frames))

    def _assemble(self, plan: _Plan, parts: list[PitchFrames]) -> PitchFrames:
        """The window's frames from its stretches' kept frames and the reused ones, in time order."""
        if len(parts) == 1:
            return parts[0]
        head, tail = parts
        a, b = plan.reuse
        return PitchFrames(*(np.concatenate([h[: self.inner], c[a:b], t])
                             for h, c, t in zip(head, plan.held, tail)))

    def _hold(self, plan: _Plan, frames: PitchFrames) -> None:
        """Keep the window's inner frames and its check sample (unless its stream was reset or dropped since)."""
        st, w = plan.stream, plan.window
        if self._streams.get(st.sid) is not st:
            return
        end = self._inner_end(w.samples.size)
        self.nbytes -= st.nbytes
        st.held = PitchFrames(*(a[self.inner:end].copy() for a in frames))
        st.held_start = w.start_sample + self.inner * self.hop
        st.check = w.samples[:: self.hop].copy()
        st.check_start = w.start_sample
        self.nbytes += st.nbytes

    def _same_audio(self, st: _Stream, w: Window) -> bool:
        """The check samples of the stream's latest window equal the new window's where the two overlap
        (both on the frame grid: the window starts a whole number of frames after the latest one)."""
        skip = (w.start_sample - st.check_start) // self.hop
        old = st.check[skip:]  # (C - skip,)
        new = w.samples[: old.size * self.hop: self.hop]
        return old.size > 0 and np.array_equal(old[: new.size], new)

    def _frames(self, samples: int) -> int:
        """Frames of ``pitch_frames`` on ``samples`` 16 kHz samples (1 + (N/2) // (hop/2))."""
        return 1 + (-(-samples // 2)) // (self.hop // 2)

    def _inner_end(self, samples: int) -> int:
        """One past the window's last inner frame (centre at least ``FRAME_REACH`` before its end)."""
        return min(self._frames(samples), (samples - FRAME_REACH) // self.hop + 1)

    # ---- per stream ---------------------------------------------------------------------------
    def _stream_for(self, w: Window) -> _Stream:
        """The stream's state for window ``w``, after the reset rules (a new, empty state after a reset)."""
        sid = w.stream_id
        st = self._streams.get(sid)
        reason = reset_reason(w, st, self.hop)
        if st is not None and reason is not None:
            self.counts[f"resets_{reason}"] += 1
            log.debug("stream %s: pitch frames dropped (%s) at sample %d", sid, reason, w.start_sample)
            self._forget(sid)
        if st is None or reason is not None:
            st = self._streams[sid] = _Stream(sid, epoch=w.sender_epoch)
            while len(self._streams) > self.max_streams:
                old = next(iter(self._streams))
                self._forget(old)
                self.counts["streams_evicted"] += 1
                log.debug("pitch cache: stream %s dropped (more than %d streams)", old, self.max_streams)
        else:
            self._streams.move_to_end(sid)
        st.last_start = w.start_sample
        return st

    def drop(self, stream_id: str, reason: str = "ended") -> None:
        """Forget a stream (its end: the worker's ``EndOfStream``, reason "ended" or "idle")."""
        if self._forget(stream_id):
            self.counts[f"resets_{reason}"] += 1

    def _forget(self, sid: str) -> bool:
        st = self._streams.pop(sid, None)
        if st is None:
            return False
        self.nbytes -= st.nbytes
        return True

    # ---- description --------------------------------------------------------------------------
    def stream_frames(self, stream_id: str) -> int:
        """Frames held for a stream (0 when none)."""
        st = self._streams.get(stream_id)
        return st.held.f0_hz.size if st is not None and st.held is not None else 0

    def stream_bytes(self, stream_id: str) -> int:
        """Bytes held for a stream (frames and check sample; 0 when none)."""
        st = self._streams.get(stream_id)
        return st.nbytes if st is not None else 0

    def stats(self) -> dict:
        """Streams and bytes held, the share of frames reused and the counters (see ``COUNTERS``)."""
        c = self.counts
        looked = c["frames_reused"] + c["frames_computed"]
        return {"streams": len(self._streams), "bytes": self.nbytes,
                "reused_share": round(c["frames_reused"] / looked, 4) if looked else None, **c}
