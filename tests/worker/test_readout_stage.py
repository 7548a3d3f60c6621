"""The answer readout in the real model stage: fused with the encoder cache on as with whole windows, and
switched off by the site config's ``model.readout: false`` (the LLM's answers alone)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edge_coat.config import ModelSection
from edge_coat.messages import SAMPLE_RATE
from edge_coat.worker.coat_stage import CoatStage

from .streams import stream_windows

SR = SAMPLE_RATE


def tiny_with_readout():
    from edge_coat.model.tiny import tiny_coat_model

    torch.set_num_threads(1)
    model = tiny_coat_model("qwen2_audio", max_seconds=1, chunk_features="chunk", thinking_summary=True)
    labels = list(model.config.tasks["emotion"].labels)
    g = torch.Generator().manual_seed(0)
    model.readout.set_task("emotion", labels, torch.randn(len(labels), model.readout.feature_dim, generator=g) * 2,
                           torch.zeros(len(labels)))
    model.config.readout = {"emotion": labels}
    return model


def tiny_with_tower_readout(seed: int):
    """The tiny model with a random emotion readout on the tower's statistics (and its emotion labels)."""
    model = tiny_with_readout()
    model.set_readout_input("tower")  # drops the audio readout: install one on the tower's statistics
    labels = list(model.config.tasks["emotion"].labels)
    g = torch.Generator().manual_seed(seed)
    model.readout.set_task("emotion", labels, torch.randn(len(labels), model.readout.feature_dim, generator=g) * 2,
                           torch.zeros(len(labels)))
    model.config.readout = {"emotion": labels}
    return model, labels


def _probs(stage, windows):
    return np.array([[r.label_probs["emotion"][k] for k in sorted(r.label_probs["emotion"])]
                     for r in stage.process(windows)])


def test_the_stage_fuses_the_readout_alike_with_and_without_its_encoder_cache_and_can_turn_it_off():
    model = tiny_with_readout()
    audio = (0.1 * np.random.default_rng(0).standard_normal(6 * SR)).astype(np.float32)
    windows = stream_windows(audio, length=3 * SR, hop=SR, tasks=("emotion",))
    cached = CoatStage(ModelSection(path="unused", readings=[]), model=model)
    assert cached.info()["readout"] == ["emotion"]
    fused_cached = _probs(cached, windows)
    whole = CoatStage(ModelSection(path="unused", readings=[], encoder_cache={"enabled": False}), model=model)
    fused_whole = _probs(whole, windows)
    np.testing.assert_allclose(fused_cached, fused_whole, atol=1e-4)
    off = CoatStage(ModelSection(path="unused", readings=[], readout=False), model=model)
    assert off.info()["readout"] == []
    alone = _probs(off, windows)
    # the LLM alone at its temperature: what score_task gives without the readout
    labels = sorted(model.config.tasks["emotion"].labels)
    ref = model.score_task([w.samples for w in windows], "emotion")
    order = [list(ref.labels).index(k) for k in labels]
    np.testing.assert_allclose(alone, torch.softmax(torch.tensor(ref.logprobs) / model.config.temperature,
                                                    -1).numpy()[:, order], atol=1e-4)
    assert np.abs(alone - fused_cached).max() > 1e-3


def test_a_tower_readout_is_fed_the_towers_output_through_the_encoder_and_thinking_caches():
    model, labels = tiny_with_tower_readout(seed=1)
    audio = (0.1 * np.random.default_rng(3).standard_normal(6 * SR)).astype(np.float32)
    windows = stream_windows(audio, length=3 * SR, hop=SR, tasks=("emotion",))
    cached = CoatStage(ModelSection(path="unused", readings=[], encoder_cache={"thinking_frames": True}), model=model)
    info = cached.info()
    assert info["encoder_cache_on"] and info["thinking_cache_on"] and info["readout"] == ["emotion"]
    got = np.concatenate([_probs(cached, [w]) for w in windows])  # one window per batch: later ones hit the cache
    assert cached.stats()["encoder_cache"]["hits"] > 0  # windows built from cached chunks (tower included)
    whole = _probs(CoatStage(ModelSection(path="unused", readings=[], encoder_cache={"enabled": False}),
                             model=model), windows)
    ref = model.score_task([w.samples for w in windows], "emotion")  # the model on the windows' waves
    order = [list(ref.labels).index(k) for k in sorted(labels)]
    np.testing.assert_allclose(got, ref.probs[:, order], atol=1e-4)
    np.testing.assert_allclose(whole, ref.probs[:, order], atol=1e-4)


def test_a_tower_readout_scores_alike_from_chunks_encoded_ahead():
    from edge_coat.messages import AudioChunk

    model, labels = tiny_with_tower_readout(seed=2)
    audio = (0.1 * np.random.default_rng(5).standard_normal(5 * SR)).astype(np.float32)
    windows = stream_windows(audio, length=3 * SR, hop=SR, tasks=("emotion",))
    stage = CoatStage(ModelSection(path="unused", readings=[], encoder_cache={"thinking_frames": True}), model=model)
    chunk = stage.ahead_chunk_samples(3 * SR, SR)
    assert chunk == model.chunk_samples
    # the first window's first two chunks arrive ahead of it: encoded (tower included) before any window
    stage.encode_ahead([AudioChunk("s1", k * chunk, audio[k * chunk:(k + 1) * chunk], 1) for k in range(2)])
    got = np.concatenate([_probs(stage, [w]) for w in windows])
    stats = stage.stats()["encoder_cache"]
    # hits on them: chunks 0 and 1 for the first window, chunk 1 again for the second
    assert stats["ahead_encoded"] == 2 and stats["hits_ahead"] == 3
    ref = model.score_task([w.samples for w in windows], "emotion")
    np.testing.assert_allclose(got, ref.probs[:, [list(ref.labels).index(k) for k in sorted(labels)]], atol=1e-4)


def _task_probs(stage, windows, task):
    return np.array([[r.label_probs[task][k] for k in sorted(r.label_probs[task])] for r in stage.process(windows)])


def test_the_site_can_keep_the_readout_for_some_tasks_only():
    """``model.readout: [anomaly]``: that task's scores fused as with ``true``, the others the LLM's alone, as with
    ``false`` (a site whose callers speak a language the model never heard: docs/coat-tiny-readout-weight)."""
    model = tiny_with_readout()
    labels = list(model.config.tasks["anomaly"].labels)
    g = torch.Generator().manual_seed(4)
    model.readout.set_task("anomaly", labels, torch.randn(len(labels), model.readout.feature_dim, generator=g) * 2,
                           torch.zeros(len(labels)))
    model.config.readout = {**model.config.readout, "anomaly": labels}
    audio = (0.1 * np.random.default_rng(7).standard_normal(5 * SR)).astype(np.float32)
    windows = stream_windows(audio, length=3 * SR, hop=SR, tasks=("emotion", "anomaly"))

    def stage(readout):
        return CoatStage(ModelSection(path="unused", readings=[], readout=readout), model=model)

    some = stage(["anomaly"])
    assert some.info()["readout"] == ["anomaly"]
    got = {t: _task_probs(some, windows, t) for t in ("emotion", "anomaly")}
    # the stages share one model: each sets the readout's tasks afresh (true after a list is every task again)
    fused = {t: _task_probs(stage(True), windows, t) for t in ("emotion", "anomaly")}
    alone = {t: _task_probs(stage(False), windows, t) for t in ("emotion", "anomaly")}
    np.testing.assert_allclose(got["anomaly"], fused["anomaly"], atol=1e-5)
    np.testing.assert_allclose(got["emotion"], alone["emotion"], atol=1e-5)
    assert np.abs(fused["emotion"] - alone["emotion"]).max() > 1e-3  # the switch did something
    assert np.abs(fused["anomaly"] - alone["anomaly"]).max() > 1e-3
    # a task the model has no readout for is a clear error at start, not a silent no-op
    with pytest.raises(ValueError, match=r"model.readout lists \['events'\]"):
        stage(["events"])
    assert model.readout_tasks is None and model.use_readout is False  # the failed start left the model as it was
    # and the site config parses the list form
    assert ModelSection.model_validate({"path": "x", "readout": ["anomaly"]}).readout == ["anomaly"]
