"""models/coat-tiny-desk: the shipped desk readout loads verified beside models/coat-tiny (``model.coat_path``), keeps
coat-tiny's base, and scores each window of a stream against the stream's running desk mean."""

from __future__ import annotations

import numpy as np
import pytest

from edge_coat.config import ModelSection
from edge_coat.messages import SAMPLE_RATE, Window
from edge_coat.model.manifest import read_manifest, verify
from edge_coat.model.readout import HeardMean
from edge_coat.worker.coat_stage import CoatStage

from .conftest import COAT_TINY, REPO

DESK = REPO / "models" / "coat-tiny-desk"


@pytest.fixture(scope="module")
def desk_stage(coat_tiny_dir):
    return CoatStage(ModelSection(path=coat_tiny_dir, coat_path=DESK, readings=[]))


def test_the_desk_folder_is_a_verified_coat_bundle_on_coat_tinys_base(coat_tiny_dir):
    m = verify(DESK)
    assert m.role == "coat" and m.name == "coat-tiny-desk"
    assert m.version.startswith(read_manifest(COAT_TINY).version)
    assert sum(f.size for f in m.files) < 10_000_000  # the CoAT part only: the base stays in models/coat-tiny
    assert {p.component for p in m.parity} >= {"thinking", "thinking_split"}
    assert not (DESK / "model.safetensors").exists()


def test_a_stream_is_scored_against_its_desk_and_the_desk_outlives_the_call(desk_stage):
    model = desk_stage.model
    assert model.config.readout_baseline == "desk" and model.config.readout_relative == ["emotion"]
    assert model.config.readout_baseline_windows == 64
    rng = np.random.default_rng(5)
    t = np.arange(2 * SAMPLE_RATE) / SAMPLE_RATE
    waves = [(0.1 * (1 + k) * np.sin(2 * np.pi * (120 + 40 * k) * t) + 0.02 * rng.standard_normal(t.size))
             .astype(np.float32) for k in range(3)]
    windows = [Window(stream_id="desk-1", index=k, start_sample=k * t.size, start_ts=2.0 * k, end_ts=2.0 * k + 2,
                      samples=w, speech_ratio=0.9, tasks=("emotion",), sender_epoch=1) for k, w in enumerate(waves)]
    got = [r.label_probs["emotion"] for r in desk_stage.process(windows)]
    stats = [model.score_tasks([w], ["emotion"])["emotion"].features[0] for w in waves]
    want = model.score_tasks([waves[2]], ["emotion"],
                             readout_context=[HeardMean(np.mean(stats[:2], 0), 2)])["emotion"]
    for label, p in zip(want.labels, want.probs[0]):
        assert got[2][label] == pytest.approx(float(p), abs=1e-3)
    cold = model.score_tasks([waves[2]], ["emotion"])["emotion"]
    assert np.abs(cold.probs - want.probs).max() > 1e-3  # the desk's mean moved the answer
    assert desk_stage.stats()["baseline_streams"] == 1
    # the results name the CoAT folder that decided them
    assert (desk_stage.model_name, desk_stage.model_version) == ("coat-tiny-desk", read_manifest(DESK).version)


def test_eval_scores_the_desk_folder_over_coat_tinys_base(coat_tiny_dir, tmp_path, capsys):
    import json

    from edge_coat.cli import main
    from tests.train.conftest import write_folder

    rng = np.random.default_rng(2)
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    rows, waves = [], {}
    for k in range(4):
        label = ("angry", "calm")[k % 2]
        waves[f"c{k}.wav"] = (0.2 * np.sin(2 * np.pi * (150 + 30 * k) * t) + 0.01 * rng.standard_normal(t.size)
                              ).astype(np.float32)
        rows.append((f"c{k}.wav", label, {"speaker": f"s{k}"}))
    data = write_folder(tmp_path / "calls", rows, waves)
    out = tmp_path / "desk.json"
    assert main(["eval", "--model", str(coat_tiny_dir), "--coat-path", str(DESK), "--task", "emotion", "--data",
                 str(data), "--json", str(out), "--bootstrap", "0"]) == 0
    base = json.loads(out.read_text())["metrics"]["readout_baseline"]
    assert base == {"context": "desk", "windows": 64, "kind": "desk", "clips_with_context": 4}
    capsys.readouterr()
    assert main(["eval", "--model", str(coat_tiny_dir), "--coat-path", str(tmp_path), "--task", "emotion",
                 "--data", str(data)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "holds no coat_config.json" in err
