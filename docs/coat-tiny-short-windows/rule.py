"""The rule of README.md: the excerpt candidate against 1.5's recipe on folds B and C, two seeds each.

    python docs/coat-tiny-short-windows/rule.py DUMP_DIR [--seeds 1[,2]]

DUMP_DIR holds one dump per run, ``{b,c}-{ex,base}-s{1,2}.npz``, each from
``extract.py RUN RUN/model OUT.npz --light --ablate --cut-rows 1.0``. Scored as analyze.evaluate scores (1.5's
readout fitted on the run's own training rows, its fused temperature on the run's validation rows)."""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "coat-tiny-thinking-readout"))
from analyze import FIGURES, evaluate, log_softmax, shipped_fusion  # noqa: E402

RUNS = [(f, s) for f in ("b", "c") for s in (1, 2)]  # --seeds narrows it (the amended rule: seed 1)
NAMES = [n for _, _, n in FIGURES]
EMOTION = [n for n in NAMES if n != "UrbanSound8K acc"]
WHOLE_BARS = {"RAVDESS UA": -1.0, "telephone UA": -1.0, "EMOVO UA": -2.0, "TurEV UA": -1.0, "angry AUC": -0.5}
CUT_BARS = {"RAVDESS UA": 3.0, "EMOVO UA": 3.0}


def without(d):
    """The same dump scored without the thinking block (extract.py --ablate)."""
    return {**d, "lp_emotion": d["lp_emotion_nt"], "lp_events": d["lp_events_nt"]}


def select(d, keep):
    """The dump's rows where ``keep`` (a per-row bool array); the per-dump fields (labels, temperature) stay."""
    n = len(d["part"])
    return {k: (v[keep] if isinstance(v, np.ndarray) and v.ndim and len(v) == n else v) for k, v in d.items()}


def without_channel(d, channel):
    """The dump without the training copies of ``channel`` (extract.py --train-channels): what a readout fitted
    without them sees. The other copies are the same draws either way."""
    return select(d, d["channel"] != channel) if "channel" in d else d


def cut(d):
    """The dump with its held-out emotion clips replaced by their cuts (extract.py --cut-rows; events rows kept)."""
    part = d["part"].copy()
    part[part == "held_out_cut"] = "held_out"
    part[part == "held_out_tel_cut"] = "held_out_tel"
    return select({**d, "part": part}, ~((d["task"] == "emotion") & np.isin(d["part"], ["held_out", "held_out_tel"])))


def scores(d):
    """{(output, windows, arm): {figure: value}} of one dump; arm = with / without the thinking block."""
    out = {}
    for windows, x in (("whole", d), ("cut", cut(d))):
        for arm, score in (("with", None), ("without", without(x))):
            out[("fused", windows, arm)] = evaluate(x, ("tower_stats",), score=score)
            out[("LLM alone", windows, arm)] = evaluate(score if score is not None else x, None)
    return out


def us8k_correct(d):
    """Per held-out UrbanSound8K clip: right or not (fused, as evaluate scores it)."""
    labels = list(d["labels_events"])
    rows = d["task"] == "events"
    ro, T, tr = shipped_fusion(d, "events")
    sel = rows & (d["part"] == "held_out")
    z = (d["lp_events"][sel] / T + log_softmax(ro[sel])) / tr
    return np.array(labels)[z.argmax(1)] == d["answer"][sel]


def main():
    global RUNS
    root = Path(sys.argv[1])
    if "--seeds" in sys.argv:
        seeds = [int(x) for x in sys.argv[sys.argv.index("--seeds") + 1].split(",")]
        RUNS = [(f, s) for f, s in RUNS if s in seeds]
    table, us8k = {}, {}
    for f, s in RUNS:
        for arm in ("ex", "base"):
            d = dict(np.load(root / f"{f}-{arm}-s{s}.npz"))
            table[(f, s, arm)] = scores(d)
            us8k[(f, s, arm)] = us8k_correct(d)
    print("| run | arm | output | windows | " + " | ".join(NAMES) + " |")
    print("|---|---|---|---|" + "---|" * len(NAMES))
    for (f, s, arm), sc in table.items():
        for (out, windows, ab), v in sc.items():
            if ab == "with":
                print(f"| {f.upper()}{s} | {arm} | {out} | {windows} | " + " | ".join(
                    f"{v[n]:.3f}" if n in v else "-" for n in NAMES) + " |")

    def diff(out, windows, ab="with"):
        return {n: 100 * np.mean([table[(f, s, "ex")][(out, windows, ab)][n] - table[(f, s, "base")][(out, windows, ab)][n]
                                  for f, s in RUNS]) for n in NAMES if n in table[RUNS[0] + ("ex",)][(out, windows, ab)]}

    print("\ncandidate minus base, mean over " + " ".join(f"{f.upper()}{s}" for f, s in RUNS) + " (points):")
    for out in ("fused", "LLM alone"):
        for windows in ("whole", "cut"):
            print(f"  {out}, {windows}: " + ", ".join(f"{n} {v:+.1f}" for n, v in diff(out, windows).items()))
    whole, cuts = diff("fused", "whole"), diff("fused", "cut")
    ok = True
    for n, bar in CUT_BARS.items():
        good = cuts[n] >= bar
        ok &= good
        print(f"  [{'pass' if good else 'FAIL'}] 1 s cuts, fused {n}: {cuts[n]:+.1f} (bar >= {bar:+.1f})")
    for n, bar in WHOLE_BARS.items():
        good = whole[n] >= bar
        ok &= good
        print(f"  [{'pass' if good else 'FAIL'}] whole clips, fused {n}: {whole[n]:+.1f} (bar >= {bar:+.1f})")
    ex = np.concatenate([us8k[(f, s, "ex")] for f, s in RUNS]).astype(float)
    base = np.concatenate([us8k[(f, s, "base")] for f, s in RUNS]).astype(float)
    rng = np.random.default_rng(0)
    boot = [np.mean(ex[i] - base[i]) for i in (rng.integers(0, len(ex), len(ex)) for _ in range(2000))]
    lo, hi = 100 * np.percentile(boot, 2.5), 100 * np.percentile(boot, 97.5)
    good = hi >= 0
    ok &= good
    print(f"  [{'pass' if good else 'FAIL'}] UrbanSound8K pooled difference {100 * np.mean(ex - base):+.1f}, "
          f"95 % interval {lo:+.1f} .. {hi:+.1f} (must not lie wholly below 0)")
    print(f"\nrule: {'ADOPTED' if ok else 'not adopted'}")
    print(f"\nthe thinking block's part (with minus without), mean over the {len(RUNS)} runs ± standard error (points):")
    for arm in ("ex", "base"):
        for out in ("fused", "LLM alone"):
            for windows in ("whole", "cut"):
                x = np.array([[100 * (table[(f, s, arm)][(out, windows, "with")][n] - table[(f, s, arm)][(out, windows, "without")][n])
                               for n in EMOTION] for f, s in RUNS])
                se = x.std(0, ddof=1) / np.sqrt(len(x))
                print(f"  {arm}, {out}, {windows}: " + ", ".join(f"{n} {m:+.1f} ± {e:.1f}" for n, m, e in zip(EMOTION, x.mean(0), se)))


if __name__ == "__main__":
    main()
