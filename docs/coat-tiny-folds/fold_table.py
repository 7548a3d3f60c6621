"""Per-fold and pooled held-out figures of CoAT and its no-expert ablation (docs/coat-tiny-folds).

    python docs/coat-tiny-folds/fold_table.py A=DIR:coat,DIR:no-experts B=...

Each argument: fold label = CoAT results folder:run name, ablation results folder:run name[, folder of the
fold's ref-*.json references (default: the CoAT results folder)] (the files
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


REFS = [("RAVDESS UA", "emotion", "ua"), ("EMOVO UA", "emotion-emovo", "ua"), ("TurEV UA", "emotion-turev", "ua"),
        ("UrbanSound8K acc.", "events", "accuracy")]


def reference_table(folds) -> None:
    """CoAT beside the frozen-Whisper + LR and MFCC+prosody + LR references (ref-*.json of
    bench.accuracy.reference_baselines, in each fold's CoAT results folder), where a fold has them."""
    have = [f for f in folds if (f[3] / "ref-emotion.json").is_file()]
    if not have:
        return
    print()
    print("| held-out figure | " + " | ".join(f"{f[0]}: CoAT / Whisper+LR / MFCC+LR" for f in have)
          + " | **pooled: CoAT / Whisper+LR / MFCC+LR** |")
    print("|---" * (len(have) + 2) + "|")
    for name, prefix, what in REFS:
        cells, sums = [], [0.0, 0.0, 0.0]
        for _, (folder, run), _, ref_dir in have:
            refs = json.loads((ref_dir / f"ref-{prefix}.json").read_text())["results"]
            row = [figure(folder, run, prefix, what), refs["whisper"]["metrics"][what], refs["mfcc_prosody"]["metrics"][what]]
            sums = [a + b for a, b in zip(sums, row)]
            cells.append(" / ".join(f"{v:.3f}" for v in row))
        print(f"| {name} | " + " | ".join(cells) + " | **" + " / ".join(f"{v / len(have):.3f}" for v in sums) + "** |")


def main(argv: list[str]) -> int:
    folds = []
    for arg in argv:
        label, spec = arg.split("=", 1)
        parts = spec.split(",")  # CoAT dir:run, ablation dir:run [, folder of the ref-*.json when not CoAT's]
        coat, abl = (part.rsplit(":", 1) for part in parts[:2])
        refs = Path(parts[2]) if len(parts) > 2 else Path(coat[0])
        folds.append((label, (Path(coat[0]), coat[1]), (Path(abl[0]), abl[1]), refs))
    head = "| held-out figure | " + " | ".join(f"{f[0]}: CoAT / no experts / diff" for f in folds) + " | **pooled: CoAT / no experts / diff** |"
    print(head)
    print("|---" * (len(folds) + 2) + "|")
    for name, prefix, what in FIGURES:
        cells, c_all, a_all = [], [], []
        for _, coat, abl, _ in folds:
            c, a = figure(*coat, prefix, what), figure(*abl, prefix, what)
            c_all.append(c)
            a_all.append(a)
            cells.append(f"{c:.3f} / {a:.3f} / {100 * (c - a):+.1f}")
        c, a = sum(c_all) / len(c_all), sum(a_all) / len(a_all)
        print(f"| {name} | " + " | ".join(cells) + f" | **{c:.3f} / {a:.3f} / {100 * (c - a):+.1f}** |")
    reference_table(folds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
