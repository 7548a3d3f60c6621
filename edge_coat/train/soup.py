"""A model soup: one model whose every weight is the mean of the same weight in several trained runs.

    python -m edge_coat.train.soup --out DIR RUN [RUN ...]

Runs that start from the same weights and differ only in their seed (stage-2 runs of one recipe, each from the
same stage-1 model) can be averaged weight for weight into one model that serves at one model's cost (Wortsman et
al. 2022, "Model soups"). The ingredients are checked first: same config but the seed (paths compared where they
lead, the starting model by the bytes of its weights), same weight names and shapes. The soup's softmax temperature
is then fitted again on the validation clips that none of the ingredients trained on (the intersection of their
validation splits), and ``DIR/soup.json`` records the ingredients with the sha256 of their weights.

``--readout-c C`` (the recipe's is 0.1) also fits the answer readout (``edge_coat.train.readout``) on the
ingredients' training clips, its fused temperature on the shared validation clips: ``DIR`` gets the first
ingredient's ``run_config.json`` and the soup's ``split.json`` (``soup_split``), so it doubles as a run folder.
A five-seed soup with a readout was tried against one seed with its readout and lost (docs/coat-tiny-soup-readout).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from edge_coat.errors import INVALID_INPUT, UserError, explain

log = logging.getLogger(__name__)

#: run_config keys that may differ between the ingredients of one soup: the seed (the point of a soup), where
#: caches live, how the run reported progress, and the starting model's path (compared by its weights instead).
FREE_KEYS = frozenset({"seed", "teacher_cache", "tower_cache", "progress", "log_every", "checkpoint_every",
                       "keep_checkpoints", "device", "init_model", "data"})


class SoupError(UserError):
    """The runs cannot be averaged into one model (the message says which and why)."""

    def __init__(self, message: str):
        super().__init__(message, exit_code=INVALID_INPUT)


def _weights_digest(model_dir: Path) -> str:
    """One sha256 over the weight files of a model directory (its base and CoAT safetensors)."""
    import hashlib

    from edge_coat.model.manifest import hash_file

    files = sorted(p for p in model_dir.glob("*.safetensors"))
    if not files:
        raise SoupError(f"{model_dir}: no *.safetensors weights")
    return hashlib.sha256("".join(f"{p.name}:{hash_file(p)[0]}\n" for p in files).encode()).hexdigest()


def _comparable(config: dict) -> dict:
    out = {k: v for k, v in config.items() if k not in FREE_KEYS}
    out["data"] = [(os.path.realpath(d["path"]), d["task"]) for d in config.get("data", [])]
    return out


def check_runs(runs: list[Path]) -> tuple[list[dict], str]:
    """(each run's config, the sha256 of their shared start's weights), after checking that the runs can be
    averaged (else ``SoupError``)."""
    if len(runs) < 2:
        raise SoupError("a soup needs at least two runs")
    configs = []
    for run in runs:
        for need in ("run_config.json", "split.json", "model/coat_config.json"):
            if not (run / need).is_file():
                raise SoupError(f"{run}: no {need}: give finished training runs (edge-coat train --out)")
        configs.append(json.loads((run / "run_config.json").read_text()))
    seeds = [c.get("seed") for c in configs]
    if len(set(seeds)) != len(seeds):
        raise SoupError(f"the runs repeat a seed ({seeds}): averaging a run with itself adds nothing")
    first = _comparable(configs[0])
    for run, config in zip(runs[1:], configs[1:]):
        other = _comparable(config)
        diff = sorted(k for k in first.keys() | other.keys() if first.get(k) != other.get(k))
        if diff:
            raise SoupError(f"{run} was trained with other settings than {runs[0]} ({', '.join(diff)}): "
                            "a soup averages runs of one recipe that differ only in their seed")
    starts = {c.get("init_model") for c in configs}
    if None in starts:
        raise SoupError("every run must continue one trained model (--model DIR): runs from fresh weights share no start")
    digests = {_weights_digest(Path(s)) for s in starts}
    if len(digests) != 1:
        raise SoupError(f"the runs start from different weights ({', '.join(sorted(starts))}): "
                        "a soup needs one shared starting model")
    return configs, digests.pop()


def average_state(models) -> dict:
    """The elementwise mean of the models' state dicts (float32); other tensors must be equal."""
    import torch

    states = [m.state_dict() for m in models]
    keys = list(states[0])
    for i, s in enumerate(states[1:], 1):
        if list(s) != keys or any(s[k].shape != states[0][k].shape for k in keys):
            raise SoupError(f"ingredient {i} has other weight names or shapes than ingredient 0")
    out = {}
    for k in keys:
        ts = [s[k] for s in states]
        if ts[0].is_floating_point():
            out[k] = (sum(t.float() for t in ts) / len(ts)).to(ts[0].dtype)
        else:
            if any(not torch.equal(t, ts[0]) for t in ts[1:]):
                raise SoupError(f"non-float weight {k} differs between the ingredients: it cannot be averaged")
            out[k] = ts[0]
    return out


def shared_validation(runs: list[Path], configs: list[dict], tasks: dict,
                      clip_seconds: float) -> dict[str, list[tuple]]:
    """task -> [(wave, answer)] over the validation clips of every run (the intersection of the splits their
    ``split.json`` recorded), loaded as training's own calibration loads them; ``tasks``: the model's TaskSpecs."""
    from dataclasses import replace

    from edge_coat.train.config import TrainConfig
    from edge_coat.train.pipeline import make_splits, validation_sets

    config = TrainConfig(**configs[0])
    recorded = [{os.path.realpath(k): v for k, v in json.loads((r / "split.json").read_text()).items()} for r in runs]
    splits = []
    for src, split in zip(config.data, make_splits(config, {t: tasks[t] for t in {s.task for s in config.data}})):
        key = os.path.realpath(src.path)
        shared = set.intersection(*(set(rec.get(key, {}).get("val", [])) for rec in recorded))
        splits.append(replace(split, val=[c for c in split.val if c.file in shared]))
    out: dict[str, list[tuple]] = {}
    for _, task, waves, answers in validation_sets(config, splits, clip_seconds):
        out.setdefault(task, []).extend(zip(waves, answers))
    return out


def soup_split(runs: list[Path], configs: list[dict]) -> dict:
    """The split the soup as a whole has, per data folder of the first run's config: ``train`` the union of the
    runs' training clips, ``val`` the intersection of their validation clips (no ingredient trained on them),
    ``held_out`` theirs (the same in every run: ``check_runs`` compared the holdout settings)."""
    recorded = [{os.path.realpath(k): v for k, v in json.loads((r / "split.json").read_text()).items()} for r in runs]
    out = {}
    for src in configs[0]["data"]:
        parts = [rec.get(os.path.realpath(src["path"]), {}) for rec in recorded]
        out[src["path"]] = {
            "train": sorted(set().union(*(p.get("train", []) for p in parts))),
            "val": sorted(set.intersection(*(set(p.get("val", [])) for p in parts))),
            "held_out": sorted(parts[0].get("held_out", [])),
        }
    return out


def make_soup(runs: list[str | Path], out: str | Path, readout_c: float = 0.0,
              readout_channels=("clean", "telephone", "room")) -> Path:
    """Average ``runs``' models into ``out`` (a model directory), recalibrated; returns ``out``.

    ``out`` also gets the first run's ``run_config.json`` and the soup's ``split.json`` (``soup_split``), so it
    doubles as a run folder (``python -m edge_coat.train.readout OUT --model OUT``). ``readout_c`` > 0 fits the
    answer readout there and then, with that C, on ``readout_channels``."""
    import torch

    from edge_coat.model.coat import CoatModel
    from edge_coat.train.trainer import calibrate_temperature

    runs = [Path(r) for r in runs]
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise SoupError(f"{out} is not empty: choose a new --out")
    configs, start_digest = check_runs(runs)
    models = [CoatModel.from_pretrained(r / "model") for r in runs]
    soup = models[0]
    with torch.no_grad():
        soup.load_state_dict(average_state(models))
    del models[1:]
    soup.eval()
    val = shared_validation(runs, configs, soup.config.tasks, soup.clip_seconds)
    calibration = calibrate_temperature(soup, val)
    soup.config.temperature = float(calibration["temperature"])
    soup.save_pretrained(out)
    (out / "run_config.json").write_text(json.dumps(configs[0], indent=2) + "\n")
    (out / "split.json").write_text(json.dumps(soup_split(runs, configs), indent=1) + "\n")
    record = {
        "ingredients": [{"run": str(r), "seed": c.get("seed"), "weights_sha256": _weights_digest(r / "model")}
                        for r, c in zip(runs, configs)],
        "start": {"model": configs[0]["init_model"], "weights_sha256": start_digest},
        "calibration": calibration,
        "validation_clips": {t: len(v) for t, v in val.items()},
        "readout": None,
    }
    (out / "soup.json").write_text(json.dumps(record, indent=2) + "\n")
    if readout_c > 0:  # after the soup is complete on disk: a failed fit leaves a usable soup to refit
        from edge_coat.train.readout import DEFAULT_TASKS, fit_run_readout

        record["readout"] = fit_run_readout(soup, out, DEFAULT_TASKS, readout_c, readout_channels)
        soup.save_pretrained(out, base=False)
        (out / "soup.json").write_text(json.dumps(record, indent=2) + "\n")
    log.info("soup of %d runs in %s (temperature %.3f on %d shared validation clips)", len(runs), out,
             calibration["temperature"], calibration["n"])
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m edge_coat.train.soup", description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="finished training runs (directories with run_config.json, model/)")
    p.add_argument("--out", required=True, help="new model directory")
    p.add_argument("--readout-c", type=float, default=0.0,
                   help="fit the answer readout with this C on the ingredients' training clips (0: none, the default; "
                        "the recipe's is 0.1)")
    p.add_argument("--readout-channels", default="clean,telephone,room",
                   help="channel copies of each training clip the readout is fitted on (default %(default)s)")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.readout_c < 0:
            raise ValueError(f"--readout-c must be >= 0, got {args.readout_c}")
        make_soup(args.runs, args.out, args.readout_c, [c for c in args.readout_channels.split(",") if c])
    except Exception as exc:  # noqa: BLE001 - one line per problem (edge_coat.errors), the traceback with --debug
        if args.debug:
            raise
        message, code = explain(exc)
        print(f"soup: {message}", file=sys.stderr)
        return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
