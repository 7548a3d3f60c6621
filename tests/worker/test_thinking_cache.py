"""The thinking block's per-frame part kept with the encoder cache's chunks (issue 14): each chunk's
``frame_features`` computed once (a batch's new chunks in one call, chunks encoded ahead too), the same
reset rules and memory bound as the encodings, never mixed across streams, and the stage's label
probabilities and latents as with the whole block per window; a bundle without the part graphs serves
whole windows and says so.

A tiny random model with 1 s encoder chunks, the statistics summary and 3 s windows with a 1 s hop, as in
tests/worker/test_encoder_cache.py.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from edge_coat.config import ModelSection
from edge_coat.messages import SAMPLE_RATE, EndOfStream, Window
from edge_coat.worker.encoder_cache import EncoderCache

from .streams import stream_windows
from .test_encoder_cache import Counting, chunks_of, signal

SR = SAMPLE_RATE
windows_of = functools.partial(stream_windows, length=3 * SR, hop=SR)
TASKS = ("anomaly", "emotion")


def tiny():
    from edge_coat.model.tiny import tiny_coat_model

    torch.set_num_threads(1)
    return tiny_coat_model("qwen2_audio", max_seconds=1, chunk_features="chunk", thinking_summary=True)


@pytest.fixture(scope="module")
def model():
    return tiny()


class Frames:
    """``model.thinking.frame_features``, counting the calls and the chunks (rows) it runs on."""

    def __init__(self, model):
        self.fn, self.calls, self.rows = model.thinking.frame_features, 0, 0

    def __call__(self, embeds):
        self.calls += 1
        self.rows += embeds.shape[0]
        return self.fn(embeds)


def whole_frames(model, ws: list[Window]) -> list[torch.Tensor]:
    """Each window's per-frame features from its whole-window encoding: B x (T_i, F)."""
    with torch.inference_mode():
        e, m = model.encode([w.samples for w in ws])
        f = model.thinking.frame_features(e)
    return [f[i][m[i]] for i in range(len(ws))]


def cached_frames(cache, model, ws: list[Window], enc=None) -> list[torch.Tensor]:
    with torch.inference_mode():
        _, m, f = cache.encode_with_frames(ws, enc or model.encode_chunks)
    return [f[i][m[i]] for i in range(len(ws))]


def new_cache(model, frames, **kw) -> EncoderCache:
    return EncoderCache(model.chunk_samples, max_chunks=kw.pop("max_chunks", 30), frames=frames, **kw)


def close(got: list[torch.Tensor], ref: list[torch.Tensor]) -> None:
    assert len(got) == len(ref)
    for g, r in zip(got, ref):
        assert g.shape == r.shape
        torch.testing.assert_close(g, r, atol=1e-5, rtol=1e-5)


def test_kept_frames_equal_whole_window_frames_and_each_chunk_runs_once(model):
    ws = windows_of(signal(9.5, 30))
    frames = Frames(model)
    cache, enc = new_cache(model, frames), Counting(model)
    got = [cached_frames(cache, model, [w], enc)[0] for w in ws[:3]] + cached_frames(cache, model, ws[3:], enc)
    close(got, whole_frames(model, ws))
    assert got[0].shape == (75, model.thinking.frame_dim)
    assert frames.rows == enc.chunks == 9 and frames.calls == enc.calls == 4  # one call per batch of new chunks


def test_frames_reset_with_the_chunks_at_a_gap_a_restart_and_the_end(model):
    audio = signal(10.0, 31)
    frames = Frames(model)
    cache = new_cache(model, frames)
    ws = windows_of(audio, gap_at={3})
    for w in ws[:3]:
        cached_frames(cache, model, [w])
    assert frames.rows == 5
    close(cached_frames(cache, model, [ws[3]]), whole_frames(model, [ws[3]]))  # a gap: all three again
    assert frames.rows == 8 and cache.stats()["resets_gap"] == 1
    restarted = windows_of(signal(10.0, 32), epoch=2, first=5, count=1)
    close(cached_frames(cache, model, restarted), whole_frames(model, restarted))
    assert frames.rows == 11 and cache.stats()["resets_restart"] == 1
    rewound = windows_of(audio, first=2, count=1)  # back on the old timeline, old run: starts over again
    close(cached_frames(cache, model, [Window(**{**rewound[0].__dict__, "sender_epoch": 2})]),
          whole_frames(model, rewound))
    assert cache.stats()["resets_rewind"] == 1
    cache.drop("s1", "ended")
    assert cache.stats()["chunks"] == 0 and cache.stats()["bytes"] == 0


def test_frames_never_mix_across_streams(model):
    """Two streams at the same timeline places with other audio, in shared batches."""
    a, b = signal(6.0, 33), signal(6.0, 34)
    wa, wb = windows_of(a, "a"), windows_of(b, "b")
    cache = new_cache(model, Frames(model))
    for x, y in zip(wa, wb):
        got = cached_frames(cache, model, [x, y])
        close(got, whole_frames(model, [x, y]))
        assert not torch.allclose(got[0], got[1])


def test_off_grid_windows_get_whole_window_frames_and_keep_nothing(model):
    ws = windows_of(signal(6.0, 35), hop=SR // 2)
    cache = new_cache(model, Frames(model))
    close([cached_frames(cache, model, [w])[0] for w in ws[:4]], whole_frames(model, ws[:4]))
    assert cache.stats()["chunks"] == 0 and cache.stats()["windows_uncached"] == 3


def test_memory_counts_the_frames_and_stays_bounded(model):
    audio = signal(30.0, 36)
    with_frames = new_cache(model, Frames(model), max_chunks=3, max_streams=2)
    plain = EncoderCache(model.chunk_samples, max_chunks=3, max_streams=2)
    for w in windows_of(audio)[:20]:
        cached_frames(with_frames, model, [w])
        with torch.inference_mode():
            plain.encode([w], model.encode_chunks)
        assert with_frames.stream_chunks("s1") <= 3
    s, p = with_frames.stats(), plain.stats()
    assert s["chunks"] == p["chunks"] == 3
    f, d = model.thinking.frame_dim, 64
    assert s["bytes"] - p["bytes"] == 3 * 25 * f * 4  # 25 positions x F float32 per chunk on top of the encoding
    for sid in ("x", "y", "z"):
        cached_frames(with_frames, model, windows_of(audio, sid, count=1))
    s = with_frames.stats()
    assert s["streams"] == 2 and s["chunks"] == 6
    assert s["bytes"] == pytest.approx(6 * (25 * (f + d) * 4 + p["bytes"] / 3 - 25 * d * 4), rel=0.01)


def test_chunks_encoded_ahead_carry_their_frames(model):
    audio = signal(6.0, 37)
    ws = windows_of(audio)
    frames = Frames(model)
    cache = new_cache(model, frames)
    with torch.inference_mode():
        assert cache.encode_ahead(chunks_of(audio, starts=(0, 1)), model.encode_chunks) == 2
    assert frames.calls == 1 and frames.rows == 2
    close(cached_frames(cache, model, ws[:2]), whole_frames(model, ws[:2]))
    assert frames.rows == 4 and cache.stats()["hits_ahead"] == 3  # chunk 2 and 3 new; 0 once, 1 twice


# ---- the model stage ------------------------------------------------------------------------------
def stage(model, **kw):
    from edge_coat.worker.coat_stage import CoatStage

    cache = kw.pop("encoder_cache", {})
    return CoatStage(ModelSection(path="unused", readings=[], encoder_cache=cache), model=model, **kw)


def interleaved(*streams: tuple[str, int]) -> list[Window]:
    per = [windows_of(signal(7.0, seed), sid, tasks=TASKS) for sid, seed in streams]
    return [w for group in zip(*per) for w in group]


def assert_same_results(got, ref, atol: float) -> float:
    worst = 0.0
    for g, r in zip(got, ref, strict=True):
        for task in TASKS:
            p, q = np.array(list(g.label_probs[task].values())), np.array(list(r.label_probs[task].values()))
            worst = max(worst, float(np.abs(p - q).max()))
        worst = max(worst, float(np.abs(g.thinking - r.thinking).max()))
    assert worst <= atol, worst
    return worst


def test_stage_scores_as_with_the_whole_block(model):
    """Label probabilities and latents with the thinking cache equal the whole block's per window (encoder
    cache on and off), two streams in shared batches; each chunk's per-frame part runs once."""
    on, whole_block, off = stage(model), stage(model, thinking_cache=False), stage(model, encoder_cache={"enabled": False})
    assert on.info()["thinking_cache_on"] and on.info()["thinking_cache"].startswith("on: each chunk")
    assert not whole_block.info()["thinking_cache_on"] and "thinking_frames: false" in whole_block.info()["thinking_cache"]
    assert not off.info()["thinking_cache_on"] and "needs the encoder cache" in off.info()["thinking_cache"]
    ws = interleaved(("a", 40), ("b", 41))
    frames = Frames(model)
    model.thinking.frame_features = frames  # counted (an instance attribute over the method)
    try:
        got = [r for k in range(0, len(ws), 3) for r in on.process(ws[k:k + 3])]
    finally:
        del model.thinking.frame_features
    assert frames.rows == on.stats()["encoder_cache"]["encoded"] == 14  # 7 s of two streams, each second once
    assert_same_results(got, [r for k in range(0, len(ws), 3) for r in whole_block.process(ws[k:k + 3])], 1e-5)
    assert_same_results(got, off.process(ws), 1e-4)
    assert got[-1].latency_ms["thinking"] > 0
    on.end_stream(EndOfStream("a", 7.0))
    assert on.cache.stream_chunks("a") == 0 and on.cache.stream_chunks("b") == 3


def test_stage_encodes_frames_ahead(model):
    on, off = stage(model), stage(model, encoder_cache={"enabled": False})
    audio = signal(6.0, 42)
    ws = windows_of(audio, tasks=TASKS)
    on.encode_ahead(chunks_of(audio, starts=(0, 1)))
    assert_same_results(on.process(ws[:1]) + on.process(ws[1:]), off.process(ws), 1e-4)


def test_a_bundle_without_the_part_graphs_serves_whole_windows_and_says_so(tmp_path, caplog):
    """An older bundle: ``thinking.onnx`` alone (self-contained, as bundles were exported before the parts).
    The block cannot split, the stage runs it whole per window and its info and log say why; scores as a
    bundle with the parts does."""
    import logging

    from edge_coat.export.onnx_export import export_thinking, export_thinking_parts, share_weights
    from edge_coat.model.config import ThinkingRuntimeConfig
    from edge_coat.model.loading import attach_onnx_thinking

    pytest.importorskip("onnxruntime")
    cpu = ThinkingRuntimeConfig(provider="cpu", intra_op_threads=1)
    old_model, new_model = tiny(), tiny()
    (tmp_path / "old").mkdir()
    attach_onnx_thinking(old_model, export_thinking(old_model.thinking, tmp_path / "old" / "thinking.onnx"), cpu)
    new = tmp_path / "new"
    graphs = [export_thinking(new_model.thinking, new / "thinking.onnx"), *export_thinking_parts(new_model.thinking, new)]
    share_weights(graphs, "thinking.weights")
    attach_onnx_thinking(new_model, graphs[0], cpu)
    assert not old_model.thinking.can_split and new_model.thinking.can_split
    with pytest.raises(RuntimeError, match="exported before them"):
        old_model.thinking.frame_features(torch.zeros(1, 2, 64))
    with caplog.at_level(logging.INFO, logger="edge_coat.worker.coat_stage"):
        old_stage = stage(old_model)
    assert not old_stage.info()["thinking_cache_on"] and "exported before them" in old_stage.info()["thinking_cache"]
    assert "thinking cache off: no thinking_frames.onnx + thinking_window.onnx" in caplog.text
    new_stage = stage(new_model)
    assert new_stage.info()["thinking_cache_on"] and new_stage.info()["thinking_runtime"] == "onnx"
    ws = interleaved(("a", 43), ("b", 44))
    got = [r for k in range(0, len(ws), 4) for r in new_stage.process(ws[k:k + 4])]
    ref = [r for k in range(0, len(ws), 4) for r in old_stage.process(ws[k:k + 4])]
    assert_same_results(got, ref, 1e-4)
