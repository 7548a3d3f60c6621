"""The rule of README.md: a causal 8-clip speaker baseline subtracted from the emotion readout's tower statistics,
on folds B and C (three draws each), against 1.5's readout.

    python docs/coat-tiny-speaker-baseline/confirm.py [FEAT3_DIR]

The held-out rows are scored twice from one fit: with a baseline of any 8 other clips of the speaker ("any"), and of
8 of the speaker's neutral and calm clips ("calm", parts held_out_calm and held_out_tel_calm)."""
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
for sub in ("docs/coat-tiny-readout-cv", "docs/coat-tiny-thinking-readout", "."):
    sys.path.insert(0, str(ROOT / sub))
import analyze  # noqa: E402
from compare import row_groups  # noqa: E402  (docs/coat-tiny-readout-cv)

N = 8
CALM = {"neutral", "calm"}
RUNS = {"b": "runs/coat-fold-b/coat", "c": "runs/coat-fold-c/coat"}
MAIN = ["RAVDESS UA", "telephone UA", "EMOVO UA", "TurEV UA", "angry AUC"]
CALM_FIGS = [("ravdess", "held_out_calm", "RAVDESS UA (calm baseline)"),
             ("ravdess", "held_out_tel_calm", "telephone UA (calm baseline)"),
             ("emovo", "held_out_calm", "EMOVO UA (calm baseline)"), ("turev", "held_out_calm", "TurEV UA (calm baseline)"),
             ("ravdess", "held_out_calm", "angry AUC (calm baseline)")]
BARS = {"RAVDESS UA": 2.0, "telephone UA": 0.0, "EMOVO UA": 0.0, "TurEV UA": 0.0, "angry AUC": -0.5}


def channels(d):
    ch = np.array(["clean"] * len(d["part"]), dtype=object)
    tr = np.where(d["part"] == "train")[0]
    ch[tr] = np.array(["clean", "telephone", "room"] * (len(tr) // 3))  # extract.py's triples per training clip
    return ch


def baseline(x, rows, pool_of):
    """x[r] minus the mean of up to N rows of pool_of(r) (r itself excluded), drawn with default_rng(r)."""
    out = x.copy()
    for r in rows:
        pool = pool_of(r)
        pool = pool[pool != r]
        if len(pool) > N:
            pool = np.random.default_rng(int(r)).choice(pool, N, replace=False)
        if len(pool):
            out[r] = x[r] - x[pool].mean(0)
    return out


def with_baseline(d, groups):
    x = d["tower_stats"].astype(np.float64)
    key = np.array([f"{p}|{g}|{c}" for p, g, c in zip(d["part"], groups, channels(d))])
    emo = np.where(d["task"] == "emotion")[0]
    members = {}
    for r in emo:
        members.setdefault(key[r], []).append(r)
    members = {k: np.array(v) for k, v in members.items()}
    calm = {k: v[np.isin(d["answer"][v], list(CALM))] for k, v in members.items()}
    rel = baseline(x, emo, lambda r: members[key[r]])
    held = [r for r in emo if d["part"][r] in ("held_out", "held_out_tel")]
    rel_calm = baseline(x, held, lambda r: calm[key[r]])
    out = {k: v for k, v in d.items()}
    out["tower_rel"] = rel.astype(np.float32)
    # the held-out rows again, with the calm baseline, as parts *_calm
    extra = np.array(held, dtype=int)
    for k, v in d.items():
        if np.ndim(v) and v.shape[0] == len(d["part"]):
            out[k] = np.concatenate([out[k], v[extra]])
    out["tower_rel"] = np.concatenate([rel, rel_calm[extra]]).astype(np.float32)
    out["part"] = np.concatenate([d["part"], np.array([f"{p}_calm" for p in d["part"][extra]])])
    return out


def line(label, r, names):
    print(f"| {label} | " + " | ".join(f"{r[n]:.3f}" for n in names) + " |", flush=True)


def main():
    feat3 = Path(sys.argv[1] if len(sys.argv) > 1 else "/work/feat3")
    analyze.FIGURES.extend(CALM_FIGS)
    names = MAIN + [n for _, _, n in CALM_FIGS]
    print("| dump / readout | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    ref_all, cand_all = {}, {}
    for fold in "bc":
        answers, groups = row_groups(ROOT / RUNS[fold])
        for i in range(3):
            d = dict(np.load(feat3 / f"{fold}-coat-aug{i}.npz"))
            assert np.array_equal(answers, d["answer"])
            dd = with_baseline(d, groups)
            ref = analyze.evaluate(dd, ("tower_stats",))  # 1.5's readout; its *_calm rows are the same clips again
            cand = analyze.evaluate(dd, ("tower_rel",))
            line(f"{fold} draw {i}, 1.5", ref, names)
            line(f"{fold} draw {i}, speaker baseline", cand, names)
            ref_all.setdefault(fold, []).append(ref)
            cand_all.setdefault(fold, []).append(cand)
    mean = lambda rows: {n: float(np.mean([r[n] for r in rows])) for n in names}  # noqa: E731
    ref = mean([mean(ref_all[f]) for f in "bc"])
    cand = mean([mean(cand_all[f]) for f in "bc"])
    line("**B+C** 1.5", ref, names)
    line("**B+C** speaker baseline", cand, names)
    ok = True
    print("\nrule (B+C, candidate minus 1.5, points):")
    for n, bar in list(BARS.items()) + [("angry AUC (calm baseline)", -0.5)]:
        ref_n = ref["angry AUC"] if n.startswith("angry AUC") else ref[n]
        diff = 100 * (cand[n] - ref_n)
        ok &= diff >= bar
        print(f"  {n}: {diff:+.1f} (bar {bar:+.1f}) {'pass' if diff >= bar else 'FAIL'}")
    print("  -> " + ("confirmed" if ok else "not confirmed"), flush=True)


if __name__ == "__main__":
    main()
