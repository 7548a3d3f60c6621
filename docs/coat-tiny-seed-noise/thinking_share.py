"""The thinking block's part in 1.5's design over several runs (README.md here).

    python docs/coat-tiny-seed-noise/thinking_share.py NAME=DUMP:NO_THINKING_DUMP [...]

Each pair is one `coat` run's extract.py dump and its `--no-thinking` twin. The fused arm scores the twin with the
run's own readout and fused temperature (analyze.evaluate score=), as `edge-coat eval --no-thinking` serves it.
Prints each run's difference (points) for the fused output and the LLM alone, their mean over the runs and the
standard error of that mean (runs of different folds and seeds counted as independent)."""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "coat-tiny-thinking-readout"))
from analyze import FIGURES, evaluate  # noqa: E402


def main():
    names = [n for _, _, n in FIGURES]
    rows = {"fused (1.5 design)": [], "LLM alone": []}
    for arg in sys.argv[1:]:
        name, pair = arg.split("=", 1)
        d, nt = (dict(np.load(p)) for p in pair.split(":"))
        for k in ("part", "corpus", "task", "answer"):
            if not np.array_equal(d[k], nt[k]):
                raise SystemExit(f"{name}: the two dumps' rows differ in {k!r}")
        fused = [100 * (a - b) for a, b in zip(evaluate(d, ("tower_stats",)).values(),
                                               evaluate(d, ("tower_stats",), score=nt).values())]
        alone = [100 * (a - b) for a, b in zip(evaluate(d, None).values(), evaluate(nt, None).values())]
        rows["fused (1.5 design)"].append(fused)
        rows["LLM alone"].append(alone)
        print(f"{name}: fused " + ", ".join(f"{n} {v:+.1f}" for n, v in zip(names, fused)))
        print(f"{name}: LLM alone " + ", ".join(f"{n} {v:+.1f}" for n, v in zip(names, alone)))
    print("\n| arm | runs | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for arm, r in rows.items():
        x = np.array(r)
        se = x.std(0, ddof=1) / np.sqrt(len(x)) if len(x) > 1 else np.full(x.shape[1], np.nan)
        print(f"| {arm} | {len(x)} | " + " | ".join(f"{m:+.1f} ± {s:.1f}" for m, s in zip(x.mean(0), se)) + " |")


if __name__ == "__main__":
    main()
