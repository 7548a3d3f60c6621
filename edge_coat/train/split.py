"""Choose held-out source recordings for a folder, stratified by label: ``python -m edge_coat.train.split``.

UrbanSound8K's classes sit in few source recordings each, so a plain group shuffle can leave whole
classes out of the held-out part; ``StratifiedGroupKFold`` keeps every class on both sides where the
recordings allow it, and never splits a recording.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np

from edge_coat.data.folder import Clip, DatasetFolder
from edge_coat.train.data import group_of


def stratified_holdout_groups(clips: Sequence[Clip], fraction: float = 0.25, seed: int = 0) -> list[str]:
    """Group names (``source:<id>`` / ``speaker:<id>``, prefix removed) of about ``fraction`` of the clips."""
    from sklearn.model_selection import StratifiedGroupKFold

    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    groups = [group_of(c) for c in clips]
    folds = StratifiedGroupKFold(n_splits=max(2, round(1 / fraction)), shuffle=True, random_state=seed)
    _, test = next(folds.split(np.zeros(len(clips)), [c.label for c in clips], groups))
    return sorted({groups[i].split(":", 1)[1] for i in test})


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m edge_coat.train.split", description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="dataset folder")
    p.add_argument("--fraction", type=float, default=0.25, help="share of clips to hold out (default 0.25)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    print(",".join(stratified_holdout_groups(DatasetFolder(args.data, check_audio=False).clips, args.fraction, args.seed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
