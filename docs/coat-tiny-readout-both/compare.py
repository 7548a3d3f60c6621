"""The rule of README.md: pooled draws, then the tower and projected statistics together.

    python docs/coat-tiny-readout-both/compare.py [FEAT3_DIR] [FEAT2_DIR]

FEAT3_DIR holds {b,c}-coat-aug{0,1,2}.npz (docs/coat-tiny-thinking-readout/extract.py dumps with --aug-seed):
the same model and held-out rows, three draws of the training rows' telephone and room copies. FEAT2_DIR's
{a,card141}-coat.npz are printed beside (one draw each), not counted."""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "coat-tiny-thinking-readout"))
from analyze import FIGURES, evaluate  # noqa: E402

NAMES = [n for _, _, n in FIGURES]
TOWER, BOTH = ("tower_stats",), ("tower_stats", "stats")
BARS_POOL = {"RAVDESS UA": -1.0, "telephone UA": -1.0, "EMOVO UA": -1.0, "TurEV UA": -1.0, "angry AUC": -0.5,
             "UrbanSound8K acc": -1.9}
BARS_BOTH = dict(BARS_POOL, **{"TurEV UA": 0.0})


def pooled(dumps):
    """One dump whose training rows are those of every draw; the other rows (identical in all draws) once."""
    first = dumps[0]
    keep = first["part"] != "train"
    for d in dumps[1:]:
        k = d["part"] != "train"
        assert np.array_equal(d["answer"][k], first["answer"][keep]) and np.allclose(d["tower_stats"][k],
                                                                                     first["tower_stats"][keep])
    out = {}
    for key in first:
        if first[key].ndim and first[key].shape[0] == len(first["part"]):
            out[key] = np.concatenate([first[key]] + [d[key][d["part"] == "train"] for d in dumps[1:]])
        else:
            out[key] = first[key]
    return out


def mean(rows):
    return {n: float(np.mean([r[n] for r in rows])) for n in NAMES}


def line(label, r):
    print(f"| {label} | " + " | ".join(f"{r[n]:.3f}" for n in NAMES) + " |", flush=True)


def verdict(title, cand, ref, bars):
    ok = True
    print(f"\n{title} (B+C mean, candidate minus reference, points):")
    for n, bar in bars.items():
        diff = 100 * (cand[n] - ref[n])
        ok &= diff >= bar
        print(f"  {n}: {diff:+.1f} (bar {bar:+.1f}) {'pass' if diff >= bar else 'FAIL'}")
    print("  -> " + ("adopt" if ok else "not adopted"))
    return ok


def main():
    feat3 = Path(sys.argv[1] if len(sys.argv) > 1 else "/work/feat3")
    feat2 = Path(sys.argv[2] if len(sys.argv) > 2 else "/work/feat2")
    print("| fold / readout | " + " | ".join(NAMES) + " |")
    print("|---|" + "---|" * len(NAMES))
    res = {}
    for fold in "bc":
        dumps = [dict(np.load(feat3 / f"{fold}-coat-aug{i}.npz")) for i in range(3)]
        single_t = [evaluate(d, TOWER) for d in dumps]
        single_b = [evaluate(d, BOTH) for d in dumps]
        p = pooled(dumps)
        res[fold] = {"tower, one draw (mean of 3)": mean(single_t), "tower, pooled": evaluate(p, TOWER),
                     "both, one draw (mean of 3)": mean(single_b), "both, pooled": evaluate(p, BOTH),
                     "1.4 projected, pooled": evaluate(p, ("stats",))}
        for i, r in enumerate(single_t):
            line(f"{fold} tower draw {i}", r)
        for i, r in enumerate(single_b):
            line(f"{fold} both draw {i}", r)
        for k, r in res[fold].items():
            line(f"{fold} {k}", r)
    bc = {k: mean([res["b"][k], res["c"][k]]) for k in res["b"]}
    for k, r in bc.items():
        line(f"**B+C** {k}", r)
    pool = verdict("decision 1, pooled draws (tower)", bc["tower, pooled"], bc["tower, one draw (mean of 3)"],
                   BARS_POOL)
    key = "pooled" if pool else "one draw (mean of 3)"
    verdict(f"decision 2, both inputs ({key})", bc[f"both, {key}"], bc[f"tower, {key}"], BARS_BOTH)
    print("\nbeside, not counted (one draw):")
    for dump in ("a", "card141"):
        f = feat2 / f"{dump}-coat.npz"
        if f.is_file():
            d = dict(np.load(f))
            line(f"{dump} tower", evaluate(d, TOWER))
            line(f"{dump} both", evaluate(d, BOTH))


if __name__ == "__main__":
    main()
