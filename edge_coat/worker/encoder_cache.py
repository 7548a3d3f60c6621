"""Per-stream cache of encoded audio chunks: the model stage pays for each second of a stream's audio
once, not once per window that covers it.

Why it is exact: a model whose ``chunk_features`` is 'chunk' (coat-tiny 1.0) encodes a window longer
than its encoder input as consecutive encoder-length chunks, each with its own log-mel features, and
concatenates their valid audio positions (``CoatModel.encode``). A chunk therefore encodes the same in
every window that holds it at the same place on the stream's timeline: with 10 s windows, a 2 s hop
and 2 s chunks, each window shares 4 of its 5 chunks with the window before. A window is built from
the cached chunks plus the ones it adds, and equals the whole-window encoding up to float noise
(tests/worker/test_encoder_cache.py). Models with window-level features (``chunk_features``
'window', coat-tiny 0.2.0) cannot be cached this way; the stage then encodes whole windows.

What a stream keeps: the encoded valid positions ``(T_c, D)`` of its chunks, keyed by the chunk's place
on the stream's timeline (first sample, length) and checked against a strided sample of the chunk's
samples (a chunk that is not the audio it was encoded from is a miss, never a wrong hit). Bounded:
chunks that start before the stream's latest window are dropped after each batch (windows only move
forward), at most ``max_chunks`` per stream (the longest window's chunks), at most ``max_streams``
streams (the least recently used is dropped).

When a stream starts over (all its chunks dropped): at a window that carries a gap (zero-filled audio:
the chunks around it are not the audio the next windows will hold after a replay), at a new sender run
(``sender_epoch``), when its timeline goes backwards, at the end of the stream (``drop``, from the
worker's ``EndOfStream``), and when its windows are not on the chunk grid of the ones before (a hop
that is not a whole number of chunks: the stream then encodes whole windows and keeps nothing).
A stream's chunks are never looked up for another stream.

Encoding ahead: ``encode_ahead(chunks, encode_chunks)`` takes chunks of a stream's audio that no window
holds yet (``AudioChunk``, cut by the worker's windowing on the chunk grid while the model thread would
otherwise wait) and stores their encodings like a window's, so a stream's first window after its start
(or after a reset) encodes only the chunk that completed it, not all of them. The same reset rules
apply (a chunk of a new sender run starts the stream over); a chunk that can no longer be in a window
(behind the stream's latest window, of an older run, off the grid, or on an uncached stream) is
skipped, never a reason to reset, so chunks that reach the stage late (the worker runs windows first)
change nothing. A stream the cache meets through a chunk has no window yet (``last_start`` None): the
chunks ahead of its first window must lie on the grid of the first one (``origin``: window grids have a
phase, `edge_coat.worker.windowing.PhasePlanner`), and its first window is checked against nothing.

The cache is used from the model thread only (no lock). ``encode(windows, encode_chunks)`` is the entry
point for a batch: it looks up every window's chunks, encodes the misses of the whole batch (every
stream) in one ``encode_chunks`` call, stores them, and returns the batch's audio positions.

Per-frame features kept alongside (``frames``, the thinking block's per-frame part,
``ThinkingBlock.frame_features``): a function of each audio position alone, so it is as exact to keep per
chunk as the encoding. With ``EncoderCache(..., frames=fn)`` every chunk encoded (in a window's batch or
ahead) also goes through ``fn`` ((N, Tc, D) -> (N, Tc, F)), in one call for all the chunks encoded
together, and is stored with the chunk under the same key, dropped by the same rules and counted in the
same bytes; ``encode_with_frames`` returns the windows' frames with their audio positions.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from edge_coat.messages import AudioChunk, Window

log = logging.getLogger(__name__)

#: samples compared per chunk (a strided sample) before a cached encoding is reused
CHECK_SAMPLES = 64

#: the counters ``stats`` always reports (``resets_<reason>``: a stream's chunks dropped, for that reason;
#: ``hits_ahead``: hits on chunks encoded ahead; ``ahead_encoded`` / ``ahead_held`` / ``ahead_skipped``: chunks
#: handed ahead that were encoded, were already held, or can no longer be in a window)
COUNTERS = ("hits", "encoded", "shared_in_batch", "mismatches", "windows_uncached", "streams_evicted",
            "resets_gap", "resets_restart", "resets_rewind", "resets_off_grid", "resets_ended", "resets_idle",
            "hits_ahead", "ahead_encoded", "ahead_held", "ahead_skipped")

EncodeChunks = Callable[[list[np.ndarray]], tuple[torch.Tensor, torch.Tensor]]
#: encoded chunks (N, Tc, D) -> per-frame features (N, Tc, F), each output frame a function of its input frame
FrameFeatures = Callable[[torch.Tensor], torch.Tensor]


def reset_reason(w: Window, state, grid: int) -> str | None:
    """Why a stream's cached state cannot serve its next window ``w`` (None: it can), the rules every cache
    keyed on a stream's timeline follows (this one, ``edge_coat.worker.pitch_cache``): "gap" (``w`` carries
    zero-filled audio), "restart" (a new sender run), "rewind" (its timeline went backwards), "off_grid" (``w``
    does not start a whole number of ``grid`` samples after the stream's latest window). ``state``: the
    stream's state (``epoch``, ``last_start``: its latest window's start, None when it has none), None when
    the cache holds nothing for the stream."""
    if w.gap_seconds > 0:
        return "gap"
    if state is None:
        return None
    if w.sender_epoch != state.epoch:
        return "restart"
    if state.last_start is not None and w.start_sample < state.last_start:
        return "rewind"
    if state.last_start is not None and (w.start_sample - state.last_start) % grid:
        return "off_grid"
    return None


@dataclass
class _Stream:
    """One stream's encoded chunks: (first sample, length) -> (check sample (c,) float32, valid positions
    (T_c, D), encoded ahead of its windows, their per-frame features (T_c, F) or None), oldest first, and
    the bytes they hold. ``last_start``: the start of its latest window (None: none yet, it was met through
    chunks encoded ahead)."""

    sid: str
    epoch: int
    last_start: int | None
    uncached: bool = False  # its windows are off the chunk grid: whole windows, nothing kept
    origin: int | None = None  # before its first window: the start of its first chunk encoded ahead (its grid)
    chunks: collections.OrderedDict = field(default_factory=collections.OrderedDict)
    nbytes: int = 0

    @staticmethod
    def size(entry: tuple[np.ndarray, torch.Tensor, bool, torch.Tensor | None]) -> int:
        check, positions, _, frames = entry
        extra = frames.element_size() * frames.nelement() if frames is not None else 0
        return check.nbytes + positions.element_size() * positions.nelement() + extra

    def put(self, key: tuple[int, int], entry: tuple[np.ndarray, torch.Tensor, bool, torch.Tensor | None]
            ) -> tuple[int, int]:
        """Store a chunk (a replaced one moves to the end); returns the change in (chunks, bytes) held."""
        chunks, freed = self.pop(key)
        self.chunks[key] = entry
        self.nbytes += self.size(entry)
        return 1 - chunks, self.size(entry) - freed

    def pop(self, key: tuple[int, int] | None = None) -> tuple[int, int]:
        """Remove the chunk at ``key`` (None: the oldest); returns the (chunks, bytes) freed."""
        entry = self.chunks.pop(key, None) if key is not None else self.chunks.popitem(last=False)[1]
        if entry is None:
            return 0, 0
        self.nbytes -= self.size(entry)
        return 1, self.size(entry)


class EncoderCache:
    """Encoded chunks per stream (see the module docstring).

    Use::

        cache = EncoderCache(model.chunk_samples, max_chunks=15)
        cache.encode_ahead(chunks, model.encode_chunks)            # AudioChunk list, while idle
        audio, mask = cache.encode(windows, model.encode_chunks)   # (B, T, D), (B, T) bool
        cache.drop(stream_id, "ended")                              # at EndOfStream
        cache.stats()

        cache = EncoderCache(model.chunk_samples, max_chunks=15, frames=block.frame_features)
        audio, mask, frames = cache.encode_with_frames(windows, model.encode_chunks)  # + (B, T, F)
    """

    def __init__(self, chunk_samples: int, *, max_chunks: int, max_streams: int = 4096,
                 frames: FrameFeatures | None = None):
        if chunk_samples <= 0 or max_chunks < 1 or max_streams < 1:
            raise ValueError(f"expected chunk_samples > 0, max_chunks >= 1, max_streams >= 1; got "
                             f"{chunk_samples}, {max_chunks}, {max_streams}")
        self.chunk_samples = chunk_samples
        self.frames = frames
        self.max_chunks = max_chunks
        self.max_streams = max_streams
        self._stride = max(1, chunk_samples // CHECK_SAMPLES)
        self._streams: collections.OrderedDict[str, _Stream] = collections.OrderedDict()  # least recent first
        self.counts = collections.Counter(dict.fromkeys(COUNTERS, 0))
        self.nchunks = 0  # held by every stream
        self.nbytes = 0

    # ---- the batch ----------------------------------------------------------------------------
    def encode(self, windows: Sequence[Window], encode_chunks: EncodeChunks) -> tuple[torch.Tensor, torch.Tensor]:
        """``encode_with_frames`` without the frames: (embeds (B, T, D), mask (B, T) bool)."""
        embeds, mask, _ = self.encode_with_frames(windows, encode_chunks)
        return embeds, mask

    def encode_with_frames(self, windows: Sequence[Window], encode_chunks: EncodeChunks
                           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The audio positions of ``windows`` (any streams, each stream's in time order): (embeds (B, T, D),
        mask (B, T) bool), each window's valid positions first, then padding (mask False) up to the longest
        window's: what ``CoatModel.encode`` returns, up to float noise and the padding length.

        Chunks that no earlier window of their stream encoded go through ``encode_chunks`` (list of (n,)
        float32 -> ((N, Tc, D), (N, Tc) bool)) in one call for the whole batch; a chunk two windows of the
        batch share is encoded once. Third: the windows' per-frame features (B, T, F) laid out like the embeds
        (None without ``frames``), the batch's new chunks' in one ``frames`` call."""
        misses: list[np.ndarray] = []
        to_store: list[tuple[_Stream, tuple[int, int], np.ndarray, int]] = []  # (stream, key, check, miss index)
        pending: dict[tuple, int] = {}  # (stream id, key, check bytes) -> index in misses
        where: list[list[tuple[str, object]]] = []  # per window, per chunk: ("hit", positions) or ("new", index)
        counts = self.counts
        for w in windows:
            st = self._stream_for(w)
            refs = []
            for offset in range(0, w.samples.size, self.chunk_samples):
                chunk = w.samples[offset:offset + self.chunk_samples]  # (n,) float32, a view
                key = (w.start_sample + offset, chunk.size)
                check = chunk[::self._stride]
                hit = st.chunks.get(key)
                if hit is not None and np.array_equal(hit[0], check):
                    refs.append(("hit", hit))
                    counts["hits"] += 1
                    if hit[2]:
                        counts["hits_ahead"] += 1
                    continue
                if hit is not None:  # the same place with other audio: never reused
                    counts["mismatches"] += 1
                pk = (w.stream_id, key, check.tobytes())
                j = pending.get(pk)
                if j is None:
                    j = pending[pk] = len(misses)
                    misses.append(chunk)
                    if not st.uncached:
                        to_store.append((st, key, check.copy(), j))
                else:  # an earlier window of this batch encodes it
                    counts["shared_in_batch"] += 1
                refs.append(("new", j))
            where.append(refs)
        counts["encoded"] += len(misses)
        new: list[tuple] = []  # per miss: an entry without its check sample (None, positions, False, frames)
        if misses:
            new = self._encode_new(misses, encode_chunks, ahead=False)
        for st, key, check, j in to_store:
            if self._streams.get(st.sid) is st:  # not reset or dropped later in this batch
                dc, db = st.put(key, (check, *new[j][1:]))
                self.nchunks += dc
                self.nbytes += db
        entries = [[r[1] if r[0] == "hit" else new[r[1]] for r in refs] for refs in where]
        embeds, mask = self._join([[e[1] for e in row] for row in entries])
        frames = self._join([[e[3] for e in row] for row in entries])[0] if self.frames is not None else None
        for sid in {w.stream_id for w in windows}:
            self._evict(sid)
        return embeds, mask, frames

    def _encode_new(self, chunks: list[np.ndarray], encode_chunks: EncodeChunks, *, ahead: bool) -> list[tuple]:
        """Encode ``chunks`` in one call (and their per-frame features in one ``frames`` call): per chunk
        (None, valid positions (T_j, D), ahead, valid frames (T_j, F) or None)."""
        embeds, mask = encode_chunks(chunks)  # (N, Tc, D), (N, Tc) bool
        feats = self.frames(embeds) if self.frames is not None else None  # (N, Tc, F)
        return [(None, embeds[j][mask[j]], ahead, feats[j][mask[j]] if feats is not None else None)
                for j in range(len(chunks))]

    def encode_ahead(self, chunks: Sequence[AudioChunk], encode_chunks: EncodeChunks) -> int:
        """Encode and keep chunks that the streams' next windows will hold (each stream's in time order),
        in one ``encode_chunks`` call; returns how many were encoded. A chunk already held (same place,
        same check sample) is not encoded again; one that can no longer be in a window is skipped (see the
        module docstring)."""
        todo: dict[tuple[str, tuple[int, int]], tuple[_Stream, np.ndarray, np.ndarray]] = {}
        counts = self.counts
        for c in chunks:
            st = self._stream_for_chunk(c)
            key = (c.start_sample, c.samples.size)
            check = c.samples[::self._stride]
            if st is not None and st.last_start is None and st.origin is None:
                st.origin = c.start_sample  # its first chunk sets its grid (a window grid has a phase)
            if st is None or (c.start_sample - (st.origin if st.last_start is None else st.last_start)) % \
                    self.chunk_samples:
                counts["ahead_skipped"] += 1
                continue
            held = st.chunks.get(key)
            if (held is not None and np.array_equal(held[0], check)) or (c.stream_id, key) in todo:
                counts["ahead_held"] += 1
                continue
            todo[(c.stream_id, key)] = (st, check.copy(), c.samples)
        if not todo:
            return 0
        new = self._encode_new([samples for _, _, samples in todo.values()], encode_chunks, ahead=True)
        for j, ((_, key), (st, check, _)) in enumerate(todo.items()):
            if self._streams.get(st.sid) is st:  # not reset or dropped by a later chunk of this call
                dc, db = st.put(key, (check, *new[j][1:]))
                self.nchunks += dc
                self.nbytes += db
        counts["ahead_encoded"] += len(todo)
        for sid in {c.stream_id for c in chunks}:
            self._evict(sid)
        return len(todo)

    @staticmethod
    def _join(rows: list[list[torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per window, its chunks' valid positions (T_j, X) in time order -> (padded (B, T, X), mask (B, T)),
        each part copied once, straight into its place, and only the padding zeroed (a zero-filled
        allocation touches the whole batch twice: with the thinking block's frames, ~1.3 MB a window, that
        cost more than the copy)."""
        lengths = [sum(p.shape[0] for p in parts) for parts in rows]
        first = rows[0][0]
        out = first.new_empty(len(rows), max(lengths), first.shape[1])  # (B, T, X)
        mask = torch.zeros(len(rows), max(lengths), dtype=torch.bool, device=out.device)  # (B, T)
        for i, parts in enumerate(rows):
            t = 0
            for p in parts:
                out[i, t: t + p.shape[0]] = p
                t += p.shape[0]
            out[i, t:] = 0
            mask[i, :t] = True
        return out, mask

    # ---- per stream ---------------------------------------------------------------------------
    def _stream_for(self, w: Window) -> _Stream:
        """The stream's state for window ``w``, after the reset rules (a new, empty state after a reset)."""
        sid = w.stream_id
        st = self._streams.get(sid)
        reason = reset_reason(w, st, self.chunk_samples)
        if reason == "off_grid" and st.uncached:  # already encoding whole windows
            reason = None
        if st is not None and reason is not None:
            counts_key = f"resets_{reason}"
            self.counts[counts_key] += 1
            log.debug("stream %s: encoder cache dropped (%s) at sample %d", sid, reason, w.start_sample)
            self._forget(sid)
        if st is None or reason is not None:
            st = self._new_stream(sid, w.sender_epoch, w.start_sample, uncached=reason == "off_grid" or (
                st is not None and st.uncached and reason == "gap"))
        else:
            self._streams.move_to_end(sid)
        st.last_start = w.start_sample
        if st.uncached:
            self.counts["windows_uncached"] += 1
        return st

    def _stream_for_chunk(self, c: AudioChunk) -> _Stream | None:
        """The stream's state for a chunk encoded ahead, None when the chunk can no longer be in one of its
        windows. Only a chunk of a newer sender run starts the stream over (``resets_restart``)."""
        st = self._streams.get(c.stream_id)
        if st is not None and c.sender_epoch != st.epoch:
            if c.sender_epoch < st.epoch:
                return None  # an older run's chunk, reaching the stage after the new run's windows
            self.counts["resets_restart"] += 1
            log.debug("stream %s: encoder cache dropped (restart) at sample %d", c.stream_id, c.start_sample)
            self._forget(c.stream_id)
            st = None
        if st is None:
            return self._new_stream(c.stream_id, c.sender_epoch, None)
        if st.uncached or (st.last_start is not None and c.start_sample < st.last_start):
            return None
        self._streams.move_to_end(c.stream_id)
        return st

    def _new_stream(self, sid: str, epoch: int, last_start: int | None, *, uncached: bool = False) -> _Stream:
        """An empty state for a stream (the least recently used streams beyond ``max_streams`` dropped)."""
        st = self._streams[sid] = _Stream(sid, epoch=epoch, last_start=last_start, uncached=uncached)
        while len(self._streams) > self.max_streams:
            old = next(iter(self._streams))
            self._forget(old)
            self.counts["streams_evicted"] += 1
            log.debug("encoder cache: stream %s dropped (more than %d streams)", old, self.max_streams)
        return st

    def _forget(self, sid: str) -> bool:
        st = self._streams.pop(sid, None)
        if st is None:
            return False
        self.nchunks -= len(st.chunks)
        self.nbytes -= st.nbytes
        return True

    def _evict(self, sid: str) -> None:
        """Chunks before the stream's latest window (windows only move forward), and beyond ``max_chunks``."""
        st = self._streams.get(sid)
        if st is None:
            return
        chunks = st.chunks
        last = st.last_start if st.last_start is not None else -1
        while chunks and (len(chunks) > self.max_chunks or next(iter(chunks))[0] < last):
            dc, db = st.pop()
            self.nchunks -= dc
            self.nbytes -= db

    def drop(self, stream_id: str, reason: str = "ended") -> None:
        """Forget a stream (its end: the worker's ``EndOfStream``, reason "ended" or "idle")."""
        if self._forget(stream_id):
            self.counts[f"resets_{reason}"] += 1

    # ---- description --------------------------------------------------------------------------
    def stream_chunks(self, stream_id: str) -> int:
        """Chunks held for a stream (0 when none)."""
        st = self._streams.get(stream_id)
        return len(st.chunks) if st is not None else 0

    def stats(self) -> dict:
        """Streams, chunks and bytes held, the hit rate and the counters (hits, encoded, shared_in_batch,
        mismatches, windows_uncached, resets_<reason>, streams_evicted, hits_ahead, ahead_<outcome>)."""
        c = self.counts
        looked = c["hits"] + c["encoded"] + c["shared_in_batch"]
        return {"streams": len(self._streams), "chunks": self.nchunks, "bytes": self.nbytes,
                "hit_rate": round(c["hits"] / looked, 4) if looked else None, **c}
