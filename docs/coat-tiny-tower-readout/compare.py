"""The rule of README.md: the answer readout on the tower statistics against 1.4's (projected statistics).

    python docs/coat-tiny-tower-readout/compare.py FEAT_DIR

reads FEAT_DIR/{b,c,a,card141}-coat.npz (docs/coat-tiny-thinking-readout/extract.py dumps) and prints, per dump and
for the mean of folds B and C, each held-out figure with the LLM alone, 1.4's readout, the tower readout and the
tower readout alone, then the rule's verdict on the B+C means."""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "coat-tiny-thinking-readout"))
from analyze import FIGURES, evaluate  # noqa: E402

ARMS = [("LLM alone", None, "sum"), ("1.4 readout (projected)", ("stats",), "sum"),
        ("tower readout", ("tower_stats",), "sum"), ("tower readout alone", ("tower_stats",), "alone"),
        ("1.4 readout alone", ("stats",), "alone")]
#: the rule's bars, candidate minus reference, in points (AUC in points of 100 too)
BARS = {"RAVDESS UA": 1.0, "telephone UA": -1.0, "EMOVO UA": -1.0, "TurEV UA": -1.0, "angry AUC": -0.5,
        "UrbanSound8K acc": -1.9}


def main():
    feat = Path(sys.argv[1])
    if len(sys.argv) > 2 and sys.argv[2] == "--draws":  # the fit's noise: the rule's difference on every dump
        return draws(feat)
    names = [n for _, _, n in FIGURES]
    res = {}
    for dump in ("b", "c", "a", "card141"):
        f = feat / f"{dump}-coat.npz"
        if f.is_file():
            d = np.load(f)
            res[dump] = {arm: evaluate(d, feats, mode) for arm, feats, mode in ARMS}
    print("| split | arm | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    rows = [(k, res[k]) for k in res]
    if "b" in res and "c" in res:
        rows.insert(2, ("B+C mean", {arm: {n: np.mean([res[k][arm][n] for k in "bc"]) for n in names}
                                     for arm, _, _ in ARMS}))
    for split, r in rows:
        for arm, _, _ in ARMS:
            print(f"| {split} | {arm} | " + " | ".join(f"{r[arm][n]:.3f}" for n in names) + " |")
    if "b" in res and "c" in res:
        mean = dict(rows)["B+C mean"]
        ok = True
        print("\nrule (B+C mean, tower readout minus 1.4 readout, points):")
        for n, bar in BARS.items():
            diff = 100 * (mean["tower readout"][n] - mean["1.4 readout (projected)"][n])
            passed = diff >= bar
            ok &= passed
            print(f"  {n}: {diff:+.1f} (bar {bar:+.1f}) {'pass' if passed else 'FAIL'}")
        print("adopt" if ok else "not adopted")


def draws(feat: Path) -> None:
    """Tower readout minus 1.4's readout on every FEAT_DIR/*-coat*.npz (other draws of the training rows' room and
    telephone copies: extract.py --aug-seed), each figure in points."""
    names = [n for _, _, n in FIGURES]
    print("| dump | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for f in sorted(feat.glob("*-coat*.npz")):
        d = np.load(f)
        ref, cand = evaluate(d, ("stats",), "sum"), evaluate(d, ("tower_stats",), "sum")
        print(f"| {f.stem} | " + " | ".join(f"{100 * (cand[n] - ref[n]):+.1f}" for n in names) + " |")


if __name__ == "__main__":
    main()
