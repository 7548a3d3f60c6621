"""How far apart are two training seeds of the same recipe on the same fold? (README.md here)

    python docs/coat-tiny-seed-noise/seeds.py FOLD=DUMP[,DUMP...] [FOLD=...]

Each DUMP is an extract.py dump (docs/coat-tiny-thinking-readout) of one `coat` run of 1.3's recipe on that fold, seed
by seed; each is scored with 1.5's readout fitted on its own run's training rows (analyze.evaluate, tower
statistics), and the LLM alone. Prints each seed's held-out figures, every within-fold pair's difference, and the
root mean square of those differences: the spread a single-fold difference between two designs has when the
designs are the same."""
import itertools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "coat-tiny-thinking-readout"))
from analyze import FIGURES, evaluate  # noqa: E402


def main():
    names = [n for _, _, n in FIGURES]
    folds = dict(a.split("=", 1) for a in sys.argv[1:])
    diffs = {"fused (1.5 design)": [], "LLM alone": []}
    print("| fold | seed dump | arm | " + " | ".join(names) + " |")
    print("|---|---|---|" + "---|" * len(names))
    for fold, dumps in folds.items():
        res = []
        for path in dumps.split(","):
            d = dict(np.load(path))
            r = {"fused (1.5 design)": evaluate(d, ("tower_stats",)), "LLM alone": evaluate(d, None)}
            res.append(r)
            for arm, figs in r.items():
                print(f"| {fold} | {Path(path).stem} | {arm} | " + " | ".join(f"{figs[n]:.3f}" for n in names) + " |")
        for a, b in itertools.combinations(res, 2):
            for arm in diffs:
                diffs[arm].append([100 * (a[arm][n] - b[arm][n]) for n in names])
    print("\nwithin-fold seed pairs, difference in points (first minus second):")
    for arm, rows in diffs.items():
        for row in rows:
            print(f"  {arm}: " + ", ".join(f"{n} {v:+.1f}" for n, v in zip(names, row)))
        rms = np.sqrt(np.mean(np.square(rows), 0))
        print(f"  {arm}, root mean square over {len(rows)} pairs: " + ", ".join(f"{n} {v:.1f}" for n, v in zip(names, rms)))


if __name__ == "__main__":
    main()
