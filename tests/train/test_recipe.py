"""The coat-tiny recipe (scripts/train_coat_tiny.sh) gives each training the options the model card says.

The recipe is run for real with ``PY`` pointing at a stand-in interpreter: for ``-m edge_coat -v train ...`` it
parses the arguments with the real ``edge-coat train`` parser into the real ``TrainConfig`` and writes that to
the run folder instead of training (the trainings themselves are tested in test_towercache.py and
test_train_eval.py). So these tests check the recipe's plumbing: which run gets which channels, speed
perturbation and experts, and from which stage 1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "scripts" / "train_coat_tiny.sh"
RUNS = ("coat-s1", "coat", "no-experts", "loco-ravdess", "loco-emovo", "loco-turev")
SPEED_EXPERTS = ["speech_content", "sound_tags", "speech_vad"]

STAND_IN = """
import argparse, os, sys
sys.path.insert(0, {root!r})
from edge_coat.commands.train import add_arguments, config_from_args
args = [a for a in sys.argv[1:] if a != "-v"]
if args[:3] != ["-m", "edge_coat", "train"]:
    sys.exit("stand-in interpreter: only edge-coat train is expected here, got " + " ".join(args))
parser = argparse.ArgumentParser()
add_arguments(parser)
ns = parser.parse_args(args[3:])
os.makedirs(ns.out, exist_ok=True)
with open(os.path.join(ns.out, "config.json"), "w") as f:
    f.write(config_from_args(ns).model_dump_json())
"""


def _recipe(tmp_path: Path, **env) -> dict[str, dict]:
    """Run the recipe's training stage with the stand-in interpreter; each run's TrainConfig as a dict."""
    out = tmp_path / "out"
    (out / "whisper").mkdir(parents=True)
    (out / "whisper" / "config.json").write_text("{}")  # the recipe imports Whisper only when this is missing
    for name in ("factory-train", "factory-test", "factory-novel-machine", "factory-novel-fault"):
        (out / "data" / name).mkdir(parents=True)
        (out / "data" / name / "labels.csv").write_text("")  # ... and generates data only when these are missing
    (out / "us8k_holdout.txt").write_text("100032\n")
    script = tmp_path / "stand_in.py"
    script.write_text(STAND_IN.format(root=str(ROOT)))
    py = tmp_path / "python"
    py.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{script}" "$@"\n')
    py.chmod(0o755)
    run_env = {**os.environ, "PY": str(py), "OUT": str(out), "DATA": str(tmp_path / "data"), "STAGES": "train",
               "CACHE": str(tmp_path / "teacher"), "TOWER": str(tmp_path / "tower"), **env}
    proc = subprocess.run(["bash", str(RECIPE)], env=run_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {run: json.loads((out / run / "config.json").read_text()) for run in RUNS}


@pytest.mark.timeout(600)
def test_recipe_defaults_are_1_3s(tmp_path):
    cfg = _recipe(tmp_path)
    # Stage 1 is 1.2's: experts only, on the three channels, no speed-perturbed rows.
    s1 = cfg["coat-s1"]
    assert s1["tower_variants"] == ["clean", "telephone", "room"]
    assert s1["speed_experts"] == [] and s1["answer_weight"] == 0
    # Every answer-training run draws the 0.9x / 1.1x copies of every folder and keeps three experts on them.
    for run in RUNS[1:]:
        c = cfg[run]
        assert c["tower_variants"] == ["clean", "telephone", "room", "slow", "fast"], run
        assert c["speed_tasks"] == ["emotion", "events", "anomaly", "fault"], run
        assert c["speed_experts"] == SPEED_EXPERTS, run
        assert c["speed_teachers"] is False, run
    assert cfg["coat"]["init_model"] == str(tmp_path / "out" / "coat-s1" / "model")
    assert cfg["coat"]["expert_losses"] and not cfg["no-experts"]["expert_losses"]
    assert {c["expert_scale_end"] for c in cfg.values()} == {1.0}  # 1.3: constant expert losses
    assert cfg["no-experts"]["steps"] == cfg["coat-s1"]["steps"] + cfg["coat"]["steps"]
    # Leave-one-corpus-out: each model trains on the two other corpora only.
    for held in ("ravdess", "emovo", "turev"):
        corpora = {Path(d["path"]).name for d in cfg[f"loco-{held}"]["data"]}
        assert corpora == {"ravdess", "emovo", "turev"} - {held}


@pytest.mark.timeout(600)
def test_recipe_reproduces_1_2_without_speed(tmp_path):
    """The documented override for 1.2's recipe: no perturbed rows in any run."""
    cfg = _recipe(tmp_path, AUG="", TOWER_VARIANTS="clean,telephone,room")
    for run in RUNS:
        assert cfg[run]["tower_variants"] == ["clean", "telephone", "room"], run
        assert cfg[run]["speed_experts"] == [], run


@pytest.mark.timeout(600)
def test_expert_opts_reach_the_runs_with_expert_losses_only(tmp_path):
    """EXPERT_OPTS (the fading schedule of docs/coat-tiny-expert-fade): stage 2 and LOCO, never the ablation."""
    cfg = _recipe(tmp_path, EXPERT_OPTS="--expert-scale-end 0")
    for run in ("coat", "loco-ravdess", "loco-emovo", "loco-turev"):
        assert cfg[run]["expert_scale_end"] == 0.0, run
    assert cfg["no-experts"]["expert_scale_end"] == 1.0  # --no-expert-losses has nothing to fade (and refuses it)
    assert cfg["coat-s1"]["expert_scale_end"] == 1.0
