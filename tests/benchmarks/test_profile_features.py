"""bench/accuracy/profile_features.py on generated machine sound: every candidate vector is scored through
the service's kNN profile, and the slot statistics pool exactly like the reconstruction target."""

from __future__ import annotations

import json

import numpy as np

from bench.accuracy.profile_features import main, slot_stats
from edge_coat.data.factory import write_dataset
from edge_coat.experts.base import pool_segments


def test_slot_stats_pool_like_the_training_target():
    rng = np.random.default_rng(0)
    frames = rng.normal(size=(13, 4)).astype(np.float32)  # 13 frames onto 8 slots: uneven stretches
    means, stds = slot_stats(frames, 8)
    np.testing.assert_allclose(means, pool_segments(frames, 8), atol=1e-6)
    assert stds.shape == (8, 4) and np.all(stds >= 0)
    np.testing.assert_allclose(slot_stats(np.ones((16, 3)), 8)[1], 0.0, atol=1e-6)  # constant: no spread
    _, s = slot_stats(np.array([[0.0], [2.0]] * 8), 8)  # each slot holds one 0 and one 2
    np.testing.assert_allclose(s, 1.0, atol=1e-6)


def test_audible_faults_rank_above_normal_for_every_audio_vector(tmp_path):
    data = tmp_path / "pumps"
    write_dataset(data, 28, seed=7, duration_s=1.0, machines=("pump",), faults=("squeal", "bearing", "cavitation"),
                  severity_range=(0.8, 1.0), onset_range=(0.0, 0.1))
    out = tmp_path / "pf.json"
    assert main(["--data", str(data), "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert set(doc["auc"]) == {"mel", "mel_means", "mel_stds", "recon_means", "recon_means_stds"}  # no --model
    assert doc["auc"]["mel"] >= 0.95 and doc["auc"]["recon_means_stds"] >= 0.9
    assert set(doc["auc_by_fault"]["mel"]) == {"squeal", "bearing", "cavitation"}


def test_model_vectors_include_the_thinking_block_output(tmp_path):
    """With --model, the LLM's latents and the thinking block's own output are scored, each averaged and
    flattened over the K slots; thinking_block is CoatModel.think on the clip's embeddings."""
    from pathlib import Path

    import pytest
    import torch

    from bench.accuracy.profile_features import thinking_block

    model_dir = Path(__file__).resolve().parents[2] / "models" / "coat-tiny"
    if not (model_dir / "coat_config.json").is_file():
        pytest.skip("the embedded model is not in models/coat-tiny")
    data = tmp_path / "fans"
    write_dataset(data, 24, seed=3, duration_s=1.0, machines=("fan",), faults=("squeal",),
                  severity_range=(0.8, 1.0), onset_range=(0.0, 0.1))
    out = tmp_path / "pf.json"
    assert main(["--data", str(data), "--model", str(model_dir), "--json", str(out)]) == 0
    auc = json.loads(out.read_text())["auc"]
    assert {"thinking", "thinking_flat", "thinking_block", "thinking_block_flat", "mel+thinking"} <= set(auc)
    assert all(0.0 <= v <= 1.0 for v in auc.values())

    from edge_coat.model.coat import CoatModel

    model = CoatModel.from_pretrained(model_dir)
    rng = np.random.default_rng(0)
    waves = [rng.normal(0, 0.1, 16000).astype(np.float32), rng.normal(0, 0.1, 24000).astype(np.float32)]
    block = thinking_block(model, waves, batch_size=1)
    with torch.inference_mode():
        audio, mask = model.encode([waves[1]])
        direct = model.think(audio, mask).float().numpy()[0]
    assert len(block) == 2 and block[1].shape == (model.config.num_thinking, audio.shape[-1])
    np.testing.assert_allclose(block[1], direct, rtol=1e-5, atol=1e-5)
    assert not np.allclose(block[0], block[1])
    # the tower's statistics: what the answer readout reads of a window, one clip at a time or batched alike
    from bench.accuracy.profile_features import tower_statistics

    assert {"tower", "tower_mean", "tower_std", "mel+tower"} <= set(auc)
    stats = tower_statistics(model, waves, batch_size=2)
    alone = tower_statistics(model, waves[1:], batch_size=1)[0]
    with torch.inference_mode():
        hidden, hmask = model.encode_tower([waves[1]])
    assert stats[1].shape == (2 * hidden.shape[-1],)
    np.testing.assert_allclose(stats[1], alone, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(stats[1][: hidden.shape[-1]], hidden[0][hmask[0]].double().mean(0).numpy(),
                               rtol=1e-4, atol=1e-4)
