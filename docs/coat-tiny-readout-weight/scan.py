"""Nested choice of the readout's weight in the fused answer, leave-one-corpus-out (README.md).

    python docs/coat-tiny-readout-weight/scan.py DIR     # DIR/{ravdess,emovo,turev}.npz from dump.py

fused(w) = argmax(lp / T + w * log p_readout): w = 1 is the shipped fusion, w = 0 the LLM alone (the fused
temperature does not move the argmax). For each held-out corpus, w is chosen on the other two corpora's LOCO results
(the mean of their UAs; ties: the larger w, nearer the shipped fusion) and then scored on it."""
import sys
from pathlib import Path

import numpy as np

CORPORA = ("ravdess", "emovo", "turev")
GRID = np.round(np.arange(0.0, 1.51, 0.1), 2)
MFCC_LR = {"ravdess": 0.163, "emovo": 0.223, "turev": 0.332}  # the card's references (same clips)


def ua(pred: np.ndarray, answer: np.ndarray) -> float:
    return float(np.mean([np.mean(pred[answer == c] == c) for c in np.unique(answer)]))


def uas(d: dict, readout: str) -> np.ndarray:
    labels = d["labels"]
    return np.array([ua(labels[(d["lp"] + w * d[readout]).argmax(1)], d["answer"]) for w in GRID])


def main():
    root = Path(sys.argv[1])
    dumps = {c: dict(np.load(root / f"{c}.npz")) for c in CORPORA}
    for readout, name in (("ro_a", "1.5's readout"), ("ro_b", "excerpt readout")):
        table = {c: uas(d, readout) for c, d in dumps.items()}
        print(f"\n{name}: UA by weight w")
        print("| corpus | " + " | ".join(f"{w:g}" for w in GRID) + " |")
        print("|---|" + "---|" * len(GRID))
        for c in CORPORA:
            print(f"| {c} | " + " | ".join(f"{x:.3f}" for x in table[c]) + " |")
        print("\n| held-out corpus | w chosen on the other two | UA at that w | w = 1 (shipped) | w = 0 (LLM alone) | MFCC+LR |")
        print("|---|---|---|---|---|---|")
        for c in CORPORA:
            others = np.mean([table[o] for o in CORPORA if o != c], axis=0)
            k = int(np.flatnonzero(others == others.max())[-1])
            print(f"| {c} | {GRID[k]:g} | {table[c][k]:.3f} | {table[c][list(GRID).index(1.0)]:.3f} | "
                  f"{table[c][0]:.3f} | {MFCC_LR[c]:.3f} |")


if __name__ == "__main__":
    main()
