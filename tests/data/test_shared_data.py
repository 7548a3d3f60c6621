"""The real RAVDESS / UrbanSound8K subsets in ../shared/data (skipped when absent)."""

from __future__ import annotations

import numpy as np
import pytest

from edge_coat.data.folder import DatasetFolder, speaker_of, split_by_group, urbansound_source_of
from edge_coat.data.tasks import EMOTIONS, EVENTS, get_task
from edge_coat.experts import get_experts

pytestmark = pytest.mark.shared_data


def test_ravdess_folder_split_and_experts_on_a_real_clip(shared_data):
    ds = DatasetFolder(shared_data / "ravdess", allowed_labels=EMOTIONS)
    assert len(ds) >= 100 and set(ds.labels) == set(EMOTIONS)
    train, held = split_by_group(ds.clips, speaker_of, held_out=0.25, seed=0)
    assert {speaker_of(c) for c in train}.isdisjoint({speaker_of(c) for c in held})

    clip = next(c for c in ds if c.label == "angry" and c.meta.get("intensity") == "strong")
    wave = ds.load(clip)
    assert wave.dtype == np.float32 and 1.0 < len(wave) / 16000 < 10.0
    out = {e.name: (e, e(wave)) for e in get_experts()}
    speech = out["speech_vad"][0].readings(out["speech_vad"][1])["speech_ratio"]
    pitch = out["pitch_prosody"][0].readings(out["pitch_prosody"][1])
    assert speech > 0.3, f"a RAVDESS sentence should read as speech, got ratio {speech}"
    assert 70.0 < pitch["pitch_hz"] < 500.0 and pitch["voiced_ratio"] > 0.1
    tags = out["sound_tags"][0].top_tags(out["sound_tags"][1], k=5)
    assert any(name in ("Speech", "Shout", "Yell", "Narration, monologue", "Conversation") for name, _ in tags), tags
    assert out["voice_embedding"][1].shape == (256,)
    assert "sounding very angry" in get_task("caption").answer(clip.label, clip.meta)


def test_urbansound_folder_split_by_source(shared_data):
    ds = DatasetFolder(shared_data / "urbansound8k", allowed_labels=EVENTS)
    train, held = split_by_group(ds.clips, urbansound_source_of, held_out=0.3, seed=1)
    assert {urbansound_source_of(c) for c in train}.isdisjoint({urbansound_source_of(c) for c in held})
    assert len(train) + len(held) == len(ds)
