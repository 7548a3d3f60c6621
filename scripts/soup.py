"""Average the weights of several trained coat models (a uniform "model soup") and recalibrate it.

    python scripts/soup.py runs/coat-tiny-5/coat/run_config.json OUT MODEL_DIR MODEL_DIR [...]

The models must be fine-tuned from the same starting weights (the same stage 1, different seeds), have the
same configuration (the softmax temperature aside) and the same frozen tower; the script refuses otherwise.
Averaging weights of such runs (Wortsman et al. 2022, "Model soups") reduces the seed-to-seed variance
measured in docs/coat-tiny-1.2-candidates-3-5 at no serving cost: the result is one model of the same
shape. The temperature is refitted on the run's validation split (as training does), never on held-out
clips. Writes OUT (a model directory) and, beside it, OUT-soup.json (members, temperature).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    if len(argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    import torch

    from edge_coat.model.coat import CoatModel
    from edge_coat.train.config import TrainConfig
    from edge_coat.train.pipeline import make_splits, validation_sets
    from edge_coat.train.trainer import calibrate_temperature

    torch.set_num_threads(1)
    run_config, out, members = argv[0], Path(argv[1]), argv[2:]
    with open(run_config, encoding="utf-8") as f:
        cfg = TrainConfig(**json.load(f))
    models = [CoatModel.from_pretrained(m) for m in members]
    first = models[0]

    def shape(model) -> dict:
        doc = model.config.model_dump()
        doc.pop("temperature", None)
        return json.loads(json.dumps(doc, default=str))

    for m, name in zip(models[1:], members[1:]):
        if shape(m) != shape(first):
            print(f"{name}: its configuration differs from {members[0]}'s; only runs of one recipe can be averaged",
                  file=sys.stderr)
            return 2
    states = [m.state_dict() for m in models]
    if any(s.keys() != states[0].keys() for s in states):
        print("the models' parameter names differ; only runs of one recipe can be averaged", file=sys.stderr)
        return 2
    merged = {}
    for key, ref in states[0].items():
        if ref.is_floating_point():
            merged[key] = sum(s[key].double() for s in states).div(len(states)).to(ref.dtype)
        else:
            if any(not torch.equal(s[key], ref) for s in states):
                print(f"{key}: a non-float tensor differs between the models", file=sys.stderr)
                return 2
            merged[key] = ref
    first.load_state_dict(merged)
    first.eval()

    splits = make_splits(cfg, {t: first.config.tasks[t] for t in {s.task for s in cfg.data}})
    val: dict = {}
    for _, task, waves, answers in validation_sets(cfg, splits, first.clip_seconds):
        val.setdefault(task, []).extend(zip(waves, answers))
    calibration = calibrate_temperature(first, val)
    first.config.temperature = float(calibration["temperature"])
    first.save_pretrained(out)
    (out.parent / f"{out.name}-soup.json").write_text(
        json.dumps({"members": members, "calibration": calibration}, indent=1) + "\n")
    print(json.dumps({"out": str(out), "members": members, "temperature": calibration["temperature"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
