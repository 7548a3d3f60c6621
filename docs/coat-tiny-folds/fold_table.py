"""Per-fold and pooled held-out figures of CoAT and its no-expert ablation (docs/coat-tiny-folds).

    python docs/coat-tiny-folds/fold_table.py A=DIR:coat,DIR:no-experts B=...

Each argument: fold label = CoAT results folder:run name, ablation results folder:run name (the files
emotion-<run>.json, emotion-tel-, emotion-emovo-, emotion-turev-, events-<run>.json of edge-coat eval).
Pooled = the mean of the folds' figures (each fold weighs the same).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

FIGURES = [("RAVDESS UA", "emotion", "ua"), ("telephone UA", "emotion-tel", "ua"), ("EMOVO UA", "emotion-emovo", "ua"),
           ("TurEV UA", "emotion-turev", "ua"), ("angry AUC", "emotion", "auc"), ("UrbanSound8K acc.", "events", "accuracy")]


def figure(folder: Path, run: str, prefix: str, what: str) -> float:
    doc = json.loads((folder / f"{prefix}-{run}.json").read_text())
    if what == "auc":
        return float(doc["per_class"]["angry"]["auc_vs_rest"])
    return float(doc["metrics"][what])


def main(argv: list[str]) -> int:
    folds = []
    for arg in argv:
        label, spec = arg.split("=", 1)
        coat, abl = (part.rsplit(":", 1) for part in spec.split(","))
        folds.append((label, (Path(coat[0]), coat[1]), (Path(abl[0]), abl[1])))
    head = "| held-out figure | " + " | ".join(f"{f[0]}: CoAT / no experts / diff" for f in folds) + " | **pooled: CoAT / no experts / diff** |"
    print(head)
    print("|---" * (len(folds) + 2) + "|")
    for name, prefix, what in FIGURES:
        cells, c_all, a_all = [], [], []
        for _, coat, abl in folds:
            c, a = figure(*coat, prefix, what), figure(*abl, prefix, what)
            c_all.append(c)
            a_all.append(a)
            cells.append(f"{c:.3f} / {a:.3f} / {100 * (c - a):+.1f}")
        c, a = sum(c_all) / len(c_all), sum(a_all) / len(a_all)
        print(f"| {name} | " + " | ".join(cells) + f" | **{c:.3f} / {a:.3f} / {100 * (c - a):+.1f}** |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
