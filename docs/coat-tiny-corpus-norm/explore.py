"""Exploration (README.md section 2): the emotion readout on tower statistics less the mean of their corpus and
channel ("a desk's long-run baseline"), leave-one-corpus-out, fused with the LOCO models' own LLM answers.

    python docs/coat-tiny-corpus-norm/explore.py [FEATS.npz] [RW_DIR] [RUNS_DIR]

FEATS: ``feats.py``'s rows; RW_DIR: ``docs/coat-tiny-readout-weight/dump.py``'s per-corpus LLM answers (``lp``, the
held-out corpus in clip order); RUNS_DIR: the LOCO runs (their ``split.json`` names the readout's training clips)."""
import json
import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

CORPORA = ("ravdess", "emovo", "turev")
C = 0.1
CALM = {"neutral", "calm"}


def ua(y, pred):
    return float(np.mean([np.mean(pred[y == k] == k) for k in np.unique(y)]))


def fit(x, y):
    sc = StandardScaler().fit(x)
    lr = LogisticRegression(C=C, max_iter=2000).fit(sc.transform(x), y)
    return sc, lr


def log_probs(model, x, labels):
    sc, lr = model
    logits = lr.decision_function(sc.transform(x))
    idx = [list(lr.classes_).index(k) for k in labels]
    z = logits[:, idx]
    return z - np.log(np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True)) - z.max(1, keepdims=True)


def group_center(x, mask):
    return x[mask].mean(0)


def main():
    feats = np.load(sys.argv[1] if len(sys.argv) > 1 else "/work/cn/feats.npz")
    rw = Path(sys.argv[2] if len(sys.argv) > 2 else "/work/rw")
    runs = Path(sys.argv[3] if len(sys.argv) > 3 else "runs/coat-card-loco")
    x = feats["stats"].astype(np.float64)
    corpus, channel, answer, file = feats["corpus"], feats["channel"], feats["answer"], feats["clip"]
    rows = []
    for held in CORPORA:
        d = np.load(rw / f"{held}.npz")
        labels = list(d["labels"])
        test = np.flatnonzero((corpus == held) & (channel == "clean"))
        assert (answer[test] == d["answer"]).all(), f"{held}: rows are not in the dump's clip order"
        y = answer[test]
        split = json.loads((runs / f"loco-{held}" / "split.json").read_text())
        train_files = {(Path(p).name, f) for p, v in split.items() for f in v["train"]}
        train = np.array([i for i in np.flatnonzero(corpus != held) if (corpus[i], file[i]) in train_files])
        # the baselines: every (corpus, channel) group's mean over its training rows; the held-out corpus's over its
        # own clean rows (all of them, or only its neutral and calm ones, or 50 drawn at random)
        xt = x[train].copy()
        for key in {(corpus[i], channel[i]) for i in train}:
            m = (corpus[train] == key[0]) & (channel[train] == key[1])
            xt[m] -= xt[m].mean(0)
        calm = test[np.isin(answer[test], list(CALM))]
        rng = np.random.default_rng(0)
        bases = {"all": x[test].mean(0), "calm only": x[calm].mean(0),
                 "50 random": x[rng.choice(test, 50, replace=False)].mean(0)}
        m_abs = fit(x[train], answer[train])
        m_rel = fit(xt, answer[train])
        m_both = fit(np.concatenate([x[train], xt], 1), answer[train])
        lp = d["lp"]
        res = {"LLM alone": ua(y, np.array(labels)[lp.argmax(1)])}
        ro = log_probs(m_abs, x[test], labels)
        res["readout (1.5 recipe) alone"] = ua(y, np.array(labels)[ro.argmax(1)])
        res["fused, 1.5 recipe"] = ua(y, np.array(labels)[(lp + ro).argmax(1)])
        # the LOCO model's own readout (the CLI's fit, in the dump): the row above should be near it
        res["fused, the LOCO model's own readout (check)"] = ua(y, np.array(labels)[(lp + d["ro_a"]).argmax(1)])
        for name, b in bases.items():
            ro = log_probs(m_rel, x[test] - b, labels)
            res[f"corpus baseline ({name}) alone"] = ua(y, np.array(labels)[ro.argmax(1)])
            res[f"fused, corpus baseline ({name})"] = ua(y, np.array(labels)[(lp + ro).argmax(1)])
            ro = log_probs(m_both, np.concatenate([x[test], x[test] - b], 1), labels)
            res[f"fused, absolute + corpus baseline ({name})"] = ua(y, np.array(labels)[(lp + ro).argmax(1)])
        rows.append((held, res))
    names = list(rows[0][1])
    print("| readout | " + " | ".join(h for h, _ in rows) + " | mean |")
    print("|---|" + "---|" * (len(rows) + 1))
    for n in names:
        v = [r[n] for _, r in rows]
        print(f"| {n} | " + " | ".join(f"{a:.3f}" for a in v) + f" | {np.mean(v):.3f} |")


if __name__ == "__main__":
    main()
