"""Section 6 of README.md: the excerpt readout against 1.5's readout recipe on fold A, three draws of the copies.

    python docs/coat-tiny-short-windows/readout_rule_a.py DUMP [DUMP ...]

Each DUMP: ``extract.py RUN RUN/model DUMP --light --ablate --cut-rows 2.0 --train-channels
clean,telephone,room,excerpt --aug-seed N`` of the same run (fold A, 1.5's recipe, seed 1), N = 0, 1, 2: the same
model and held-out rows, another draw of the training rows' telephone, room and excerpt copies. In each dump the
reference readout is fitted without the excerpt rows (so on the same draw of the other copies) and the candidate
with them; both as ``analyze.evaluate`` fits them. The rule reads the means over the dumps."""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rule import NAMES, scores, without_channel  # noqa: E402

CUT_BARS = {"RAVDESS UA": 3.0, "telephone UA": 3.0, "EMOVO UA": 0.0, "TurEV UA": -1.0, "angry AUC": 0.0}
WHOLE_BARS = {"RAVDESS UA": -1.0, "telephone UA": -1.0, "EMOVO UA": -2.0, "TurEV UA": -1.0, "angry AUC": -0.5,
              "UrbanSound8K acc": -1.9}
ARMS = ("1.5 recipe", "with excerpts")


def main():
    paths = sys.argv[1:]
    if not paths:
        sys.exit("usage: readout_rule_a.py DUMP [DUMP ...]")
    per = []  # one {arm: scores} per dump
    print("| draw | readout | windows | " + " | ".join(NAMES) + " |")
    print("|---|---|---|" + "---|" * len(NAMES))
    for p in paths:
        d = dict(np.load(p))
        arms = {ARMS[0]: scores(without_channel(d, "excerpt")), ARMS[1]: scores(d)}
        per.append(arms)
        for arm, sc in arms.items():
            for windows in ("whole", "cut"):
                v = sc[("fused", windows, "with")]
                print(f"| {Path(p).stem} | {arm} | {windows} | " + " | ".join(f"{v[n]:.3f}" for n in NAMES) + " |")

    def mean(arm, output, windows, arm_t, n):
        return float(np.mean([a[arm][(output, windows, arm_t)][n] for a in per]))

    print(f"\nmeans over {len(per)} draws, fused:")
    for arm in ARMS:
        for windows in ("whole", "cut"):
            print(f"  {arm}, {windows}: " + ", ".join(f"{n} {mean(arm, 'fused', windows, 'with', n):.3f}" for n in NAMES))
    ok = True
    print("\ncandidate minus reference, mean over the draws (points):")
    for windows, bars in (("cut", CUT_BARS), ("whole", WHOLE_BARS)):
        for n, bar in bars.items():
            diffs = [100 * (a[ARMS[1]][("fused", windows, "with")][n] - a[ARMS[0]][("fused", windows, "with")][n])
                     for a in per]
            diff = float(np.mean(diffs))
            good = diff >= bar
            ok &= good
            each = " ".join(f"{x:+.1f}" for x in diffs)
            print(f"  [{'pass' if good else 'FAIL'}] {windows}, fused {n}: {diff:+.1f} (bar >= {bar:+.1f}; draws {each})")
    print(f"\nrule: {'ADOPTED' if ok else 'not adopted'}")
    print("\nthe thinking block's part, fused (with minus without, mean over the draws, points):")
    for arm in ARMS:
        for windows in ("whole", "cut"):
            print(f"  {arm}, {windows}: " + ", ".join(
                f"{n} {100 * (mean(arm, 'fused', windows, 'with', n) - mean(arm, 'fused', windows, 'without', n)):+.1f}"
                for n in NAMES[:5]))
    print("\nthe LLM alone (no readout), mean over the draws:")
    for windows in ("whole", "cut"):
        print(f"  {windows}: " + ", ".join(f"{n} {mean(ARMS[0], 'LLM alone', windows, 'with', n):.3f}" for n in NAMES))


if __name__ == "__main__":
    main()
