"""The validation score a training run's checkpoint selection uses (``--val-every``), for any model.

    python scripts/val_score.py runs/coat-tiny-2/coat/run_config.json models/coat-tiny

Rebuilds the run's split from its ``run_config.json`` (same folders, held-out and validation groups, seed)
and scores the model on the validation clips: each folder's balanced accuracy and their mean ("score"),
as ``edge_coat.train.pipeline.make_validator`` does during training. Prints JSON. Used to compare a new
recipe's selected weights with the shipped model on the same validation clips, never on held-out ones.
"""

from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    import torch

    from edge_coat.model.coat import CoatModel
    from edge_coat.train.config import TrainConfig
    from edge_coat.train.pipeline import make_splits, make_validator, validation_sets

    torch.set_num_threads(1)
    with open(argv[0], encoding="utf-8") as f:
        cfg = TrainConfig(**json.load(f))
    model = CoatModel.from_pretrained(argv[1])
    model.eval()
    splits = make_splits(cfg, {t: model.config.tasks[t] for t in {s.task for s in cfg.data}})
    validate = make_validator(model, cfg, validation_sets(cfg, splits, model.clip_seconds))
    if validate is None:
        print(f"{argv[0]}: the run has no validation split", file=sys.stderr)
        return 2
    print(json.dumps(validate(), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
