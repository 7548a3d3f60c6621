"""The rule of README.md: 1.3's recipe with slot time against the same recipe without it, 1.5's readout on both.

    python docs/coat-tiny-slot-time/compare.py REF_DIR FEAT_DIR

REF_DIR: the folds' `coat` dumps ({b,c}-coat.npz, docs/coat-tiny-tower-readout); FEAT_DIR: their `--no-thinking`
twins ({b,c}-coat-nt.npz) and the slot-time runs' dumps ({b,c}-st.npz, {b,c}-st-nt.npz). All are
docs/coat-tiny-thinking-readout/extract.py dumps of the same rows."""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "coat-tiny-thinking-readout"))
from analyze import FIGURES, evaluate  # noqa: E402

BARS = {"RAVDESS UA": 1.0, "telephone UA": -1.0, "EMOVO UA": -1.0, "TurEV UA": -1.0, "angry AUC": -0.5,
        "UrbanSound8K acc": -1.9}
REF, CAND = "coat (1.5 design)", "coat + slot time (candidate)"


def load(path):
    return dict(np.load(path)) if path.is_file() else None


def same_rows(a, b):
    for k in ("part", "corpus", "task", "answer"):
        if not np.array_equal(a[k], b[k]):
            raise SystemExit(f"the dumps' rows differ in {k!r}: not the same clips")


def main():
    ref_dir, feat = Path(sys.argv[1]), Path(sys.argv[2])
    names = [n for _, _, n in FIGURES]
    res = {}
    for fold in ("b", "c"):
        ref, cand = load(ref_dir / f"{fold}-coat.npz"), load(feat / f"{fold}-st.npz")
        if ref is None or cand is None:
            continue
        same_rows(ref, cand)
        arms = {REF: evaluate(ref, ("tower_stats",)), CAND: evaluate(cand, ("tower_stats",)),
                "coat, LLM alone": evaluate(ref, None), "slot time, LLM alone": evaluate(cand, None)}
        for name, base, d in (("coat", ref, load(feat / f"{fold}-coat-nt.npz")),
                              ("slot time", cand, load(feat / f"{fold}-st-nt.npz"))):
            if d is not None:
                same_rows(base, d)
                arms[f"{name}, --no-thinking"] = evaluate(base, ("tower_stats",), score=d)
                arms[f"{name}, LLM alone, --no-thinking"] = evaluate(d, None)
        res[fold] = arms
    if len(res) == 2:
        arms = [a for a in res["b"] if a in res["c"]]
        res["B+C mean"] = {a: {n: float(np.mean([res[k][a][n] for k in "bc"])) for n in names} for a in arms}
    print("| split | arm | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for split, arms in res.items():
        for arm, figs in arms.items():
            print(f"| {split} | {arm} | " + " | ".join(f"{figs[n]:.3f}" for n in names) + " |")
    print("\nthe thinking block's part (each arm minus its own --no-thinking, points):")
    for split, r in res.items():
        for name, fused in (("coat", REF), ("slot time", CAND)):
            for what, a, b in (("fused", fused, f"{name}, --no-thinking"),
                               ("LLM alone", f"{name}, LLM alone", f"{name}, LLM alone, --no-thinking")):
                if a in r and b in r:
                    print(f"  {split} {name} {what}: " + ", ".join(f"{n} {100 * (r[a][n] - r[b][n]):+.1f}"
                                                                 for n in names))
    if "B+C mean" in res:
        mean, ok = res["B+C mean"], True
        print("\nrule (B+C mean, candidate minus reference, points):")
        for n, bar in BARS.items():
            diff = 100 * (mean[CAND][n] - mean[REF][n])
            ok &= diff >= bar
            print(f"  {n}: {diff:+.1f} (bar {bar:+.1f}) {'pass' if diff >= bar else 'FAIL'}")
        print("adopt" if ok else "not adopted")


if __name__ == "__main__":
    main()
