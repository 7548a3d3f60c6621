"""The rule of README.md: the LoRA run's LLM with 1.5's frozen-tower readout, against 1.5's design on the frozen run.

    python docs/coat-tiny-lora-frozen-readout/compare.py REF_DIR FEAT_DIR

REF_DIR holds the frozen runs' dumps ({b,c,a}-coat.npz, docs/coat-tiny-tower-readout); FEAT_DIR the LoRA runs'
({fold}-lora.npz, {fold}-lora-nt.npz with --no-thinking) and the frozen runs' --no-thinking ({fold}-coat-nt.npz), and
the card split's pair (card-coat.npz, card-lora.npz). The candidate's readout reads the frozen run's `tower_stats` of
the same row (the rows are checked to be the same clips in the same order)."""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "coat-tiny-thinking-readout"))
from analyze import FIGURES, evaluate  # noqa: E402

#: the rule's bars, candidate minus reference, in points (AUC in points of 100 too)
BARS = {"RAVDESS UA": 1.0, "telephone UA": -1.0, "EMOVO UA": -1.0, "TurEV UA": -1.0, "angry AUC": -0.5,
        "UrbanSound8K acc": -1.9}
KEYS = ("part", "corpus", "task", "answer")


def frozen_stats(lora, ref):
    """The LoRA dump with its tower statistics replaced by the frozen run's on the same rows."""
    for k in KEYS:
        if not np.array_equal(lora[k], ref[k]):
            raise SystemExit(f"the dumps' rows differ in {k!r}: not the same clips")
    out = dict(lora)
    out["adapted_tower_stats"] = lora["tower_stats"]
    out["tower_stats"] = ref["tower_stats"]
    return out


def load(path):
    return dict(np.load(path)) if path.is_file() else None


def main():
    ref_dir, feat = Path(sys.argv[1]), Path(sys.argv[2])
    names = [n for _, _, n in FIGURES]
    res = {}
    for fold, ref_name in (("b", "b-coat"), ("c", "c-coat"), ("a", "a-coat"), ("card", None)):
        ref = load(ref_dir / f"{ref_name}.npz") if ref_name else load(feat / "card-coat.npz")
        lora = load(feat / f"{fold}-lora.npz")
        if ref is None or lora is None:
            continue
        hyb = frozen_stats(lora, ref)
        arms = {
            "1.5 design (frozen run + tower readout)": evaluate(ref, ("tower_stats",), "sum"),
            "LoRA LLM + frozen readout (candidate)": evaluate(hyb, ("tower_stats",), "sum"),
            "LoRA LLM + adapted-tower readout": evaluate(hyb, ("adapted_tower_stats",), "sum"),
            "LoRA LLM alone": evaluate(hyb, None),
            "frozen run, LLM alone": evaluate(ref, None),
        }
        nt_ref, nt_lora = load(feat / f"{fold}-coat-nt.npz"), load(feat / f"{fold}-lora-nt.npz")
        if nt_ref is not None:
            arms["1.5 design, --no-thinking"] = evaluate(ref, ("tower_stats",), "sum", score=nt_ref)
        if nt_lora is not None:
            arms["candidate, --no-thinking"] = evaluate(hyb, ("tower_stats",), "sum", score=frozen_stats(nt_lora, ref))
        res[fold] = arms
    print("| split | arm | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    order = [k for k in ("b", "c") if k in res]
    if order == ["b", "c"]:
        arms = [a for a in res["b"] if a in res["c"]]
        res["B+C mean"] = {a: {n: float(np.mean([res[k][a][n] for k in "bc"])) for n in names} for a in arms}
    for split in [k for k in ("b", "c", "B+C mean", "a", "card") if k in res]:
        for arm, figs in res[split].items():
            print(f"| {split} | {arm} | " + " | ".join(f"{figs[n]:.3f}" for n in names) + " |")
    for split in [k for k in ("b", "c", "B+C mean", "a", "card") if k in res]:
        r = res[split]
        for arm, base in (("LoRA LLM + frozen readout (candidate)", "candidate, --no-thinking"),
                          ("1.5 design (frozen run + tower readout)", "1.5 design, --no-thinking")):
            if base in r:
                print(f"{split}: {arm} minus its --no-thinking (points): "
                      + ", ".join(f"{n} {100 * (r[arm][n] - r[base][n]):+.1f}" for n in names))
    if "B+C mean" in res:
        mean = res["B+C mean"]
        ok = True
        print("\nrule (B+C mean, candidate minus the 1.5 design, points):")
        for n, bar in BARS.items():
            diff = 100 * (mean["LoRA LLM + frozen readout (candidate)"][n]
                          - mean["1.5 design (frozen run + tower readout)"][n])
            passed = diff >= bar
            ok &= passed
            print(f"  {n}: {diff:+.1f} (bar {bar:+.1f}) {'pass' if passed else 'FAIL'}")
        print("adopt" if ok else "not adopted")


if __name__ == "__main__":
    main()
