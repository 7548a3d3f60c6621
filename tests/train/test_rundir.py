"""Run directory: recorded config, resume refusal, checkpoints and RNG state round trip."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from edge_coat.train.rundir import RunDir, rng_state, seed_everything, set_rng_state


def _draw(g):
    return (random.random(), float(np.random.rand()), float(torch.rand(1)), float(g.random()))


def test_checkpoint_restores_every_rng(tmp_path):
    run = RunDir(tmp_path / "run", {"steps": 5, "lr": 0.1})
    g = np.random.default_rng(7)
    seed_everything(3)
    run.save_checkpoint(5, {"rng": rng_state(g), "w": torch.arange(3.0)})
    expected = _draw(g)
    _draw(g)  # move every generator on
    ckpt = run.load_checkpoint()
    set_rng_state(ckpt["rng"], g)
    assert _draw(g) == expected
    assert ckpt["step"] == 5 and torch.equal(ckpt["w"], torch.arange(3.0))


def test_keeps_newest_checkpoints_and_points_latest(tmp_path):
    run = RunDir(tmp_path, {"a": 1})
    for step in (1, 2, 3, 4):
        run.save_checkpoint(step, {}, keep=2)
    assert sorted(p.name for p in run.checkpoints.glob("step-*.pt")) == ["step-000003.pt", "step-000004.pt"]
    assert run.latest_checkpoint().name == "step-000004.pt"


def test_existing_run_needs_resume_and_the_same_config(tmp_path):
    RunDir(tmp_path, {"lr": 0.1, "steps": 10})
    with pytest.raises(ValueError, match="--resume"):
        RunDir(tmp_path, {"lr": 0.1, "steps": 10})
    RunDir(tmp_path, {"lr": 0.1, "steps": 20}, resume=True)  # more steps: allowed
    with pytest.raises(ValueError, match="lr: recorded 0.1, now 0.2"):
        RunDir(tmp_path, {"lr": 0.2, "steps": 20}, resume=True)


def test_metrics_log(tmp_path):
    run = RunDir(tmp_path, {})
    run.log_metrics(3, {"total": 1.5})
    assert run.read_metrics()[0]["step"] == 3 and run.read_metrics()[0]["total"] == 1.5


def test_a_run_recorded_before_an_option_existed_resumes_with_its_default(tmp_path):
    """A run started before an option was added has no key for it; it did what the default does, so it resumes with
    the default and is refused with anything else. ``config_defaults`` gives the defaults as the record writes them."""
    import json

    from edge_coat.train.config import TrainConfig, config_defaults

    now = TrainConfig(data=[{"path": "x", "task": "emotion"}], init_family="qwen2_audio").model_dump(mode="json")
    old = {k: v for k, v in now.items() if k != "tower_anchor_weight"}
    (tmp_path / "run_config.json").write_text(json.dumps(old))
    defaults = config_defaults()
    assert defaults["tower_anchor_weight"] == 0.0 and "data" not in defaults
    RunDir(tmp_path, now, resume=True, defaults=defaults)
    assert json.loads((tmp_path / "run_config.json").read_text())["tower_anchor_weight"] == 0.0  # recorded from now on
    (tmp_path / "run_config.json").write_text(json.dumps(old))
    with pytest.raises(ValueError, match="tower_anchor_weight: recorded 0.0, now 1.0"):
        RunDir(tmp_path, {**now, "tower_anchor_weight": 1.0}, resume=True, defaults=defaults)
    with pytest.raises(ValueError, match="tower_anchor_weight: recorded None, now 0.0"):
        RunDir(tmp_path, now, resume=True)  # without the defaults a missing key is a change
