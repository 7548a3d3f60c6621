"""A training run's directory: its recorded config, metrics log and checkpoints.

Layout::

    RUN/run_config.json        the full run config (data, split, model, optimisation): what makes the run
    RUN/metrics.jsonl          one JSON object per logged step (loss components, lr, seconds)
    RUN/checkpoints/step-000200.pt   trainable weights + optimizer + step + RNG states
    RUN/checkpoints/latest     name of the newest complete checkpoint
    RUN/init/                  the initial model when it was built from a tiny config (resume rebuilds from it)
    RUN/model/                 the trained model dir (CoatModel.save_pretrained), written at the end

A checkpoint holds only the parameters that train (the frozen encoder never changes, and a large
base checkpoint must not be copied every N steps); resuming rebuilds the initial model and loads
them on top. Checkpoints are written to a temporary name and renamed, so ``latest`` never points to
half a file.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)

CONFIG_NAME = "run_config.json"
METRICS_NAME = "metrics.jsonl"

#: run-config keys that may differ when resuming (how long / how often, not what is trained; the readout is fitted
#: after the training loop).
RESUMABLE_CHANGES = frozenset({"steps", "checkpoint_every", "log_every", "keep_checkpoints", "progress", "readout_c",
                               "readout_channels", "readout_input"})


def rng_state(sampler: np.random.Generator | None = None) -> dict:
    """Every RNG the training touches, in a form ``torch.load(weights_only=True)`` accepts."""
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    if sampler is not None:
        state["sampler"] = json.dumps(sampler.bit_generator.state)
    return state


def set_rng_state(state: Mapping, sampler: np.random.Generator | None = None) -> None:
    """Restore what ``rng_state`` captured."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if sampler is not None and "sampler" in state:
        sampler.bit_generator.state = json.loads(state["sampler"])


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class RunDir:
    """Open (or create) a run directory. ``resume=False`` refuses a directory that already holds a run."""

    def __init__(self, root: str | os.PathLike, config: Mapping, *, resume: bool = False,
                 defaults: Mapping | None = None) -> None:
        """``defaults``: each option's default. A key the recorded config lacks is an option added after the run
        started; the run did what its default does, so resuming with that default is allowed."""
        self.root = Path(root)
        self.checkpoints = self.root / "checkpoints"
        config_path = self.root / CONFIG_NAME
        if config_path.exists():
            if not resume:
                raise ValueError(
                    f"{self.root} already holds a training run; pass --resume to continue it or choose a new --out"
                )
            recorded = json.loads(config_path.read_text())
            recorded = {**{k: v for k, v in (defaults or {}).items() if k not in recorded}, **recorded}
            changed = sorted(
                k for k in set(recorded) | set(config)
                if k not in RESUMABLE_CHANGES and recorded.get(k) != config.get(k)
            )
            if changed:
                diffs = "; ".join(f"{k}: recorded {recorded.get(k)!r}, now {config.get(k)!r}" for k in changed)
                raise ValueError(f"cannot resume {self.root} with a different run config ({diffs})")
        elif resume and self.checkpoints.exists():
            raise ValueError(f"{self.root} has checkpoints but no {CONFIG_NAME}; it is not a run directory")
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        self.config = dict(config)
        tmp = config_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.config, indent=2, default=str) + "\n")
        os.replace(tmp, config_path)

    @property
    def metrics_path(self) -> Path:
        return self.root / METRICS_NAME

    def log_metrics(self, step: int, values: Mapping[str, float]) -> None:
        """Append one line ``{"step": .., "time": .., **values}`` to metrics.jsonl."""
        row = {"step": int(step), "time": round(time.time(), 3), **{k: float(v) for k, v in values.items()}}
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")

    def read_metrics(self) -> list[dict]:
        if not self.metrics_path.exists():
            return []
        return [json.loads(line) for line in self.metrics_path.read_text().splitlines() if line.strip()]

    # -- checkpoints ---------------------------------------------------------------------------
    def save_checkpoint(self, step: int, state: Mapping, keep: int = 3) -> Path:
        """Write ``checkpoints/step-NNNNNN.pt`` atomically, point ``latest`` at it, keep the newest ``keep``."""
        path = self.checkpoints / f"step-{step:06d}.pt"
        tmp = path.with_suffix(".tmp")
        torch.save({"step": int(step), **state}, tmp)
        os.replace(tmp, path)
        latest_tmp = self.checkpoints / "latest.tmp"
        latest_tmp.write_text(path.name)
        os.replace(latest_tmp, self.checkpoints / "latest")
        for old in sorted(self.checkpoints.glob("step-*.pt"))[:-keep] if keep > 0 else []:
            old.unlink(missing_ok=True)
        log.info("checkpoint at step %d: %s", step, path)
        return path

    def latest_checkpoint(self) -> Path | None:
        pointer = self.checkpoints / "latest"
        if not pointer.exists():
            return None
        path = self.checkpoints / pointer.read_text().strip()
        if not path.exists():
            raise ValueError(f"{pointer} names {path.name}, which is missing; the run directory is damaged")
        return path

    def load_checkpoint(self, path: Path | None = None) -> dict:
        path = path or self.latest_checkpoint()
        if path is None:
            raise ValueError(f"no checkpoint to resume from in {self.checkpoints}")
        return torch.load(path, map_location="cpu", weights_only=True)
