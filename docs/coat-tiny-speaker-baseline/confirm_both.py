"""The next candidate of README.md: the emotion readout on [x, x - b], b a baseline of k ~ U{0..8} other clips of the
speaker (the training mean filling the rest), against 1.5's absolute readout, on folds B and C (three draws each).

    python docs/coat-tiny-speaker-baseline/confirm_both.py [FEAT3_DIR]

Held-out rows are scored three times from one fit: with 8 other clips of the speaker ("any"), with none ("first",
parts *_first), with 8 of the speaker's neutral and calm clips ("calm", parts *_calm)."""
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
for sub in ("docs/coat-tiny-speaker-baseline", "docs/coat-tiny-readout-cv", "docs/coat-tiny-thinking-readout", "."):
    sys.path.insert(0, str(ROOT / sub))
import analyze  # noqa: E402
from compare import row_groups  # noqa: E402  (docs/coat-tiny-readout-cv)
from confirm import CALM, RUNS, channels  # noqa: E402  (this folder)

N = 8
MAIN = ["RAVDESS UA", "telephone UA", "EMOVO UA", "TurEV UA", "angry AUC"]
CORPORA = [("ravdess", "held_out", "RAVDESS UA"), ("ravdess", "held_out_tel", "telephone UA"),
           ("emovo", "held_out", "EMOVO UA"), ("turev", "held_out", "TurEV UA"), ("ravdess", "held_out", "angry AUC")]
EXTRA = [(c, f"{p}_{ctx}", f"{n} ({ctx})") for ctx in ("first", "calm") for c, p, n in CORPORA]


def baseline(x, r, pool, center, k):
    pool = pool[pool != r]
    rng = np.random.default_rng(int(r))
    if len(pool) > k:
        pool = rng.choice(pool, k, replace=False)
    ctx = x[pool] if k else x[:0]
    return (ctx.sum(0) + (N - len(ctx)) * center) / N


def with_both(d, groups):
    x = d["tower_stats"].astype(np.float64)
    key = np.array([f"{p}|{g}|{c}" for p, g, c in zip(d["part"], groups, channels(d))])
    emo = np.where(d["task"] == "emotion")[0]
    train = emo[d["part"][emo] == "train"]
    center = x[train].mean(0)
    members = {}
    for r in emo:
        members.setdefault(key[r], []).append(r)
    members = {k: np.array(v) for k, v in members.items()}
    calm = {k: v[np.isin(d["answer"][v], list(CALM))] for k, v in members.items()}
    rel = x - center  # events rows: unused (their readout reads tower_stats)
    held = [r for r in emo if d["part"][r] in ("held_out", "held_out_tel")]
    for r in emo:
        if d["part"][r] in ("train", "val"):
            k = int(np.random.default_rng([int(r), 1]).integers(0, N + 1))
        else:
            k = N
        rel[r] = x[r] - baseline(x, r, members[key[r]], center, k)
    first = {r: x[r] - center for r in held}
    calm_rel = {r: x[r] - baseline(x, r, calm[key[r]], center, N) for r in held}
    out = dict(d)
    extra = np.array(held + held, dtype=int)
    for k, v in d.items():
        if np.ndim(v) and v.shape[0] == len(d["part"]):
            out[k] = np.concatenate([v, v[extra]])
    out["part"] = np.concatenate([d["part"], [f"{d['part'][r]}_first" for r in held],
                                  [f"{d['part'][r]}_calm" for r in held]])
    rel_all = np.concatenate([rel, np.stack([first[r] for r in held]), np.stack([calm_rel[r] for r in held])])
    out["tower_both"] = np.concatenate([out["tower_stats"].astype(np.float64), rel_all], 1).astype(np.float32)
    return out


def main():
    feat3 = Path(sys.argv[1] if len(sys.argv) > 1 else "/work/feat3")
    analyze.FIGURES.extend(EXTRA)
    names = MAIN + [n for _, _, n in EXTRA]
    print("| dump / readout | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    refs, cands = [], []
    for fold in "bc":
        answers, groups = row_groups(ROOT / RUNS[fold])
        per_ref, per_cand = [], []
        for i in range(3):
            d = dict(np.load(feat3 / f"{fold}-coat-aug{i}.npz"))
            assert np.array_equal(answers, d["answer"])
            dd = with_both(d, groups)
            ref = analyze.evaluate(dd, ("tower_stats",))  # 1.5; its *_first / *_calm rows are the same clips again
            # events rows: the candidate's events readout is 1.5's (tower_stats); only emotion reads tower_both
            cand = analyze.evaluate(dd, ("tower_both",))
            for r, lab in ((ref, "1.5"), (cand, "absolute + relative")):
                print(f"| {fold} draw {i}, {lab} | " + " | ".join(f"{r[n]:.3f}" for n in names) + " |", flush=True)
            per_ref.append(ref)
            per_cand.append(cand)
        refs.append({n: np.mean([r[n] for r in per_ref]) for n in names})
        cands.append({n: np.mean([r[n] for r in per_cand]) for n in names})
    ref = {n: np.mean([r[n] for r in refs]) for n in names}
    cand = {n: np.mean([r[n] for r in cands]) for n in names}
    for r, lab in ((ref, "1.5"), (cand, "absolute + relative")):
        print(f"| **B+C** {lab} | " + " | ".join(f"{r[n]:.3f}" for n in names) + " |")
    bars = [(n, b) for n, b in zip(MAIN, (2.0, 0.0, 0.0, 0.0, -0.5))]
    bars += [(f"{n} (first)", -1.0) for n in MAIN] + [("angry AUC (calm)", -0.5)]
    ok = True
    print("\nrule (B+C, candidate minus 1.5 without a baseline, points):")
    for n, bar in bars:
        base = n.split(" (")[0]
        diff = 100 * (cand[n] - ref[base])
        ok &= diff >= bar
        print(f"  {n}: {diff:+.1f} (bar {bar:+.1f}) {'pass' if diff >= bar else 'FAIL'}")
    print("  -> " + ("confirmed" if ok else "not confirmed"), flush=True)


if __name__ == "__main__":
    main()
