"""The per-stream encoder cache (issue 14): parity with whole-window encoding, resets at gaps, restarts and
stream ends, no mixing across streams, bounded memory, chunks encoded ahead of their windows, and the model
stage around it.

A tiny random model with 1 s encoder chunks and per-chunk features (what coat-tiny 1.0 does with 2 s),
3 s windows and a 1 s hop: each window shares two of its three chunks with the one before.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from edge_coat.config import ModelSection
from edge_coat.messages import SAMPLE_RATE, AudioChunk, EndOfStream, Window
from edge_coat.worker.encoder_cache import EncoderCache

from .streams import stream_windows

SR = SAMPLE_RATE
WINDOW, HOP = 3 * SR, SR
windows_of = functools.partial(stream_windows, length=WINDOW, hop=HOP)


@pytest.fixture(scope="module")
def model():
    from edge_coat.model.tiny import tiny_coat_model

    torch.set_num_threads(1)
    return tiny_coat_model("qwen2_audio", max_seconds=1, chunk_features="chunk")


def signal(seconds: float, seed: int) -> np.ndarray:
    """Audio whose loudness changes from second to second (window-level features would differ per window)."""
    rng = np.random.default_rng(seed)
    x = 0.05 * rng.standard_normal(int(seconds * SR))
    x *= np.repeat(rng.uniform(0.2, 3.0, int(np.ceil(seconds))), SR)[: x.size]
    return x.astype(np.float32)


class Counting:
    """``model.encode_chunks``, counting the chunks it encodes and the calls."""

    def __init__(self, model):
        self.model, self.chunks, self.calls = model, 0, 0

    def __call__(self, chunks):
        self.chunks += len(chunks)
        self.calls += 1
        return self.model.encode_chunks(chunks)


def whole(model, ws: list[Window]) -> list[torch.Tensor]:
    with torch.inference_mode():
        e, m = model.encode([w.samples for w in ws])
    return [e[i][m[i]] for i in range(len(ws))]  # B x (T_i, D)


def cached(cache, model, ws: list[Window], enc=None) -> list[torch.Tensor]:
    with torch.inference_mode():
        e, m = cache.encode(ws, enc or model.encode_chunks)
    return [e[i][m[i]] for i in range(len(ws))]


def new_cache(model, **kw) -> EncoderCache:
    return EncoderCache(model.chunk_samples, max_chunks=kw.pop("max_chunks", 30), **kw)


def test_cached_positions_equal_whole_window_encoding(model):
    """Parity: window by window (each adds one chunk) and in batches that hold several windows of a stream,
    the audio positions equal encoding each window whole; each second of audio is encoded once."""
    audio = signal(12.5, 0)
    ws = windows_of(audio)
    ref = whole(model, ws)
    cache, enc = new_cache(model), Counting(model)
    got = [cached(cache, model, [w], enc)[0] for w in ws[:4]] + cached(cache, model, ws[4:], enc)
    assert len(got) == len(ref) == 10
    for g, r in zip(got, ref):
        assert g.shape == r.shape == (3 * 25, 64)  # three 1 s chunks of 25 positions
        torch.testing.assert_close(g, r, atol=1e-5, rtol=1e-5)
    assert enc.chunks == 12  # seconds 0..11, once each (the batch of six shares its chunks)
    s = cache.stats()
    # windows 1..3 reuse two chunks each; window 4 (first of the batch) two, window 5 one; inside the batch
    # window 5 shares one chunk with window 4, windows 6..9 two each
    assert s["encoded"] == 12 and s["hits"] == 3 * 2 + 2 + 1 and s["shared_in_batch"] == 1 + 4 * 2


def test_a_window_shorter_than_whole_chunks_pads_its_last_one(model):
    """A 2.5 s window: its last chunk is half a chunk (padded and masked); the next window holds that second
    whole, under another key, so nothing wrong is reused."""
    audio = signal(8.0, 1)
    ws = windows_of(audio, length=int(2.5 * SR))
    ref = whole(model, ws)
    cache = new_cache(model)
    for w, r in zip(ws, ref):
        torch.testing.assert_close(cached(cache, model, [w])[0], r, atol=1e-5, rtol=1e-5)
    assert cache.stats()["mismatches"] == 0


def test_no_mixing_across_streams(model):
    """Two streams on the same timeline positions with different audio: each gets its own positions."""
    a, b = signal(6.0, 2), signal(6.0, 3)
    wa, wb = windows_of(a, "a"), windows_of(b, "b")
    cache = new_cache(model)
    batches = [[x, y] for x, y in zip(wa, wb)]
    got = [cached(cache, model, batch) for batch in batches]
    for k, (ga, gb) in enumerate(got):
        torch.testing.assert_close(ga, whole(model, [wa[k]])[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(gb, whole(model, [wb[k]])[0], atol=1e-5, rtol=1e-5)
    assert cache.stats()["streams"] == 2 and cache.stats()["hits"] == 2 * 2 * 3


def test_reset_at_a_gap_a_restart_and_the_end(model):
    audio = signal(10.0, 4)
    cache = new_cache(model)
    enc = Counting(model)
    ws = windows_of(audio, gap_at={3})
    for w in ws[:3]:
        cached(cache, model, [w], enc)
    assert cache.stream_chunks("s1") == 3 and enc.chunks == 5
    cached(cache, model, [ws[3]], enc)  # carries a gap: starts over, its three chunks encoded again
    assert enc.chunks == 8 and cache.stats()["resets_gap"] == 1
    cached(cache, model, [ws[4]], enc)  # after the gap: reuses what the gap window encoded
    assert enc.chunks == 9
    # a new sender run on the same stream: timeline positions may repeat with other audio
    other = signal(10.0, 5)
    restarted = windows_of(other, epoch=2, first=5, count=1)[0]
    got = cached(cache, model, [restarted], enc)[0]
    torch.testing.assert_close(got, whole(model, [restarted])[0], atol=1e-5, rtol=1e-5)
    assert enc.chunks == 12 and cache.stats()["resets_restart"] == 1
    cache.drop("s1", "ended")
    assert cache.stream_chunks("s1") == 0 and cache.stats()["resets_ended"] == 1
    assert cache.stats()["chunks"] == 0 and cache.stats()["bytes"] == 0


def test_other_audio_at_a_cached_place_is_a_miss(model):
    """A chunk whose samples differ from the cached one at the same place (no rule caught it) is encoded
    again, never reused."""
    audio = signal(6.0, 6)
    ws = windows_of(audio)
    cache = new_cache(model)
    cached(cache, model, [ws[0]])
    changed = ws[1].samples.copy()
    changed[: SR] = signal(1.0, 7)  # second 1, which the cache holds from window 0
    w = Window(stream_id="s1", index=1, start_sample=HOP, start_ts=1.0, end_ts=4.0, samples=changed,
               tasks=("anomaly",), sender_epoch=1)
    torch.testing.assert_close(cached(cache, model, [w])[0], whole(model, [w])[0], atol=1e-5, rtol=1e-5)
    assert cache.stats()["mismatches"] == 1


def test_a_hop_off_the_chunk_grid_encodes_whole_windows_and_keeps_nothing(model):
    audio = signal(8.0, 8)
    ws = windows_of(audio, hop=SR // 2)  # 0.5 s hop with 1 s chunks
    cache = new_cache(model)
    got = [cached(cache, model, [w])[0] for w in ws[:5]]
    for g, r in zip(got, whole(model, ws[:5])):
        torch.testing.assert_close(g, r, atol=1e-5, rtol=1e-5)
    s = cache.stats()
    assert s["resets_off_grid"] == 1 and s["windows_uncached"] == 4 and s["chunks"] == 0


def test_memory_is_bounded_per_stream_and_in_streams(model):
    audio = signal(40.0, 9)
    cache = new_cache(model, max_chunks=3, max_streams=2)
    for w in windows_of(audio)[:30]:
        cached(cache, model, [w])
        assert cache.stream_chunks("s1") <= 3  # the chunks of the latest window, no more
    per_chunk = cache.stats()["bytes"] / cache.stats()["chunks"]
    assert per_chunk < 25 * 64 * 4 + 1024  # 25 positions x D=64 float32, plus the check sample
    for sid in ("a", "b", "c"):
        cached(cache, model, windows_of(audio, sid, count=1))
    s = cache.stats()
    assert s["streams"] == 2 and s["streams_evicted"] == 2 and cache.stream_chunks("s1") == 0
    assert s["chunks"] == 6 and s["bytes"] == pytest.approx(6 * per_chunk, rel=0.01)


# ---- chunks encoded ahead of their windows -----------------------------------------------------------
def chunks_of(audio: np.ndarray, stream: str = "s1", starts=(0, 1), epoch: int = 1) -> list[AudioChunk]:
    """1 s chunks of ``audio`` starting at the given seconds, as the worker's windowing cuts them."""
    return [AudioChunk(stream, k * SR, audio[k * SR:(k + 1) * SR].copy(), epoch) for k in starts]


def ahead(cache, chunks, enc) -> int:
    with torch.inference_mode():
        return cache.encode_ahead(chunks, enc)


def test_chunks_encoded_ahead_are_used_and_the_first_window_encodes_only_the_missing_one(model):
    audio = signal(7.0, 20)
    ws = windows_of(audio)
    cache, enc = new_cache(model), Counting(model)
    assert ahead(cache, chunks_of(audio, starts=(0, 1)), enc) == 2  # before the first window is due
    assert enc.chunks == 2 and enc.calls == 1 and cache.stream_chunks("s1") == 2
    assert ahead(cache, chunks_of(audio, starts=(1,)), enc) == 0 and enc.chunks == 2  # held: not again
    got = cached(cache, model, ws[:1], enc)[0]
    assert enc.chunks == 3  # only the chunk that completed the window
    torch.testing.assert_close(got, whole(model, ws[:1])[0], atol=1e-5, rtol=1e-5)
    s = cache.stats()
    assert (s["hits"], s["hits_ahead"], s["encoded"], s["ahead_encoded"], s["ahead_held"]) == (2, 2, 1, 2, 1)
    # later windows, with a chunk ahead between them and a batch of two: still whole-window encodings
    assert ahead(cache, chunks_of(audio, starts=(3,)), enc) == 1
    got = cached(cache, model, ws[1:3], enc)
    for g, r in zip(got, whole(model, ws[1:3])):
        torch.testing.assert_close(g, r, atol=1e-5, rtol=1e-5)
    assert enc.chunks == 5  # window 2 added chunk 4 only
    assert cache.stats()["hits_ahead"] == 5  # chunk 0 once, 1 twice, 3 twice


def test_chunks_ahead_keep_the_reset_rules(model):
    audio = signal(10.0, 21)
    ws = windows_of(audio, gap_at={2})
    cache, enc = new_cache(model), Counting(model)
    ahead(cache, chunks_of(audio, starts=(0, 1)), enc)
    cached(cache, model, ws[:2], enc)  # chunks 2 and 3 new
    assert enc.chunks == 4
    # behind the latest window (starts at 1 s): skipped, never encoded, no reset
    assert ahead(cache, chunks_of(audio, starts=(0,)), enc) == 0 and cache.stats()["ahead_skipped"] == 1
    assert ahead(cache, chunks_of(audio, starts=(4,)), enc) == 1 and cache.stream_chunks("s1") == 4
    cached(cache, model, [ws[2]], enc)  # carries a gap: starts over, its chunks encoded again (4 too)
    assert enc.chunks == 8 and cache.stats()["resets_gap"] == 1
    # a new sender run: its chunk starts the stream over, a chunk of the old run after it is skipped
    other = signal(10.0, 22)
    assert ahead(cache, chunks_of(other, starts=(7,), epoch=2), enc) == 1
    assert cache.stats()["resets_restart"] == 1 and cache.stream_chunks("s1") == 1
    assert ahead(cache, chunks_of(audio, starts=(8,), epoch=1), enc) == 0
    assert cache.stats()["ahead_skipped"] == 2 and cache.stats()["resets_restart"] == 1
    # another stream's chunk at the same place, with other audio: never used for this one
    assert ahead(cache, chunks_of(audio, "b", starts=(8,)), enc) == 1
    restarted = windows_of(other, epoch=2, first=7, count=1)[0]  # [7, 10) s: chunk 7 ahead, 8 and 9 new
    before, hits_ahead = enc.chunks, cache.stats()["hits_ahead"]
    got = cached(cache, model, [restarted], enc)[0]
    torch.testing.assert_close(got, whole(model, [restarted])[0], atol=1e-5, rtol=1e-5)
    assert enc.chunks == before + 2 and cache.stats()["hits_ahead"] == hits_ahead + 1
    # the end of the stream drops what was encoded ahead too
    cache.drop("s1", "ended")
    assert cache.stream_chunks("s1") == 0 and cache.stream_chunks("b") == 1


def test_chunks_ahead_are_bounded_and_skipped_on_an_uncached_stream(model):
    audio = signal(12.0, 23)
    cache, enc = new_cache(model, max_chunks=3), Counting(model)
    ahead(cache, chunks_of(audio, starts=range(8)), enc)
    assert cache.stream_chunks("s1") == 3  # the newest, no more than a window's
    off = windows_of(audio, "off", hop=SR // 2)  # its windows are off the chunk grid: whole windows
    cached(cache, model, off[:2])
    assert cache.stats()["windows_uncached"] == 1
    assert ahead(cache, chunks_of(audio, "off", starts=(3,)), enc) == 0 and cache.stream_chunks("off") == 0


# ---- the model stage ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stages(model):
    from edge_coat.worker.coat_stage import CoatStage

    on = CoatStage(ModelSection(path="unused", readings=[]), model=model)
    off = CoatStage(ModelSection(path="unused", readings=[], encoder_cache={"enabled": False}), model=model)
    return on, off


def test_stage_with_the_cache_scores_as_without(stages):
    """Label probabilities and latents with the cache equal those without, for two tasks and two streams
    in shared batches; the stream's end drops its chunks."""
    on, off = stages
    assert on.info()["encoder_cache_on"] and not off.info()["encoder_cache_on"]
    assert on.info()["encoder_cache"].startswith("on: each 1 s chunk")
    assert on.encoding_for_hop(2.0).startswith("each 1 s chunk encoded once")
    assert "not a whole number" in on.encoding_for_hop(1.5)
    assert off.encoding_for_hop(2.0).startswith("whole windows (encoder cache off")
    a, b = signal(7.0, 10), signal(7.0, 11)
    ws = [w for pair in zip(windows_of(a, "a"), windows_of(b, "b")) for w in pair]
    ws = [Window(**{**w.__dict__, "tasks": ("anomaly", "emotion")}) for w in ws]
    got = [r for k in range(0, len(ws), 3) for r in on.process(ws[k:k + 3])]
    ref = off.process(ws)
    for g, r in zip(got, ref):
        for task in ("anomaly", "emotion"):
            np.testing.assert_allclose(list(g.label_probs[task].values()), list(r.label_probs[task].values()),
                                       atol=1e-4)
        np.testing.assert_allclose(g.thinking, r.thinking, atol=1e-4)
    cs = on.stats()["encoder_cache"]
    assert cs["streams"] == 2 and cs["hits"] > 0 and cs["encoded"] == 14
    on.end_stream(EndOfStream("a", 7.0))
    assert on.cache.stream_chunks("a") == 0 and on.cache.stream_chunks("b") == 3
    assert on.stats()["encoder_cache"]["resets_ended"] == 1


def test_stage_cache_parity_with_pooled_llm_audio_and_the_thinking_summary():
    """A model that pools its audio positions for the LLM (llm_audio_stride 5: a 1 s chunk's 25 positions
    become 5) and reads a statistics summary scores alike with and without the cache."""
    from edge_coat.model.tiny import tiny_coat_model
    from edge_coat.worker.coat_stage import CoatStage

    pooled = tiny_coat_model("qwen2_audio", max_seconds=1, chunk_features="chunk", llm_audio_stride=5,
                             thinking_summary=True)
    on = CoatStage(ModelSection(path="unused", readings=[]), model=pooled)
    off = CoatStage(ModelSection(path="unused", readings=[], encoder_cache={"enabled": False}), model=pooled)
    ws = windows_of(signal(6.0, 12), "p")
    got = [r for k in range(0, len(ws), 2) for r in on.process(ws[k:k + 2])]
    ref = off.process(ws)
    assert on.stats()["encoder_cache"]["hits"] > 0
    for g, r in zip(got, ref):
        np.testing.assert_allclose(list(g.label_probs["anomaly"].values()), list(r.label_probs["anomaly"].values()),
                                   atol=1e-4)
        np.testing.assert_allclose(g.thinking, r.thinking, atol=1e-4)


def test_stage_encodes_ahead_and_scores_as_without_the_cache(model, stages):
    """The stage side: which streams get chunks ahead, and a stream whose first two chunks were encoded
    ahead scores exactly as whole windows do."""
    from edge_coat.worker.coat_stage import CoatStage

    _, off = stages
    stage = CoatStage(ModelSection(path="unused", readings=[]), model=model)
    assert stage.ahead_chunk_samples(WINDOW, HOP) == SR and "as its audio arrives" in stage.info()["encoder_cache"]
    assert stage.ahead_chunk_samples(WINDOW, SR + SR // 2) == 0  # hop off the chunk grid
    assert stage.ahead_chunk_samples(SR, SR) == 0  # a one-chunk window: nothing to encode ahead
    no_ahead = CoatStage(ModelSection(path="unused", readings=[], encoder_cache={"encode_ahead": False}), model=model)
    assert no_ahead.ahead_chunk_samples(WINDOW, HOP) == 0 and off.ahead_chunk_samples(WINDOW, HOP) == 0
    audio = signal(6.0, 24)
    ws = windows_of(audio)
    stage.encode_ahead(chunks_of(audio, starts=(0, 1)))
    got = stage.process(ws[:1]) + stage.process(ws[1:])
    for g, r in zip(got, off.process(ws)):
        np.testing.assert_allclose(list(g.label_probs["anomaly"].values()), list(r.label_probs["anomaly"].values()),
                                   atol=1e-4)
        np.testing.assert_allclose(g.thinking, r.thinking, atol=1e-4)
    st = stage.stats()
    assert st["ahead_calls"] == 1 and st["ahead_chunks"] == 2 and st["latency_s"]["ahead"]["count"] == 1
    assert st["encoder_cache"]["hits_ahead"] == 3 and st["encoder_cache"]["encoded"] == len(ws)  # chunk 1 twice


def test_stage_says_when_the_model_cannot_be_cached():
    from edge_coat.model.tiny import tiny_coat_model
    from edge_coat.worker.coat_stage import CoatStage

    model = tiny_coat_model("qwen2_audio", max_seconds=1)  # chunk_features 'window' (coat-tiny 0.2.0)
    stage = CoatStage(ModelSection(path="unused", readings=[]), model=model)
    assert stage.cache is None and not stage.info()["encoder_cache_on"]
    assert "chunk_features 'window'" in stage.info()["encoder_cache"]
    audio = signal(4.0, 12)
    results = stage.process(windows_of(audio))
    assert all(r.label_probs["anomaly"] for r in results)


def test_cache_figures_reach_the_metrics(stages):
    """The stage's cache counters become Prometheus families at scrape time."""
    from prometheus_client import CollectorRegistry, generate_latest

    from edge_coat.service.metrics import ServiceCollector

    on, _ = stages
    on.process(windows_of(signal(5.0, 13), "m"))
    registry = CollectorRegistry()
    registry.register(ServiceCollector(lambda: {"stage": on.stats()}))
    text = generate_latest(registry).decode()
    stats = on.stats()["encoder_cache"]
    assert f'edge_coat_model_encoder_chunks_total{{outcome="hit"}} {float(stats["hits"])}' in text
    assert f'edge_coat_model_encoder_chunks_total{{outcome="encoded_ahead"}} {float(stats["ahead_encoded"])}' in text
    assert f'edge_coat_model_encoder_cache_bytes {float(stats["bytes"])}' in text and stats["bytes"] > 0
