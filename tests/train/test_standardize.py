"""The pretrained tower's output standardised per channel and folded into its final LayerNorm."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edge_coat.cli import main
from tests.train.conftest import SR, TEST_EXPERTS
from tests.train.test_towercache import TOWER_TRAIN, encoder_dir  # noqa: F401  (the module fixture)

pytestmark = pytest.mark.timeout(900)


def _model(separable, encoder_dir):
    from edge_coat.train.config import TrainConfig
    from edge_coat.train.pipeline import task_specs
    from edge_coat.train.trainer import new_model

    cfg = TrainConfig(data=[{"path": str(separable["train"]), "task": "emotion"}], init_family="qwen2_audio",
                      init_size="test", max_seconds=1, init_encoder=str(encoder_dir), encoder_layers=2)
    return new_model(cfg, task_specs(["emotion"]), [])


def _wave(freq: float, seconds: float = 2.5) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.2 * np.sin(2 * np.pi * freq * t) + 0.05 * np.sin(2 * np.pi * 3.1 * freq * t)).astype(np.float32)


def test_tower_stats_are_the_mean_and_std_over_every_frame():
    from edge_coat.train.standardize import MIN_STD, tower_stats

    rng = np.random.default_rng(0)
    clips = [rng.normal(3.0, 2.0, (n, 4)).astype(np.float16) for n in (5, 17, 40)]
    for c in clips:
        c[:, 3] = 7.0  # a constant channel: centred, its std floored
    mean, std = tower_stats(clips)
    frames = np.concatenate(clips).astype(np.float64)
    np.testing.assert_allclose(mean, frames.mean(0), rtol=1e-5)
    np.testing.assert_allclose(std[:3], frames.std(0)[:3], rtol=1e-4)
    assert std[3] == pytest.approx(MIN_STD)
    with pytest.raises(ValueError, match="no training clips"):
        tower_stats([])


def test_folded_tower_gives_the_standardised_output_and_reads_the_unfolded_cache(separable, encoder_dir, tmp_path):
    from edge_coat.train.standardize import fold_into_tower, tower_stats
    from edge_coat.train.towercache import TowerCache, tower_fingerprint

    model = _model(separable, encoder_dir)
    waves = [_wave(220.0), _wave(440.0, 1.5), _wave(97.0, 3.0)]
    before = TowerCache(model, tmp_path, ["clean", "telephone"])
    raw = [before.features(w) for w in waves]  # unfolded, cached under the tower's own fingerprint
    source = tower_fingerprint(model)
    mean, std = tower_stats([r[0] for r in raw])
    new = _wave(660.0, 2.0)
    with torch.inference_mode():
        hn, mn = model.encode_tower([new])  # the source tower's output of a clip the cache has not seen
    unfolded_new = hn[0][mn[0]].numpy()
    assert std.max() / std.min() > 2  # channels of different scale: the fold has something to do
    fold_into_tower(model, mean, std, source, len(raw))
    st = model.config.tower_standardized
    assert st.source_fingerprint == source and st.clips == 3 and len(st.mean) == len(mean)
    assert tower_fingerprint(model) != source
    with torch.inference_mode():
        h, m = model.encode_tower([waves[0]])
    folded = h[0][m[0]].numpy()
    expected = (raw[0][0].astype(np.float32) - mean) / std
    np.testing.assert_allclose(folded, expected, atol=2e-2)  # fp16 cache and fp16-rounded LayerNorm
    pooled = np.concatenate([(r[0].astype(np.float32) - mean) / std for r in raw])
    np.testing.assert_allclose(pooled.mean(0), 0.0, atol=1e-2)
    np.testing.assert_allclose(pooled.std(0), 1.0, atol=2e-2)
    # the folded model's cache is the unfolded one, read through the map: no clip is encoded again
    after = TowerCache(model, tmp_path, ["clean", "telephone"])
    assert after.root == before.root
    got = after.features(waves[0])
    assert after.computed == 0
    np.testing.assert_allclose(got[0].astype(np.float32), folded, atol=2e-2)
    np.testing.assert_allclose(got[1].astype(np.float32), (raw[0][1].astype(np.float32) - mean) / std, atol=1e-2)
    # a clip it has not seen is encoded by the folded tower and stored unfolded, as the source tower gives it
    got_new = after.features(new)
    assert after.computed == 2
    np.testing.assert_allclose(got_new[0].astype(np.float32), (unfolded_new - mean) / std, atol=3e-2)
    from edge_coat.experts.cache import audio_sha256
    stored = np.load(after._path(audio_sha256(new), 0))
    assert stored.dtype == np.float16
    np.testing.assert_allclose(stored.astype(np.float32), unfolded_new, atol=2e-2 * float(np.abs(unfolded_new).max()))
    with pytest.raises(ValueError, match="standardised already"):
        fold_into_tower(model, mean, std, source, 3)


def test_training_folds_the_tower_once_and_serving_keeps_it(separable, encoder_dir, tmp_path):
    """--standardize-tower: stage 1 measures and folds, its saved model (and a stage 2 from it) carry the fold,
    the linear summary (--no-summary-mlp) has no per-frame MLP, and a resumed run does not fold twice."""
    from edge_coat.model.coat import CoatModel

    common = ["--tower-variants", "clean", "--data", f"{separable['train']}:emotion", "--lr", "3e-3",
              "--batch-size", "4", "--log-every", "4", "--checkpoint-every", "4",
              "--teacher-cache", str(tmp_path / "teacher"), "--tower-cache", str(tmp_path / "tower")]
    s1 = tmp_path / "s1"
    assert main([*TOWER_TRAIN, "--init-encoder", str(encoder_dir), "--steps", "4", "--thinking-summary",
                 "--no-summary-mlp", "--standardize-tower", "--out", str(s1), *common]) == 0
    model = CoatModel.from_pretrained(s1 / "model")
    st = model.config.tower_standardized
    assert st is not None and st.clips > 0
    assert model.thinking.summary is not None and model.thinking.summary.frame is None
    assert not any(".summary.frame" in n for n, _ in model.named_parameters())
    init = CoatModel.from_pretrained(s1 / "init")  # what a resumed run starts from: already folded
    assert init.config.tower_standardized == st
    torch.testing.assert_close(init.base.model.audio_tower.layer_norm.weight,
                               model.base.model.audio_tower.layer_norm.weight)
    assert main([*TOWER_TRAIN, "--init-encoder", str(encoder_dir), "--steps", "8", "--thinking-summary",
                 "--no-summary-mlp", "--standardize-tower", "--out", str(s1), "--resume", *common]) == 0
    resumed = CoatModel.from_pretrained(s1 / "model")
    assert resumed.config.tower_standardized == st  # measured once
    torch.testing.assert_close(resumed.base.model.audio_tower.layer_norm.bias,
                               model.base.model.audio_tower.layer_norm.bias)
    s2 = tmp_path / "s2"
    assert main(["train", "--model", str(s1 / "model"), "--experts", TEST_EXPERTS, "--no-progress", "--steps", "4",
                 "--out", str(s2), *common]) == 0
    assert CoatModel.from_pretrained(s2 / "model").config.tower_standardized == st


def test_standardize_tower_needs_the_tower_cache(separable, tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["train", "--init", "qwen2_audio", "--size", "test", "--experts", TEST_EXPERTS, "--standardize-tower",
               "--data", f"{separable['train']}:emotion", "--steps", "1", "--out", str(out)])
    assert rc != 0
    err = capsys.readouterr().err
    assert "--tower-variants" in err and "Traceback" not in err
    assert not out.exists()  # refused before anything is written
