"""Readouts on different features, fitted and scored offline from extract.py's dumps (README.md here).

    python docs/coat-tiny-thinking-readout/analyze.py FEAT_DIR FOLD [FOLD ...]

For each fold, FEAT_DIR/FOLD-{coat,no-experts,coat-nt}.npz. Each readout: StandardScaler + LogisticRegression
(C=0.1) per task on the train rows (clean, telephone, room copies), the fused temperature fitted on the val rows,
held-out figures as `edge-coat eval` computes them (candidates per corpus, readout renormalised over them)."""
import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from edge_coat.train.trainer import fit_temperature  # noqa: E402

C = 0.1
FEATURES = {"audio": ("stats",), "audio+latents": ("stats", "lat_mean", "lat_std"),
            "audio+think": ("stats", "think_mean"), "latents": ("lat_mean", "lat_std")}
# the held-out candidates of each corpus (heldout.sh's label maps)
CANDIDATES = {"emovo": ["neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised"],
              "turev": ["angry", "calm", "happy", "sad"]}
FIGURES = [("ravdess", "held_out", "RAVDESS UA"), ("ravdess", "held_out_tel", "telephone UA"),
           ("emovo", "held_out", "EMOVO UA"), ("turev", "held_out", "TurEV UA"),
           ("ravdess", "held_out", "angry AUC"), ("urbansound8k", "held_out", "UrbanSound8K acc")]


def log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def fit_weights(lp, ro, truth):
    """(a, b) minimising the validation NLL of softmax(a * lp + b * ro): a stacking of the two opinions."""
    from scipy.optimize import minimize

    def nll(w):
        z = log_softmax(w[0] * lp + w[1] * ro)
        return -z[np.arange(len(truth)), truth].mean()

    return minimize(nll, np.array([1.0, 1.0]), method="Nelder-Mead").x


def shipped_fusion(d, task):
    """(readout logits per row over the task's labels, LLM temperature T, fused temperature T_r) of dump d as 1.5
    ships them: a logistic regression on the training rows' tower statistics, T_r fitted on the validation rows.
    The fused scores are (lp / T + log_softmax(logits)) / T_r."""
    from edge_coat.train.trainer import fit_temperature as fit_t

    labels = list(d[f"labels_{task}"])
    rows = d["task"] == task
    x = d["tower_stats"].astype(np.float64)
    fit = rows & (d["part"] == "train")
    sc = StandardScaler().fit(x[fit])
    clf = LogisticRegression(C=C, max_iter=3000).fit(sc.transform(x[fit]), d["answer"][fit])
    ro = np.full((len(x), len(labels)), -1e9)
    ro[:, [labels.index(c) for c in clf.classes_]] = clf.decision_function(sc.transform(x))
    T = float(d["temperature"])
    val = rows & (d["part"] == "val")
    yv = [labels.index(a) for a in d["answer"][val]]
    return ro, T, fit_t(list(d[f"lp_{task}"][val] / T + log_softmax(ro[val])), yv)["temperature"]


def evaluate(d, feats, mode="sum", fit_clf=None, score=None):
    """{figure: value} for the LLM of dump d fused with a readout on ``feats`` (None: the LLM alone).

    mode: "sum" (lp / T + log p_readout, the shipped fusion), "alone" (the readout alone), "stack" (weights of
    both fitted on the validation rows, fit_weights). fit_clf(task, x, y, fit_rows) -> a fitted classifier on the
    standardised training rows (default LogisticRegression(C=C)). score: another dump of the same rows whose LLM
    log-likelihoods are scored with d's readout and fused temperature (d's `--no-thinking` twin, as
    `edge-coat eval --no-thinking` serves it)."""
    out = {}
    T = float(d["temperature"])
    for task in ("emotion", "events"):
        labels = list(d[f"labels_{task}"])
        rows = d["task"] == task
        lp = d[f"lp_{task}"]
        ro_logits = None
        tr = 1.0
        if feats is not None:
            x = np.concatenate([d[k] for k in feats], 1).astype(np.float64)
            fit = rows & (d["part"] == "train")
            sc = StandardScaler().fit(x[fit])
            if fit_clf is None:
                clf = LogisticRegression(C=C, max_iter=3000).fit(sc.transform(x[fit]), d["answer"][fit])
            else:
                clf = fit_clf(task, sc.transform(x[fit]), d["answer"][fit], fit)
            cls = list(clf.classes_)
            logits = clf.decision_function(sc.transform(x))
            if logits.ndim == 1:
                logits = np.stack([np.zeros_like(logits), logits], 1)
            ro_logits = np.full((len(x), len(labels)), -1e9)
            for j, c in enumerate(cls):
                ro_logits[:, labels.index(c)] = logits[:, j]
            val = rows & (d["part"] == "val")
            z = lp[val] / T + log_softmax(ro_logits[val])
            yv = np.array([labels.index(a) for a in d["answer"][val]])
            tr = fit_temperature(list(z), list(yv))["temperature"]
            wa, wb = {"sum": (1.0, 1.0), "alone": (0.0, 1.0)}.get(mode) or fit_weights(
                lp[val] / T, log_softmax(ro_logits[val]), yv)
        if score is not None:
            lp = score[f"lp_{task}"]
        for corpus, part, name in FIGURES:
            sel = rows & (d["corpus"] == corpus) & (d["part"] == part)
            if not sel.any():
                continue
            cand = CANDIDATES.get(corpus, labels)
            idx = [labels.index(c) for c in cand]
            z = lp[sel][:, idx] / T
            if ro_logits is not None:
                z = (wa * z + wb * log_softmax(ro_logits[sel][:, idx])) / tr
            p = np.exp(log_softmax(z))
            truth = d["answer"][sel]
            pred = np.array(cand)[p.argmax(1)]
            if name.startswith("angry AUC"):
                out[name] = roc_auc_score(truth == "angry", p[:, cand.index("angry")])
            elif name.endswith("acc"):
                out[name] = float((pred == truth).mean())
            else:
                out[name] = float(np.mean([(pred[truth == c] == c).mean() for c in cand if (truth == c).any()]))
    return out


def main():
    feat_dir, folds = Path(sys.argv[1]), sys.argv[2:]
    arms = [("coat", None, "sum"), ("coat", "audio", "sum"), ("coat", "audio", "alone"), ("coat", "audio", "stack"),
            ("coat", "audio+latents", "sum"), ("coat", "audio+latents", "alone"), ("coat", "audio+latents", "stack"),
            ("coat", "audio+think", "sum"), ("coat", "latents", "sum"), ("coat", "latents", "alone"),
            ("no-experts", None, "sum"), ("no-experts", "audio", "sum"), ("no-experts", "audio", "stack"),
            ("no-experts", "audio+latents", "sum"), ("no-experts", "audio+latents", "stack"),
            ("coat-nt", None, "sum"), ("coat-nt", "audio", "sum"), ("coat-nt", "audio", "stack"),
            ("coat-nt", "audio+latents", "sum"), ("coat-nt", "audio+latents", "stack")]
    res = {}
    for fold in folds:
        dumps = {a: np.load(feat_dir / f"{fold}-{a}.npz") for a in ("coat", "no-experts", "coat-nt")
                 if (feat_dir / f"{fold}-{a}.npz").is_file()}
        for arm, feats, mode in arms:
            if arm in dumps:
                res[(fold, arm, feats, mode)] = evaluate(dumps[arm], FEATURES[feats] if feats else None, mode)
    names = [n for _, _, n in FIGURES]
    print("| arm | readout | fusion | " + " | ".join(names) + " |")
    print("|---|---|---|" + "---|" * len(names))
    for arm, feats, mode in arms:
        got = [res[(f, arm, feats, mode)] for f in folds if (f, arm, feats, mode) in res]
        if not got:
            continue
        cells = []
        for n in names:
            vals = [g[n] for g in got if n in g]
            cells.append(" / ".join(f"{v:.3f}" for v in vals) + (f" (**{np.mean(vals):.3f}**)" if len(vals) > 1 else ""))
        print(f"| {arm} | {feats or 'none'} | {mode if feats else '-'} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
