"""The four folds' held-out figures of two readout designs run through the shipping path: 1.4's readout (RUN-ro2,
docs/coat-tiny-readout) and 1.5's tower readout (RUN-tr, folds.sh; results copied to results-folds/).

    python docs/coat-tiny-1.5/folds_table.py [RUN]      # RUN: coat (default) or no-experts
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from coat_tiny_table import _angry_auc  # noqa: E402

FOLDS = ("A", "B", "C", "card")
FIGS = [("emotion", "ua", "RAVDESS UA"), ("emotion-tel", "ua", "telephone UA"), ("emotion-emovo", "ua", "EMOVO UA"),
        ("emotion-turev", "ua", "TurEV UA"), ("emotion", "auc", "angry AUC"), ("events", "accuracy", "UrbanSound8K acc")]


HERE = Path(__file__).resolve().parent


def figure(fold: str, name: str, kind: str, tag: str):
    """One figure from the committed results: 1.5's (results-folds/FOLD; the card split's no-expert ablation is
    run 42, seed 0, as in 1.4's four-fold table: results-folds/card-ablation-42), 1.4's
    (docs/coat-tiny-readout/results-v2-FOLD); None when the file is missing."""
    if tag.endswith("-tr"):
        sub = "card-ablation-42" if fold == "card" and tag.startswith("no-experts") else fold.lower()
        p = HERE / "results-folds" / sub / f"{name}-{tag}.json"
    else:
        p = HERE.parent / "coat-tiny-readout" / f"results-v2-{fold.lower()}" / f"{name}-{tag}.json"
    if not p.is_file():
        return None
    doc = json.loads(p.read_text())
    return _angry_auc(doc) if kind == "auc" else doc["metrics"][kind]


def main():
    run = sys.argv[1] if len(sys.argv) > 1 else "coat"
    arms = [(f"{run}-ro2", "1.4 readout"), (f"{run}-tr", "tower readout (1.5)")]
    print("| fold | readout | " + " | ".join(f for _, _, f in FIGS) + " |")
    print("|---|---|" + "---|" * len(FIGS))
    vals = {}
    for fold in FOLDS:
        for tag, label in arms:
            row = [figure(fold, n, k, tag) for n, k, _ in FIGS]
            vals[(fold, tag)] = row
            print(f"| {fold} | {label} | " + " | ".join("-" if v is None else f"{v:.3f}" for v in row) + " |")
    for tag, label in arms:
        cols = []
        for j in range(len(FIGS)):
            got = [vals[(f, tag)][j] for f in FOLDS if vals[(f, tag)][j] is not None]
            cols.append(f"**{sum(got) / len(got):.3f}** ({len(got)})" if got else "-")
        print(f"| mean | {label} | " + " | ".join(cols) + " |")


if __name__ == "__main__":
    main()
