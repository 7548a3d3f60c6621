"""Section 4 of README.md: 1.5's readout fitted with short-excerpt copies of the training clips, on the shipped weights.

    python docs/coat-tiny-short-windows/readout_rule.py DUMP

DUMP: ``extract.py docs/coat-tiny-1.4/run models/coat-tiny DUMP --light --ablate --cut-rows 1.0
--train-channels clean,telephone,room,excerpt``. The shipped recipe's readout is fitted on the same dump without its
excerpt rows (the other copies are the same draws), so the two arms differ only in those rows."""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rule import NAMES, scores, without_channel  # noqa: E402

CUT_BARS = {"RAVDESS UA": 3.0, "EMOVO UA": 3.0}
WHOLE_BARS = {"RAVDESS UA": -1.0, "telephone UA": -1.0, "EMOVO UA": -2.0, "TurEV UA": -1.0, "angry AUC": -0.5,
              "UrbanSound8K acc": -1.9}


def main():
    d = dict(np.load(sys.argv[1]))
    arms = {"shipped recipe": scores(without_channel(d, "excerpt")), "with excerpts": scores(d)}
    print("| readout | windows | " + " | ".join(NAMES) + " |")
    print("|---|---|" + "---|" * len(NAMES))
    for arm, sc in arms.items():
        for windows in ("whole", "cut"):
            v = sc[("fused", windows, "with")]
            print(f"| {arm} | {windows} | " + " | ".join(f"{v[n]:.3f}" for n in NAMES) + " |")
    ok = True
    for windows, bars in (("cut", CUT_BARS), ("whole", WHOLE_BARS)):
        for n, bar in bars.items():
            diff = 100 * (arms["with excerpts"][("fused", windows, "with")][n] - arms["shipped recipe"][("fused", windows, "with")][n])
            good = diff >= bar
            ok &= good
            print(f"  [{'pass' if good else 'FAIL'}] {windows}, fused {n}: {diff:+.1f} (bar >= {bar:+.1f})")
    print(f"\nrule: {'ADOPTED' if ok else 'not adopted'}")
    print("\nthe thinking block's part, fused (with minus without, points):")
    for arm, sc in arms.items():
        for windows in ("whole", "cut"):
            w, wo = sc[("fused", windows, "with")], sc[("fused", windows, "without")]
            print(f"  {arm}, {windows}: " + ", ".join(f"{n} {100 * (w[n] - wo[n]):+.1f}" for n in NAMES[:5]))


if __name__ == "__main__":
    main()
