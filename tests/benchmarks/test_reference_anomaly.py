"""bench/accuracy/reference_baselines.py --task anomaly (log-mel features only) and bench/speed/bench_anomaly.py, on generated audio."""

from __future__ import annotations

import json

import pytest

from bench.accuracy import reference_baselines


@pytest.mark.slow  # ~30 s on the shared VM: rendering the clips, librosa's first use, leave-one-out fits
def test_anomaly_references_per_scorer_and_fault(tmp_path, capsys):
    from edge_coat.data.factory import write_dataset

    data = tmp_path / "factory"
    write_dataset(data, 28, seed=3, duration_s=0.5, machines=("pump",), faults=("squeal", "bearing"),
                  severity_range=(0.8, 1.0), onset_range=(0.0, 0.1))
    out = tmp_path / "ref.json"
    rc = reference_baselines.main(["--data", str(data), "--task", "anomaly", "--features", "logmel",
                                   "--teacher-cache", str(tmp_path / "cache"), "--json", str(out)])
    assert rc == 0
    doc = json.loads(out.read_text())
    assert doc["task"] == "anomaly" and set(doc["results"]) == {"logmel/knn", "logmel/mahalanobis", "logmel/gmm"}
    for name, r in doc["results"].items():
        assert r["features"] == 128 and set(r["by_fault"]) == {"squeal", "bearing"}
        assert r["auc"] >= 0.9, name  # loud faults from the start of the clip
    assert "logmel/knn" in capsys.readouterr().out
    with pytest.raises(ValueError, match="unknown anomaly scorer"):
        reference_baselines.anomaly_scores(reference_baselines.np.zeros((6, 2)), [0, 1, 2, 3], [4], "svm")


def test_bench_anomaly_times_both_feature_sets_against_the_model_call(tmp_path):
    from bench.speed import bench_anomaly

    from edge_coat.model.tiny import tiny_coat_model

    model_dir = tiny_coat_model("qwen2_audio", max_seconds=1).save_pretrained(tmp_path / "m")
    out = tmp_path / "anomaly.json"
    assert bench_anomaly.main(["--rounds", "2", "--enroll", "8", "--seconds", "1", "--model", str(model_dir),
                               "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["seconds"] == 1.0 and data["ms"]["model"]["n"] == 2
    for features in ("mel", "thinking"):
        assert data["ms"][features]["median"] > 0 and data["ratio_to_model"][features]["n"] == 2


def test_speaker_baseline_references_read_each_clip_against_other_clips_of_its_speaker(tmp_path, monkeypatch):
    """--speaker-baseline N: a label carried only by a clip's difference from its speaker's other clips is found with
    it and missed without it (each speaker's level differs far more than the labels do)."""
    from tests.train.conftest import write_folder

    offsets = {"01": -0.3, "02": 0.3, "03": -0.1, "04": 0.1, "05": -0.2, "06": 0.2, "07": 0.5, "08": -0.5}
    rows, waves = [], {}
    for spk, off in offsets.items():
        for k in range(6):
            label = "happy" if k % 2 else "sad"
            file = f"{spk}-{k}.wav"
            waves[file] = reference_baselines.np.full(1600, off + (0.05 if label == "happy" else -0.05),
                                                      dtype="float32")
            rows.append((file, label, {"speaker": spk}))
    data = write_folder(tmp_path / "spk", rows, waves)
    # one feature: the clip's level (what the folder's audio carries), computed without the teacher experts
    monkeypatch.setattr(reference_baselines, "features", lambda kind, wave, cache: wave[:1].astype("float64"))
    ua = {}
    for n in (0, 4):
        out = tmp_path / f"ref-{n}.json"
        assert reference_baselines.main(["--data", str(data), "--task", "emotion", "--holdout-speakers", "07,08",
                                         "--features", "mfcc_prosody", "--teacher-cache", str(tmp_path / "cache"),
                                         "--speaker-baseline", str(n), "--json", str(out)]) == 0
        doc = json.loads(out.read_text())
        assert doc["speaker_baseline"] == n
        ua[n] = doc["results"]["mfcc_prosody"]["metrics"]["ua"]
    assert ua[0] <= 0.5 and ua[4] == 1.0


def test_desk_baseline_references_read_each_clip_against_the_rest_of_its_folder(tmp_path, monkeypatch):
    """--desk-baseline: leave one corpus out, a test folder whose level sits far from the training folders' is read
    relative to its own mean and its labels are found; without it every test clip falls on one side."""
    from tests.train.conftest import write_folder

    folders = {}
    for name, off in (("a", -0.4), ("b", 0.4), ("c", 0.8)):  # c: the held-out corpus, beyond both
        rows, waves = [], {}
        for k in range(8):
            label = "happy" if k % 2 else "sad"
            file = f"{name}-{k}.wav"
            waves[file] = reference_baselines.np.full(1600, off + (0.05 if label == "happy" else -0.05),
                                                      dtype="float32")
            rows.append((file, label, {"speaker": f"{name}{k % 4}"}))
        folders[name] = write_folder(tmp_path / name, rows, waves)
    monkeypatch.setattr(reference_baselines, "features", lambda kind, wave, cache: wave[:1].astype("float64"))
    ua = {}
    for desk in (False, True):
        out = tmp_path / f"ref-{desk}.json"
        assert reference_baselines.main(["--data", str(folders["c"]), "--task", "emotion", "--all-held-out",
                                         "--train-data", str(folders["a"]), "--train-data", str(folders["b"]),
                                         "--features", "mfcc_prosody", "--teacher-cache", str(tmp_path / "cache"),
                                         "--json", str(out), *(["--desk-baseline"] if desk else [])]) == 0
        doc = json.loads(out.read_text())
        assert doc["desk_baseline"] is desk
        ua[desk] = doc["results"]["mfcc_prosody"]["metrics"]["ua"]
    assert ua[False] == 0.5 and ua[True] == 1.0
    with pytest.raises(SystemExit):
        reference_baselines.main(["--data", str(folders["c"]), "--task", "emotion", "--all-held-out",
                                  "--train-data", str(folders["a"]), "--features", "mfcc_prosody",
                                  "--teacher-cache", str(tmp_path / "cache"), "--desk-baseline",
                                  "--speaker-baseline", "2"])
