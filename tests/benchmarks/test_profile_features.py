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
