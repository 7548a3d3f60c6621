"""Exploration (README.md section 3): the desk baseline on the four development folds, in the corpora's own
languages. Dumps of ``docs/coat-tiny-short-windows`` / ``docs/coat-tiny-readout-cv`` (fold A draw 0, folds B and C,
the card split), 1.5's fusion (``analyze.evaluate``, the tower statistics, C = 0.1, fused temperature on the
validation rows).

    python docs/coat-tiny-corpus-norm/explore_folds.py A.npz B.npz C.npz CARD.npz

Emotion rows read their tower statistics less a baseline of the same corpus and channel:
- "training mean": the mean of the training rows of that corpus and channel (a held-out row's baseline holds no
  held-out clip: the desk has heard only other callers);
- "own part": the mean of the rows of the row's own part (train, val, held-out clean or telephone) and corpus.
Events rows are unchanged."""
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
for sub in ("docs/coat-tiny-thinking-readout", "."):
    sys.path.insert(0, str(ROOT / sub))
import analyze  # noqa: E402

NAMES = [n for _, _, n in analyze.FIGURES]
CHANNEL_OF_PART = {"held_out": "clean", "held_out_tel": "telephone", "val": "clean"}


def channels(d):
    if "channel" in d:
        ch = d["channel"].astype(object)
    else:  # folds B and C: four training rows per clip, clean, telephone, room, excerpt (extract.py --train-channels)
        ch = np.array([""] * len(d["part"]), dtype=object)
        tr = np.flatnonzero(d["part"] == "train")
        assert len(tr) % 4 == 0 and (d["answer"][tr][0::4] == d["answer"][tr][3::4]).all()
        ch[tr] = np.array(["clean", "telephone", "room", "excerpt"] * (len(tr) // 4))
    held = ch == ""
    ch[held] = [CHANNEL_OF_PART.get(p, "clean") for p in d["part"][held]]
    return ch


def load(path):
    d = dict(np.load(path))
    ch = channels(d)
    keep = np.isin(d["part"], ["train", "val", "held_out", "held_out_tel"]) & (ch != "excerpt")
    d = {k: (v[keep] if np.ndim(v) and v.shape[0] == len(keep) else v) for k, v in d.items()}
    d["channel"] = ch[keep]
    return d


def normalised(d, how):
    x0 = d["tower_stats"].astype(np.float64)
    x = x0.copy()
    emo = d["task"] == "emotion"
    train = emo & (d["part"] == "train")
    for corpus in np.unique(d["corpus"][emo]):
        for ch in np.unique(d["channel"][emo]):
            tr = train & (d["corpus"] == corpus) & (d["channel"] == ch)
            for part in ("train", "val", "held_out", "held_out_tel"):
                rows = emo & (d["corpus"] == corpus) & (d["channel"] == ch) & (d["part"] == part)
                if not rows.any():
                    continue
                if how == "training mean":
                    if not tr.any():
                        raise ValueError(f"no training rows of {corpus} on {ch}")
                    x[rows] -= x0[tr].mean(0)
                else:
                    x[rows] -= x0[rows].mean(0)
    out = dict(d)
    out["tower_stats"] = x.astype(np.float32)
    out["absolute"] = np.where(emo[:, None], x0, 0).astype(np.float32)  # events rows: read once (zeros beside)
    return out


def main():
    names = ["A", "B", "C", "card"]
    arms = ["1.5 readout", "desk: training mean", "desk: own part", "absolute + desk: training mean"]
    res = {a: [] for a in arms}
    res["LLM alone"] = []
    for name, path in zip(names, sys.argv[1:5]):
        d = load(path)
        res["LLM alone"].append(analyze.evaluate(d, None))
        res["1.5 readout"].append(analyze.evaluate(d, ("tower_stats",)))
        for how in ("training mean", "own part"):
            res[f"desk: {how}"].append(analyze.evaluate(normalised(d, how), ("tower_stats",)))
        res["absolute + desk: training mean"].append(
            analyze.evaluate(normalised(d, "training mean"), ("absolute", "tower_stats")))
    print("| fold / readout | " + " | ".join(NAMES) + " |")
    print("|---|" + "---|" * len(NAMES))
    for i, fold in enumerate(names):
        for a in res:
            print(f"| {fold} {a} | " + " | ".join(f"{res[a][i].get(n, float('nan')):.3f}" for n in NAMES) + " |")
    for a in res:
        m = [np.mean([r[n] for r in res[a]]) for n in NAMES]
        print(f"| **mean** {a} | " + " | ".join(f"{v:.3f}" for v in m) + " |")


if __name__ == "__main__":
    main()
