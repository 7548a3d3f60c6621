"""Exploration (fold A and card dumps only): per-speaker normalisation of the emotion readout's tower statistics."""
import sys
from pathlib import Path
import numpy as np
sys.path.insert(0, "docs/coat-tiny-readout-cv"); sys.path.insert(0, "docs/coat-tiny-thinking-readout"); sys.path.insert(0, ".")
sys.argv = sys.argv[:1]
import compare as cvc
from analyze import evaluate

def channel_of(d):
    ch = np.array(["clean"] * len(d["part"]), dtype=object)
    tr = np.where(d["part"] == "train")[0]
    # train rows come in (clean, telephone, room) triples per clip, in order, per source
    ch[tr] = np.array(["clean", "telephone", "room"] * (len(tr) // 3))
    ch[d["part"] == "held_out_tel"] = "telephone"
    return ch

def normalise(d, groups, mode):
    x = d["tower_stats"].astype(np.float64).copy()
    ch = channel_of(d)
    key = np.array([f"{p}|{g}|{c}" for p, g, c in zip(d["part"], groups, ch)])
    emo = d["task"] == "emotion"
    for k in np.unique(key[emo]):
        s = emo & (key == k)
        mu = x[s].mean(0)
        if mode == "mean":
            x[s] -= mu
        else:
            x[s] = (x[s] - mu) / (x[s].std(0) + 1e-3)
    out = dict(d); out["tower_norm"] = x.astype(np.float32)
    return out

for dump, run in (("a", "runs/coat-fold-a/coat"), ("card141", "docs/coat-tiny-1.4/run")):
    d = dict(np.load(f"/work/feat2/{dump}-coat.npz"))
    ans, groups = cvc.row_groups(Path(run))
    assert np.array_equal(ans, d["answer"])
    for mode in ("none", "mean", "z"):
        dd = d if mode == "none" else normalise(d, groups, mode)
        r = evaluate(dd, ("tower_stats",) if mode == "none" else ("tower_norm",))
        print(dump, mode, " ".join(f"{k}={v:.3f}" for k, v in r.items()), flush=True)
        if mode != "none":
            r = evaluate(dd, ("tower_norm",), mode="alone")
            print(dump, mode, "alone", " ".join(f"{k}={v:.3f}" for k, v in r.items()), flush=True)
