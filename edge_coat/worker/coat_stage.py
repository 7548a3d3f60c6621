"""The real model stage: CoAT label scoring on batches of windows (implements ``ModelStage``).

Per batch, for each task the windows carry, one batched ``score_task`` call over the windows that need
it (one prefill per window, candidates scored over the cached prefix). A window analysed for several
tasks takes its thinking latents from the first of its own tasks (the worker config's order) that the
model knows: the thinking positions come before the task prompt, so under causal attention their hidden
states do not depend on the prompt; taking them from the same task every time keeps a stream's latents
(and a detector's profile of them) from the same batch composition. No task is special here.

Readings for the evidence:

* ``loudness_dbfs`` from the window (the gate measured it), ``speech_ratio`` when the gate ran a VAD;
* ``pitch_hz`` / ``voiced_ratio`` from ``edge_coat.experts.dsp.pitch_readings`` (the pitch expert's
  YIN and voicing rule at 8 kHz with a 20 ms hop, all windows of a batch in one FFT call: ~6x cheaper
  than running the 10 ms pitch expert per window, which cost as much as the model; see BENCHMARKS.md
  "Profile and fix: model stage"; a stream's overlapping windows through the per-stream pitch frame
  cache, ``edge_coat.worker.pitch_cache``: each window runs YIN on the audio it adds, with the same
  readings), and top sound ``tags`` from the YAMNet expert when ``readings``
  asks for them. They are DSP/expert readings, not the model's expert heads: the model core does not
  expose decoded head predictions (its heads output normalised feature vectors, not Hz or tag names).

Per batch the audio is encoded once and the thinking block runs once for every window (all its tasks
share them: the thinking vectors depend on the audio only), then one decoder call per group of windows
asking for the same tasks scores every task's labels after one shared prefill of the prefix, audio and
thinking positions (``CoatModel.score_tasks``): a window's audio positions go through the LLM once, not
once per task. Encoding goes through the per-stream encoder cache
(``edge_coat.worker.encoder_cache``) when the model's chunks encode alike in every window: a stream
pays for each encoder chunk of its audio once, and the chunks no window encoded before are encoded in
one batch across streams. ``end_stream`` (the worker's ``EndOfStream``) drops a stream's chunks and pitch frames.
The thinking block goes through the same cache (``model.encoder_cache.thinking_frames``, with a bundle that
has the block's two part graphs): the part of it that depends on one audio frame alone
(``ThinkingBlock.frame_features``: input projection, summary MLP, cross-attention keys/values, almost
all its FLOPs) is computed once per chunk, with the chunk's encoding (for a batch's new chunks in one
call, and for chunks encoded ahead), and kept with it; each window then runs only the per-window part
(``from_frames``: mean/std pooling, the summary slot, the K queries) over its chunks' kept frames. Same
latents up to float noise (tests/worker/test_thinking_cache.py). Without the cache, or with a bundle
exported before the part graphs, each window runs the whole block (``info()["thinking_cache"]`` says which).
A model whose answer readout reads the tower's output (``readout_input`` 'tower', coat-tiny 1.5) has it kept in
the same cache, beside each position's embedding (``CoatModel.encode_mel_packed``), and handed to ``score_tasks``.
A readout task the model lists in ``readout_relative`` reads the window's statistics less its stream's
**baseline** (docs/coat-tiny-speaker-baseline: a speaker's own baseline removes what differs between speakers,
languages and lines). The stage keeps, per stream, the statistics (``ScoreResult.features``) of its last
``readout_baseline_windows`` scored speech windows that do not overlap each other, and hands those that ended
before a window began to ``score_tasks`` as ``readout_context``. A window's statistics do not depend on its
baseline, so each window is taken in (in window order) before its batch is scored: its baseline is the same
whether its stream's earlier windows came in earlier batches or in its own. A new capture run on the stream starts
a new baseline. A window the gate's VAD judged mostly non-speech
(``speech_ratio`` below ``BASELINE_MIN_SPEECH``) is scored with the baseline but does not enter it; ``end_stream``
drops it; at most ``BASELINE_MAX_STREAMS`` streams are kept (the least recently added to dropped first);
``stats()["baseline_streams"]`` counts them. A model without relative tasks keeps none.
A model whose ``readout_baseline`` is "desk" keeps instead, per stream, the running mean of every speech window it
scored (``DESK_MEMORY_WINDOWS``; windows that overlap the last one taken in are skipped, as above), handed on as a
``HeardMean``: the line's, the room's and the callers' long-run statistics. It outlives a call: a new capture run and
the end of a stream keep it (a desk hears many calls); the same ``BASELINE_MAX_STREAMS`` bound drops the least recently
added to. With ``model.desk_dir`` it outlives the worker too: ``<stream>.desk.json`` (the model's name and version, the
mean and its count) is written every ``DESK_SAVE_EVERY`` windows taken in and at the stream's end, and read when the
stream is next heard; a file of another model, or one that cannot be read, is skipped with a warning (the desk starts
cold).
``ahead_chunk_samples`` tells the worker which chunks it may hand on before their windows are due
(the model's encoder chunk, for a stream whose hop is a whole number of them), and ``encode_ahead``
encodes them into the cache while the model thread has no window to run
(``model.encoder_cache.encode_ahead``; one code path on CPU and GPU).

Latency per stage (``encode``: features + audio encoder, with the cache; ``thinking``: the whole block, or
the per-frame part of the batch's new chunks plus the per-window part; ``llm``: prefill
and label scoring; ``readings``; ``total``) goes into each result's ``latency_ms`` and into histograms
(plus ``ahead``: a call of ``encode_ahead``, in the histograms only)
that ``stats()`` returns for the metrics collector (read at scrape time, not pushed from the hot path).
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
import json
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edge_coat.experts.dsp import pitch_readings
from edge_coat.messages import SAMPLE_RATE, AudioChunk, EndOfStream, Window, WindowResult, check_stream_id
from edge_coat.model.config import ModelSection
from edge_coat.model.loading import bundle_identity, load_model
from edge_coat.model.runtime import describe_encoder
from edge_coat.worker.encoder_cache import EncoderCache
from edge_coat.worker.pitch_cache import PitchFrameCache

log = logging.getLogger(__name__)

#: Histogram bucket upper bounds, seconds (per batch).
LATENCY_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
STAGES: tuple[str, ...] = ("encode", "thinking", "llm", "readings", "total")
#: shortest window the model core accepts (4 mel frames of 10 ms)
MIN_SAMPLES = 640
#: a window whose ``speech_ratio`` (the gate's VAD) is below this is scored but does not enter its stream's baseline
#: for the relative readout tasks: silence and hold music would drag the caller's baseline towards them
BASELINE_MIN_SPEECH = 0.5
#: at most this many streams keep a baseline (the one least recently added to dropped first)
BASELINE_MAX_STREAMS = 4096
#: a desk readout's baselines are written to ``model.desk_dir`` every this many windows taken in (and at a stream's end)
DESK_SAVE_EVERY = 32
#: a desk baseline's memory: its running mean weighs each new speech window 1 / min(heard, this), a mean of all it has
#: heard until then and an exponential one after (at 2 s windows, about the last half hour of speech on the line)
DESK_MEMORY_WINDOWS = 1024


def _keep_latest(store: collections.OrderedDict, stream: str, value, what: str) -> None:
    """Set a stream's baseline as the most recently added to, dropping the least recently added to beyond
    ``BASELINE_MAX_STREAMS``."""
    store[stream] = value
    store.move_to_end(stream)
    while len(store) > BASELINE_MAX_STREAMS:
        old = next(iter(store))
        del store[old]
        log.debug("model stage: stream %s's %s baseline dropped (more than %d streams)", old, what,
                  BASELINE_MAX_STREAMS)


@dataclasses.dataclass
class _DeskMean:
    """A stream's desk baseline: the running mean (2F,) float64 of ``count`` speech windows, and the capture run and
    end sample of the last window taken in (the overlap check)."""

    mean: np.ndarray
    count: int
    epoch: int
    last_end: int


class LatencyHistogram:
    """Cumulative-bucket histogram in the Prometheus layout, filled on the model thread.

    Hand-written rather than a prometheus_client Histogram so the stage does not depend on a metrics
    registry: the service's collector turns ``snapshot()`` into a metric family at scrape time."""

    def __init__(self, buckets: Sequence[float] = LATENCY_BUCKETS):
        self.buckets = tuple(buckets)
        self.counts = [0] * (len(self.buckets) + 1)  # last: +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, seconds)] += 1
        self.sum += seconds
        self.count += 1

    def snapshot(self) -> dict:
        cumulative, acc = [], 0
        for c in self.counts:
            acc += c
            cumulative.append(acc)
        return {"buckets": list(self.buckets), "cumulative": cumulative, "sum": self.sum, "count": self.count}


class CoatStage:
    """``ModelStage`` over a CoAT model.

    Use::

        stage = CoatStage(cfg.model)                 # loads the bundle at cfg.model.path
        stage = CoatStage(cfg, model=model)          # an already built model (tests)
        stage = CoatStage(cfg, pitch_cache=False)    # each window's pitch read whole (the benchmarks' baseline)
        stage = CoatStage(cfg, thinking_cache=False) # each window's thinking block run whole (the same)
        results = stage.process(windows)             # one WindowResult per window, same order
        stage.info(); stage.stats()
    """

    name = "coat"

    def __init__(self, cfg: ModelSection, *, model=None, readings: Sequence[str] | None = None,
                 pitch_cache: bool = True, thinking_cache: bool = True):
        self.cfg = cfg
        if cfg.torch_threads:
            import torch

            torch.set_num_threads(cfg.torch_threads)
        self.model = model if model is not None else load_model(cfg)
        if isinstance(cfg.readout, list):  # only these tasks (ModelSection.readout); checked before the model changes
            unknown = sorted(set(cfg.readout) - set(self.model.config.readout))
            if unknown:
                raise ValueError(f"model.readout lists {unknown}, which this model has no answer readout for (it has "
                                 f"{sorted(self.model.config.readout) or 'none'}): list only those, or use true/false")
        self.model.use_readout = bool(cfg.readout)
        # true / false: every task the readout has, or none (set afresh: a model may have served another stage)
        self.model.readout_tasks = frozenset(cfg.readout) if isinstance(cfg.readout, list) else None
        # a separate CoAT folder (model.coat_path) decides the answers: its name and version go into every result
        self.model_name, self.model_version = bundle_identity(cfg.coat_path or cfg.path, cfg.name)
        self.tasks = dict(self.model.config.tasks)
        self.max_samples = int(self.model.max_window_seconds * SAMPLE_RATE)
        self.readings = tuple(readings if readings is not None else cfg.readings)
        self._experts = self._load_experts(self.readings)
        self._frames_s = 0.0  # seconds in the thinking block's per-frame part during the current batch
        split, self.thinking_note = self._thinking_split(cfg, thinking_cache)
        self.cache, self.cache_note = self._make_cache(cfg, self._frame_features if split else None)
        self.thinking_cache = split and self.cache is not None
        if split and self.cache is None:
            self.thinking_note = f"off: it needs the encoder cache, which is {self.cache_note}"
        # the same readings either way (tests/worker/test_pitch_cache.py); off: the benchmarks' baseline
        self.pitch_cache = PitchFrameCache() if pitch_cache and "pitch" in self.readings else None
        self._pitch_stats: dict = self.pitch_cache.stats() if self.pitch_cache is not None else {}
        self._cache_stats: dict = self.cache.stats() if self.cache is not None else {}
        self._lock = threading.Lock()
        self._hist = {s: LatencyHistogram() for s in (*STAGES, "ahead")}
        self._counts = {"batches": 0, "windows": 0, "windows_invalid": 0, "unknown_task_windows": 0,
                        "ahead_calls": 0, "ahead_chunks": 0}
        self._warned: set[str] = set()
        #: the relative readout tasks' baselines (module docstring): stream -> (capture run, deque of (start sample,
        #: end sample, statistics (2F,))), the stream least recently added to first
        self._baselines: collections.OrderedDict[str, tuple[int, collections.deque]] = collections.OrderedDict()
        #: a desk readout's baselines: stream -> _DeskMean (module docstring)
        self._desks: collections.OrderedDict[str, _DeskMean] = collections.OrderedDict()
        self._desk_dir = Path(cfg.desk_dir) if cfg.desk_dir is not None else None
        info = self.info()
        log.info("model stage: %s %s (%s), quantization %s, encoder on %s, thinking on %s, tasks %s, readings %s; "
                 "encoder cache %s; thinking cache %s", info["name"], info["version"], info["family"],
                 info["quantization"], info["encoder"], info["thinking"], sorted(self.tasks), list(self.readings),
                 self.cache_note, self.thinking_note)

    def _thinking_split(self, cfg: ModelSection, wanted: bool) -> tuple[bool, str]:
        """Whether the thinking block's per-frame part may be kept with the encoder cache's chunks, and why."""
        block = self.model.thinking
        if not self.model.config.use_thinking:
            return False, "off: the model runs without its thinking block"
        if not wanted or not getattr(getattr(cfg, "encoder_cache", None), "thinking_frames", False):
            return False, "off (model.encoder_cache.thinking_frames: false): each window runs the whole block"
        if not getattr(block, "can_split", False):
            return False, f"off: {getattr(block, 'split_note', 'the thinking block cannot run in parts')}"
        return True, ("on: each chunk's per-frame part is computed once, with its encoding; each window runs the "
                      "per-window part")

    def _frame_features(self, embeds):
        """The thinking block's per-frame part of encoded chunks (N, Tc, D) -> (N, Tc, F), timed for the batch."""
        t0 = time.perf_counter()
        block = self.model.thinking
        embeds = self.model.unpack_readout_frames(embeds)[0]  # the cache's encodings may carry the tower too
        out = block.frame_features(embeds.to(block.dtype))
        self._frames_s += time.perf_counter() - t0
        return out

    def _make_cache(self, cfg: ModelSection, frames=None) -> tuple[EncoderCache | None, str]:
        """The per-stream encoder cache when the model allows it (keeping ``frames`` of each chunk when given),
        and a line saying which way windows are encoded."""
        chunk_s = self.model.chunk_samples / SAMPLE_RATE
        if not getattr(cfg, "encoder_cache", None) or not cfg.encoder_cache.enabled:
            return None, "off (model.encoder_cache.enabled: false): windows are encoded whole"
        if not self.model.chunks_encode_alike:
            return None, (f"off: the model computes features over the whole window (chunk_features "
                          f"{self.model.config.chunk_features!r}), so a {chunk_s:g} s chunk encodes differently "
                          "in each window: windows are encoded whole")
        max_chunks = -(-int(round(self.model.max_window_seconds * SAMPLE_RATE)) // self.model.chunk_samples)
        cache = EncoderCache(self.model.chunk_samples, max_chunks=max_chunks, max_streams=cfg.encoder_cache.max_streams,
                             frames=frames)
        ahead = ", as its audio arrives" if cfg.encoder_cache.encode_ahead else ""
        return cache, (f"on: each {chunk_s:g} s chunk of a stream is encoded once{ahead}, for streams whose hop is a "
                       f"whole number of {chunk_s:g} s chunks (others: whole windows)")

    # ---- description ------------------------------------------------------------------------------
    def info(self) -> dict:
        """Name, version, family, quantization, thinking runtime and providers (status, metrics)."""
        block = self.model.thinking
        provider = getattr(block, "provider", None)
        if provider is not None:
            thinking, providers = f"onnxruntime {provider.removesuffix('ExecutionProvider')}", [provider]
        else:
            thinking, providers = f"torch {self.model.device}", []
        encoder = describe_encoder(self.model)
        return {"name": self.model_name, "version": self.model_version, "family": self.model.config.family,
                "quantization": str(self.model.quantization), "thinking": thinking,
                "encoder": encoder, "encoder_runtime": "onnx" if encoder.startswith("onnxruntime") else "torch",
                "thinking_runtime": "onnx" if provider is not None else "torch", "providers": providers,
                "llm_device": str(self.model.device), "max_seconds": float(self.model.max_seconds),
                "max_window_seconds": float(self.model.max_window_seconds),
                "encoder_cache": self.cache_note, "encoder_cache_on": self.cache is not None,
                "thinking_cache": self.thinking_note, "thinking_cache_on": self.thinking_cache,
                "chunk_seconds": self.model.chunk_samples / SAMPLE_RATE,
                "readout": [t for t in sorted(self.model.config.readout) if self.model.reads(t, ())],
                "tasks": {t: list(s.labels) for t, s in self.tasks.items()}}

    def check_window(self, window_s: float, tasks: Sequence[str], where: str) -> list[str]:
        """Problems a stream config would hit with this model (window too long, unknown tasks)."""
        out = []
        if window_s > self.model.max_window_seconds:
            out.append(f"{where}.window_s: {window_s} s is longer than the model takes "
                       f"({self.model.max_window_seconds:g} s, in {self.model.max_seconds:g} s encoder chunks); "
                       "lower window_s")
        for t in tasks:
            if t not in self.tasks:
                out.append(f"{where}.tasks.{t}: the model has no task {t!r}; it knows {sorted(self.tasks)}")
        return out

    def encoding_for_hop(self, hop_s: float) -> str:
        """How the windows of a stream with this hop are encoded (one line for the start-up log)."""
        if self.cache is None:
            return "whole windows (encoder cache " + self.cache_note.split(":")[0] + ")"
        chunk = self.model.chunk_samples
        if round(hop_s * SAMPLE_RATE) % chunk:
            return (f"whole windows: the hop ({hop_s:g} s) is not a whole number of {chunk / SAMPLE_RATE:g} s encoder "
                    "chunks, so the encoder cache cannot reuse them")
        return f"each {chunk / SAMPLE_RATE:g} s chunk encoded once (encoder cache)"

    @property
    def hears_desks(self) -> bool:
        """Whether a relative answer readout scores each window against its line's desk baseline (``readout_baseline``
        "desk"): a line's recordings then belong on its one stream, one capture run each."""
        config = self.model.config
        return config.readout_baseline == "desk" and bool(config.readout_relative)

    def stats(self) -> dict:
        with self._lock:
            out = {"latency_s": {s: h.snapshot() for s, h in self._hist.items()}, **self._counts,
                   "baseline_streams": len(self._baselines) + len(self._desks),
                   # a desk readout's lines: speech windows each desk has heard (below the model's
                   # readout_baseline_windows a line is still warming, the training mean weighing in)
                   "desk_windows": {s: d.count for s, d in self._desks.items()},
                   "encoder_cache": dict(self._cache_stats)}
            if self._pitch_stats:
                out["pitch_cache"] = dict(self._pitch_stats)
            return out

    def ahead_chunk_samples(self, window_samples: int, hop_samples: int) -> int:
        """The chunk the worker may hand to ``encode_ahead`` for a stream with this window and hop (samples):
        the encoder chunk when the cache keeps the stream's chunks and its windows hold more than one, else 0."""
        chunk = self.model.chunk_samples
        if self.cache is None or not self.cfg.encoder_cache.encode_ahead or hop_samples % chunk \
                or window_samples <= chunk:
            return 0
        return chunk

    def encode_ahead(self, chunks: Sequence[AudioChunk]) -> None:
        """Encode chunks of the streams' audio before their windows are due (see ``EncoderCache.encode_ahead``).
        Called on the model thread when no window waits."""
        if self.cache is None or not chunks:
            return
        import torch

        t0 = time.perf_counter()
        with torch.inference_mode():
            self.cache.encode_ahead(chunks, self._encode_chunks)
        seconds = time.perf_counter() - t0
        stats = self.cache.stats()
        with self._lock:
            self._hist["ahead"].observe(seconds)
            self._counts["ahead_calls"] += 1
            self._counts["ahead_chunks"] += len(chunks)
            self._cache_stats = stats

    def end_stream(self, end: EndOfStream) -> None:
        """A stream ended (or was forgotten idle): drop its encoded chunks, pitch frames and readout baseline.
        Called on the model thread."""
        with self._lock:
            self._baselines.pop(end.stream_id, None)
            desk = self._desks.get(end.stream_id)
            if desk is not None:
                self._save_desk(end.stream_id, desk)
        if self.pitch_cache is not None:
            self.pitch_cache.drop(end.stream_id, end.reason)
            pitch_stats = self.pitch_cache.stats()
            with self._lock:
                self._pitch_stats = pitch_stats
        if self.cache is not None:
            self.cache.drop(end.stream_id, end.reason)
            stats = self.cache.stats()
            with self._lock:
                self._cache_stats = stats

    # ---- the stage ----------------------------------------------------------------------------------
    def process(self, windows: list[Window]) -> list[WindowResult]:
        import torch

        t_start = time.perf_counter()
        n = len(windows)
        probs: list[dict[str, dict[str, float]]] = [{} for _ in range(n)]
        thinking: list[np.ndarray | None] = [None] * n
        valid = [self._valid(w) for w in windows]
        by_task: dict[str, list[int]] = {}
        for i, w in enumerate(windows):
            if valid[i]:
                for t in w.tasks:
                    by_task.setdefault(t, []).append(i)
        for task in sorted(t for t in by_task if t not in self.tasks):
            self._warn_once(task, f"windows ask for task {task!r} but the model only knows {sorted(self.tasks)}: "
                                  "skipped (fix worker tasks or the model)")
            with self._lock:
                self._counts["unknown_task_windows"] += len(by_task.pop(task))
        # each window's latents come from its first task the model knows (see the module docstring)
        latents_task = [next((t for t in w.tasks if t in self.tasks), None) for w in windows]
        scored = [i for i in range(n) if valid[i] and latents_task[i] is not None]  # windows the model runs on
        t_encoded = t_thought = t_start
        self._frames_s = 0.0
        if scored:
            with torch.inference_mode():
                # (B, T, D), (B, T), (B, T, F) or None, (B, T, Da) or None
                audio, mask, frames, tower = self._encode([windows[i] for i in scored])
                t_encoded = time.perf_counter()
                if frames is not None:  # the thinking cache: only the per-window part runs here
                    think = self.model.thinking.from_frames(frames, mask).to(audio.dtype)  # (B, K, D)
                else:
                    think = self.model.think(audio, mask) if self.model.config.use_thinking else None  # (B, K, D)
                t_thought = time.perf_counter()
                groups: dict[tuple[str, ...], list[int]] = {}  # windows asking for the same tasks: one call
                for j, i in enumerate(scored):
                    groups.setdefault(tuple(sorted({t for t in windows[i].tasks if t in self.tasks})), []).append(j)
                for tasks, rows in groups.items():
                    sel = torch.tensor(rows, device=audio.device)
                    contexts = None
                    if any(self._is_relative(t) for t in tasks):  # the windows' statistics, then their baselines
                        stats = self.model.readout_statistics(audio[sel], mask[sel],
                                                              tower[sel] if tower is not None else None)
                        contexts = self._contexts([windows[scored[j]] for j in rows], stats.float().cpu().numpy())
                    res = self.model.score_tasks(None, list(tasks), audio=(audio[sel], mask[sel]),
                                                 thinking=think[sel] if think is not None else None,
                                                 readout_frames=tower[sel] if tower is not None else None,
                                                 readout_context=contexts)
                    for k, j in enumerate(rows):  # probs (B, C), thinking (B, K, D)
                        i = scored[j]
                        for task, r in res.items():
                            probs[i][task] = {label: float(p) for label, p in zip(r.labels, r.probs[k])}
                        # the same for every task (the thinking positions precede the prompt)
                        thinking[i] = np.ascontiguousarray(res[latents_task[i]].thinking[k], dtype=np.float32)  # (K, D)
        t_model = time.perf_counter()
        readings, tags = self._readings(windows)
        t_end = time.perf_counter()
        latency = {  # the per-frame part, run inside the cache's encode, counts as thinking
            "encode": t_encoded - t_start - self._frames_s if scored else 0.0,
            "thinking": t_thought - t_encoded + self._frames_s if scored else 0.0,
            "llm": t_model - t_thought if scored else 0.0,
            "readings": t_end - t_model,
            "total": t_end - t_start,
        }
        cache_stats = self.cache.stats() if self.cache is not None and scored else None
        pitch_stats = self.pitch_cache.stats() if self.pitch_cache is not None else None
        with self._lock:
            for s, v in latency.items():
                self._hist[s].observe(v)
            self._counts["batches"] += 1
            self._counts["windows"] += n
            if cache_stats is not None:
                self._cache_stats = cache_stats
            if pitch_stats is not None:
                self._pitch_stats = pitch_stats
        latency_ms = {s: round(v * 1000.0, 3) for s, v in latency.items()}
        return [
            WindowResult(window=w, label_probs=probs[i], thinking=thinking[i], readings=readings[i], tags=tags[i],
                         model_name=self.model_name, model_version=self.model_version, latency_ms=latency_ms)
            for i, w in enumerate(windows)
        ]

    def _encode(self, windows: list[Window]):
        """Audio positions of the windows: (embeds (B, T, D), mask (B, T) bool, the thinking block's per-frame
        part (B, T, F) with the thinking cache, else None, the tower's output (B, T, Da) when the readout reads
        it, else None), through the encoder cache when there is one, else whole windows in one ``encode_full``
        call."""
        if self.cache is None:
            embeds, mask, tower = self.model.encode_full([w.samples for w in windows])
            return embeds, mask, None, tower
        packed, mask, frames = self.cache.encode_with_frames(windows, self._encode_chunks)
        embeds, tower = self.model.unpack_readout_frames(packed)
        return embeds, mask, frames, tower

    def _encode_chunks(self, chunks: list[np.ndarray]):
        """The cache's encoder: each chunk's embeds, with the tower's output beside them when the readout reads it
        (``CoatModel.encode_mel_packed``), so it is cached, dropped and joined into windows exactly as the embeds."""
        return self.model.encode_chunks(chunks, packed=True)

    # ---- the relative readout tasks' stream baselines ----------------------------------------------------
    def _is_relative(self, task: str) -> bool:
        """Whether ``task``'s answer readout scores here relative to a stream baseline."""
        return self.model.reads(task, ()) and self.model.readout.is_relative(task)

    def _contexts(self, windows: list[Window], stats: np.ndarray) -> list[np.ndarray | None]:
        """Per window, in order: the statistics (k, 2F), oldest first, of its stream's kept windows that ended before
        it began (an overlapping window shares its audio and would pull the baseline towards the window itself),
        from the same capture run (None: nothing heard yet); then the window itself is kept (``stats`` (B, 2F), its
        readout statistics, known before it is scored), unless the gate's VAD judged it mostly non-speech
        (``BASELINE_MIN_SPEECH``) or it overlaps the last window kept (with hops shorter than windows, every few
        windows: the baseline is made of distinct stretches, as the readout was fitted on distinct clips). So a
        window's baseline is the same whether its stream's earlier windows came in earlier batches or in its own.
        A new capture run (``sender_epoch``) on the stream starts a new baseline."""
        if self.model.config.readout_baseline == "desk":
            return self._desk_contexts(windows, stats)
        n = int(self.model.config.readout_baseline_windows)
        out = []
        with self._lock:
            for w, f in zip(windows, stats):
                epoch, kept = self._baselines.get(w.stream_id, (None, None))
                if epoch != w.sender_epoch or kept is None:
                    kept = collections.deque(maxlen=n)
                elif kept.maxlen != n:
                    kept = collections.deque(kept, maxlen=n)
                rows = [g for _, end, g in kept if end <= w.start_sample]
                out.append(np.stack(rows) if rows else None)
                if w.speech_ratio is not None and w.speech_ratio < BASELINE_MIN_SPEECH:
                    continue
                if kept and w.start_sample < kept[-1][1]:
                    continue
                kept.append((w.start_sample, w.start_sample + len(w.samples), np.array(f, dtype=np.float32)))
                _keep_latest(self._baselines, w.stream_id, (w.sender_epoch, kept), "readout")
        return out

    def _desk_contexts(self, windows: list[Window], stats: np.ndarray) -> list:
        """``_contexts`` for a desk readout: per window, in order, its stream's running mean before it (a
        ``HeardMean``; None: nothing heard yet), then the window taken in unless it is mostly non-speech or overlaps
        the last window taken in (of the same capture run: a new run restarts the sample count, not the mean), or its
        statistics are not finite."""
        from edge_coat.model.readout import HeardMean

        out = []
        with self._lock:
            for w, f in zip(windows, stats):
                desk = self._desks.get(w.stream_id)
                if desk is None and self._desk_dir is not None:
                    desk = self._load_desk(w.stream_id, len(f))
                    if desk is not None:
                        _keep_latest(self._desks, w.stream_id, desk, "desk")
                out.append(None if desk is None else HeardMean(desk.mean.astype(np.float32), desk.count))
                if w.speech_ratio is not None and w.speech_ratio < BASELINE_MIN_SPEECH:
                    continue
                if not np.isfinite(f).all():  # one bad window must not poison a line's mean (kept, and saved)
                    self._warn_once(f"desk-nan:{w.stream_id}", f"stream {w.stream_id} window {w.index}: non-finite "
                                    "readout statistics; left out of the line's desk baseline")
                    continue
                if desk is None:
                    desk = _DeskMean(np.zeros(len(f)), 0, w.sender_epoch, 0)
                elif desk.epoch != w.sender_epoch:
                    desk.epoch, desk.last_end = w.sender_epoch, 0
                elif w.start_sample < desk.last_end:
                    continue
                desk.count += 1
                desk.mean += (np.asarray(f, np.float64) - desk.mean) / min(desk.count, DESK_MEMORY_WINDOWS)
                desk.last_end = w.start_sample + len(w.samples)
                _keep_latest(self._desks, w.stream_id, desk, "desk")
                if desk.count % DESK_SAVE_EVERY == 0:
                    self._save_desk(w.stream_id, desk)
        return out

    def _desk_file(self, stream: str) -> Path:
        return self._desk_dir / f"{check_stream_id(stream)}.desk.json"

    def _save_desk(self, stream: str, desk: _DeskMean) -> None:
        """Write a stream's desk baseline to ``model.desk_dir`` (atomically); a failure is a warning, never an error."""
        if self._desk_dir is None:
            return
        try:
            path = self._desk_file(stream)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"model": self.model_name, "version": self.model_version, "count": desk.count,
                                       "mean": [float(v) for v in desk.mean]}))
            tmp.replace(path)
        except (OSError, ValueError) as exc:
            self._warn_once(f"desk-save:{stream}", f"stream {stream}: its desk baseline was not saved ({exc}); "
                                                   f"check model.desk_dir ({self._desk_dir})")

    def _load_desk(self, stream: str, dim: int) -> _DeskMean | None:
        """A stream's saved desk baseline, or None (none saved, another model's, or unreadable: warned once)."""
        try:
            path = self._desk_file(stream)
            if not path.is_file():
                return None
            saved = json.loads(path.read_text())
            mean = np.asarray(saved["mean"], dtype=np.float64)
            count = int(saved["count"])
            if (saved.get("model"), saved.get("version")) != (self.model_name, self.model_version):
                self._warn_once(f"desk-load:{stream}", f"stream {stream}: {path} is the desk of "
                                f"{saved.get('model')} {saved.get('version')}, not of this model; the desk starts cold")
                return None
            if mean.shape != (dim,) or count < 0 or not np.isfinite(mean).all():
                raise ValueError(f"expected a mean of {dim} finite values and a count >= 0")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self._warn_once(f"desk-load:{stream}", f"stream {stream}: cannot read its saved desk baseline ({exc}); "
                                                   "the desk starts cold")
            return None
        log.info("model stage: stream %s's desk baseline read from %s (%d windows heard)", stream, path, count)
        return _DeskMean(mean, count, -1, 0)

    # ---- helpers ------------------------------------------------------------------------------------
    def _valid(self, w: Window) -> bool:
        """A window the model can take; others get a result without label scores (and a warning)."""
        s = w.samples
        problem = None
        if not isinstance(s, np.ndarray) or s.ndim != 1:
            problem = f"expected (num_samples,) float32 samples, got {type(s).__name__} {getattr(s, 'shape', '')}"
        elif not MIN_SAMPLES <= s.size <= self.max_samples:
            problem = (f"{s.size / SAMPLE_RATE:.3f} s of audio; the model takes "
                       f"{MIN_SAMPLES / SAMPLE_RATE:.2f}..{self.model.max_window_seconds:g} s")
        elif not np.isfinite(s).all():
            problem = "NaN or infinite samples"
        if problem is None:
            return True
        with self._lock:
            self._counts["windows_invalid"] += 1
        self._warn_once(f"invalid:{w.stream_id}", f"stream {w.stream_id} window {w.index}: {problem}; not scored")
        return False

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning("%s", message)

    @staticmethod
    def _load_experts(names: Sequence[str]) -> dict:
        from edge_coat.experts import get_expert

        experts = {}
        for name in names:
            if name == "pitch":  # a function of the window (pitch_readings), no expert to load: warm it up, so
                # its lazy imports (scipy.signal, scipy.fft: ~0.75 s) are paid at start, not by the first window
                pitch_readings([np.sin(np.arange(2048, dtype=np.float32) * np.float32(0.06))])
                continue
            expert = get_expert({"tags": "sound_tags"}[name])
            expert.load()  # fail at start (missing wheel), not on the first window
            experts[name] = expert
        return experts

    def _readings(self, windows: list[Window]) -> tuple[list[dict[str, float]], list[tuple]]:
        readable = [isinstance(w.samples, np.ndarray) and w.samples.ndim == 1 and w.samples.size >= 1024
                    and np.isfinite(w.samples).all() for w in windows]
        pitch = {}
        if "pitch" in self.readings:  # one call for the batch: its frames go through one FFT
            idx = [i for i, ok in enumerate(readable) if ok]
            if self.pitch_cache is not None:
                pitch = dict(zip(idx, self.pitch_cache.readings([windows[i] for i in idx])))
            else:
                pitch = dict(zip(idx, pitch_readings([windows[i].samples for i in idx])))
        readings, tags = [], []
        for i, w in enumerate(windows):
            r = {"loudness_dbfs": float(w.rms_dbfs)}
            if w.speech_ratio is not None:
                r["speech_ratio"] = float(w.speech_ratio)
            t: tuple = ()
            ok = readable[i]
            if i in pitch:
                r["pitch_hz"], r["voiced_ratio"] = pitch[i].pitch_hz, pitch[i].voiced_ratio
            if ok and "tags" in self._experts:
                e = self._experts["tags"]
                t = tuple((str(label), float(score)) for label, score in e.top_tags(e(w.samples), k=5))
            readings.append(r)
            tags.append(t)
        return readings, tags
