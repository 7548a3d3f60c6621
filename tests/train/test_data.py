"""Training-data helpers: specs, groups, the three-way split, batches (generated clips, plus the real folders)."""

from __future__ import annotations

import numpy as np
import pytest

from edge_coat.data.folder import Clip, DatasetFolder
from edge_coat.train.augment import AugmentConfig, crop_frames
from edge_coat.train.data import BatchMaker, Example, group_of, parse_data_spec, parse_list, split_folder
from edge_coat.train.split import stratified_holdout_groups


def _clip(file, label="happy", **meta):
    return Clip(file=file, path=None, label=label, meta=meta)


def test_specs_and_lists(tmp_path):
    assert parse_data_spec("../data/x:y:emotion").path == "../data/x:y"
    with pytest.raises(ValueError, match="FOLDER:TASK"):
        parse_data_spec("folder")
    with pytest.raises(ValueError):
        parse_data_spec("folder:dance")
    f = tmp_path / "ids.txt"
    f.write_text("1,2\n3\n")
    assert parse_list(str(f)) == ["1", "2", "3"] and parse_list("14, 15") == ["14", "15"] and parse_list(None) == []


def test_groups_and_three_way_split():
    assert group_of(_clip("a.wav", speaker="03")) == "speaker:03"
    assert group_of(_clip("100032-3-0-0.wav")) == "source:100032"
    assert group_of(_clip("00001_fan.wav")) == "clip:00001_fan.wav"
    clips = [_clip(f"{i}.wav", speaker=f"{i % 6:02d}") for i in range(24)]
    s = split_folder(clips, holdout_speakers=["00", "01"], val_speakers=["02"])
    speakers = lambda part: {c.meta["speaker"] for c in part}  # noqa: E731
    assert speakers(s.held_out) == {"00", "01"} and speakers(s.val) == {"02"}
    assert speakers(s.train) == {"03", "04", "05"}
    s = split_folder(clips, holdout_speakers=["00"], val_fraction=0.2, seed=1)
    assert speakers(s.val) and not speakers(s.val) & speakers(s.train) and "00" not in speakers(s.val) | speakers(s.train)


def test_stratified_holdout_keeps_every_class_and_whole_recordings():
    clips = [_clip(f"{src}-{k}-0-{j}.wav", label=f"c{k}") for k in range(3) for src in range(10 * k, 10 * k + 8)
             for j in range(2)]
    held = set(stratified_holdout_groups(clips, 0.25, seed=0))
    test = [c for c in clips if group_of(c).split(":")[1] in held]
    assert {c.label for c in test} == {"c0", "c1", "c2"}
    assert 0.15 < len(test) / len(clips) < 0.35


def test_batches_crop_time_resolved_targets_and_mask_them():
    class Pitch:  # an expert's description: 100 frames per second, 3 channels
        name, dim, frame_rate, pooled = "pitch", 3, 100.0, False

    rng = np.random.default_rng(0)
    long = Example(np.zeros(32000, np.float32), "emotion", "happy", {"pitch": np.arange(200 * 3.0).reshape(200, 3)})
    short = Example(np.zeros(8000, np.float32), "emotion", "sad", {"pitch": np.ones((50, 3))})
    make = BatchMaker([[long, short]], {"emotion": "prompt"}, [Pitch()], max_seconds=1.0,
                      augment_config=AugmentConfig(), rng=rng)
    batch = make(6)
    assert all(w.shape[0] <= 16000 for w in batch.waves)
    t, m = batch.expert_targets["pitch"], batch.expert_masks["pitch"]
    assert t.shape[0] == 6 and t.shape[2] == 3 and m.shape == t.shape[:2]
    for i, answer in enumerate(batch.answers):
        # a 1 s crop of the long clip (frames partly inside count: 100 or 101), the whole short clip
        assert int(m[i].sum()) in ((100, 101) if answer == "happy" else (50,))
    frames = crop_frames(np.arange(200)[:, None], 100.0, 4000, 16000)
    assert frames[0, 0] == 25 and frames.shape[0] == 100


@pytest.mark.shared_data
def test_real_splits_never_share_speakers_or_recordings(shared_data):
    rav = DatasetFolder(shared_data / "ravdess", check_audio=False).clips
    s = split_folder(rav, holdout_speakers=["14", "15", "16"], val_speakers=["13"])
    assert {c.meta["speaker"] for c in s.held_out} == {"14", "15", "16"} and len(s.held_out) == 180
    assert not {c.meta["speaker"] for c in s.train} & {"13", "14", "15", "16"}
    us = DatasetFolder(shared_data / "urbansound8k", check_audio=False).clips
    held = set(stratified_holdout_groups(us, 0.25, seed=0))
    test = [c for c in us if group_of(c).split(":")[1] in held]
    train = [c for c in us if group_of(c).split(":")[1] not in held]
    assert len({c.label for c in test}) == 10
    assert not {group_of(c) for c in test} & {group_of(c) for c in train}
