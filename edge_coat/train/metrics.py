"""Evaluation metrics: classification (accuracy, UA, macro F1, confusion) and anomaly (ROC AUC, pAUC).

Conventions, used everywhere in the project's reports:

* **UA** (unweighted average recall) is the mean of the per-class recalls over the classes that
  occur in the ground truth (sklearn's ``balanced_accuracy_score``). Chance is ``1 / n_classes``.
* **macro F1** averages the F1 of the same classes (those with support > 0). A class that only
  appears among the predictions still costs precision of nothing, but its false positives lower the
  recall of the classes they were taken from.
* **pAUC** (FPR <= ``max_fpr``) is the *raw* partial area under the ROC curve from FPR 0 to
  ``max_fpr`` divided by ``max_fpr`` (the definition in the DCASE task-2 descriptions: a random
  scorer gets ``max_fpr / 2``, a perfect one 1.0). It is NOT sklearn's ``roc_auc_score(max_fpr=...)``,
  which applies the McClish standardisation (random -> 0.5); that value is reported beside it as
  ``pauc_mcclish`` so the two are never confused.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def classification_metrics(
    y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]
) -> tuple[dict, dict[str, dict]]:
    """Metrics of predicted vs true labels.

    ``labels``: the label set (its order is the confusion matrix's row/column order). Every true and
    predicted label must be in it. Returns ``(metrics, per_class)``: ``metrics`` holds ``accuracy``,
    ``ua``, ``macro_f1``, ``labels`` and ``confusion`` (rows = true, columns = predicted, counts);
    ``per_class[label]`` holds ``precision``, ``recall``, ``f1``, ``support``.
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    labels = list(labels)
    y_true, y_pred = list(y_true), list(y_pred)
    if len(y_true) != len(y_pred):
        raise ValueError(f"expected as many predictions as truths, got {len(y_pred)} vs {len(y_true)}")
    if not y_true:
        raise ValueError("expected at least one example to score, got none")
    unknown = sorted(set(y_true) - set(labels)) + sorted(set(y_pred) - set(labels))
    if unknown:
        raise ValueError(f"labels {sorted(set(unknown))} are not in the label set {labels}")
    present = [lab for lab in labels if lab in set(y_true)]
    prec, rec, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )  # each (C,)
    conf = confusion_matrix(y_true, y_pred, labels=labels)  # (C, C)
    idx = [labels.index(lab) for lab in present]
    metrics = {
        "accuracy": float(np.mean([t == p for t, p in zip(y_true, y_pred)])),
        "ua": float(np.mean(rec[idx])),
        "macro_f1": float(np.mean(f1[idx])),
        "labels": labels,
        "confusion": conf.astype(int).tolist(),
    }
    per_class = {
        lab: {
            "precision": float(prec[i]),
            "recall": float(rec[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, lab in enumerate(labels)
    }
    return metrics, per_class


def _resampled(t: np.ndarray, correct: np.ndarray, idx: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy and UA (R,) of each resample: t (N,) true class indices < k, correct (N,) 0/1, idx (R, N)."""
    r = idx.shape[0]
    acc = correct[idx].mean(1)  # (R,)
    offsets = (np.arange(r)[:, None] * k + t[idx]).ravel()  # one bin per (resample, class)
    hits = np.bincount(offsets, weights=correct[idx].ravel(), minlength=r * k).reshape(r, k)
    counts = np.bincount(offsets, minlength=r * k).reshape(r, k)
    with np.errstate(invalid="ignore", divide="ignore"):
        ua = np.nanmean(np.where(counts > 0, hits / np.maximum(counts, 1), np.nan), 1)  # (R,)
    return acc, ua


def _draws(n: int, resamples: int, seed: int, level: float) -> np.ndarray:
    """(R, N) clip indices of ``resamples`` draws with replacement, after checking the arguments."""
    if resamples < 1 or not 0.0 < level < 1.0:
        raise ValueError(f"expected resamples >= 1 and 0 < level < 1, got {resamples} and {level}")
    if n == 0:
        raise ValueError("expected at least one example to resample, got none")
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))  # (R, N)


def _scored(y_true: Sequence[str], *preds: Sequence[str]) -> tuple[np.ndarray, int, list[np.ndarray]]:
    """(true class indices (N,), number of classes, each prediction's 0/1 correctness (N,))."""
    classes = sorted(set(y_true))
    t = np.array([classes.index(v) for v in y_true])
    return t, len(classes), [np.array([a == b for a, b in zip(y_true, p)], dtype=np.float64) for p in preds]


def bootstrap_intervals(y_true: Sequence[str], y_pred: Sequence[str], resamples: int = 1000, seed: int = 0,
                        level: float = 0.95) -> dict[str, list[float]]:
    """Percentile intervals of accuracy and UA over the clips resampled with replacement (seeded, so a rerun
    gives the same interval): ``{"accuracy": [lo, hi], "ua": [lo, hi]}``.

    The unit is the clip. Clips of one speaker are correlated, so with a few held-out speakers this interval is
    narrower than a speaker-level one would be (too few speakers to resample them); it bounds the sampling noise
    of the clips, not the choice of speakers. UA in a resample averages the recall of the classes present in it."""
    idx = _draws(len(y_true), resamples, seed, level)
    t, k, (correct,) = _scored(y_true, y_pred)
    acc, ua = _resampled(t, correct, idx, k)
    q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
    return {"accuracy": [float(v) for v in np.percentile(acc, q)], "ua": [float(v) for v in np.percentile(ua, q)]}


def paired_bootstrap(y_true: Sequence[str], pred_a: Sequence[str], pred_b: Sequence[str], resamples: int = 1000,
                     seed: int = 0, level: float = 0.95) -> dict[str, dict]:
    """A minus B on the same clips, each resample drawing the same clips for both: ``{"accuracy": {"diff",
    "ci95"}, "ua": {...}}``. Pairing removes the clips' shared difficulty, so the interval of a difference is
    much narrower than the two unpaired intervals suggest (same caveat on speakers as ``bootstrap_intervals``)."""
    if not len(y_true) == len(pred_a) == len(pred_b):
        raise ValueError(f"expected as many predictions as truths, got {len(pred_a)} and {len(pred_b)} for {len(y_true)}")
    idx = _draws(len(y_true), resamples, seed, level)
    t, k, (ca, cb) = _scored(y_true, pred_a, pred_b)
    every = np.arange(len(t))[None]  # (1, N): the clips as they are, for the point difference
    q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
    point = np.subtract(_resampled(t, ca, every, k), _resampled(t, cb, every, k))[:, 0]  # (2,): accuracy, UA
    diff = np.subtract(_resampled(t, ca, idx, k), _resampled(t, cb, idx, k))  # (2, R)
    return {key: {"diff": float(point[j]), "ci95": [float(v) for v in np.percentile(diff[j], q)]}
            for j, key in enumerate(("accuracy", "ua"))}


def partial_auc(y_true: Sequence[int], scores: Sequence[float], max_fpr: float = 0.1) -> float:
    """Raw area under the ROC curve for FPR in [0, max_fpr], divided by ``max_fpr`` (DCASE pAUC).

    The ROC curve is interpolated linearly at ``max_fpr``. 1.0 = perfect, ``max_fpr / 2`` = random.
    """
    from sklearn.metrics import auc, roc_curve

    if not 0.0 < max_fpr <= 1.0:
        raise ValueError(f"max_fpr must be in (0, 1], got {max_fpr}")
    fpr, tpr, _ = roc_curve(np.asarray(y_true), np.asarray(scores, dtype=np.float64))
    stop = int(np.searchsorted(fpr, max_fpr, side="right"))
    x = np.concatenate([fpr[:stop], [max_fpr]])
    y = np.concatenate([tpr[:stop], [np.interp(max_fpr, fpr, tpr)]])
    return float(auc(x, y) / max_fpr)


def anomaly_metrics(y_true: Sequence[int], scores: Sequence[float], max_fpr: float = 0.1) -> dict:
    """ROC AUC and pAUC of anomaly scores (higher = more abnormal); ``y_true`` is 1 for abnormal.

    Returns ``auc``, ``pauc`` (raw partial area / max_fpr, see the module doc), ``pauc_mcclish``
    (sklearn's standardised value) and ``max_fpr``.
    """
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y_true).astype(int)  # (N,)
    s = np.asarray(scores, dtype=np.float64)  # (N,)
    if y.shape != s.shape or y.ndim != 1:
        raise ValueError(f"expected y_true and scores of the same 1-D shape, got {y.shape} and {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError("anomaly scores contain NaN or inf")
    if set(np.unique(y).tolist()) != {0, 1}:
        raise ValueError(
            f"anomaly metrics need both normal (0) and abnormal (1) test clips, got classes {sorted(set(y.tolist()))}"
        )
    return {
        "auc": float(roc_auc_score(y, s)),
        "pauc": partial_auc(y, s, max_fpr),
        "pauc_mcclish": float(roc_auc_score(y, s, max_fpr=max_fpr)),
        "max_fpr": float(max_fpr),
    }


def pairs_from_confusion(labels: Sequence[str], confusion: Sequence[Sequence[int]]) -> tuple[list[str], list[str]]:
    """(y_true, y_pred) that give ``confusion`` (rows true, columns predicted): an eval JSON's clips, unordered."""
    y_true, y_pred = [], []
    for a, row in zip(labels, confusion):
        for b, n in zip(labels, row):
            y_true += [a] * int(n)
            y_pred += [b] * int(n)
    return y_true, y_pred


def read_paired(labels_csv: str, a_csv: str, b_csv: str) -> tuple[list[str], list[str], list[str]]:
    """(truth, predictions of A, predictions of B) over the clips both prediction files hold (``edge-coat eval
    --predictions``: file, prediction, score), the truth from a dataset's ``labels.csv``. Refuses files that
    scored different clips, or clips the labels do not know."""
    import csv

    with open(labels_csv, newline="", encoding="utf-8") as f:
        truth = {r["file"]: r["label"] for r in csv.DictReader(f)}
    preds = []
    for path in (a_csv, b_csv):
        with open(path, newline="", encoding="utf-8") as f:
            preds.append({r["file"]: r["prediction"] for r in csv.DictReader(f)})
    if set(preds[0]) != set(preds[1]):
        raise ValueError(f"{a_csv} and {b_csv} scored different clips ({len(preds[0])} and {len(preds[1])}): "
                         "evaluate both on the same data and holdout")
    unknown = sorted(set(preds[0]) - set(truth))
    if unknown or not preds[0]:
        raise ValueError(f"{labels_csv} has no label for {len(unknown)} of the clips (e.g. {unknown[:1]})"
                         if unknown else f"{a_csv} holds no predictions")
    files = sorted(preds[0])
    return [truth[f] for f in files], [preds[0][f] for f in files], [preds[1][f] for f in files]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m edge_coat.train.metrics RESULT.json ...``: the 95 % clip-bootstrap intervals of accuracy and UA
    of classification results written by ``edge-coat eval --json`` (rebuilt from their confusion matrices, so
    results written before the intervals existed get them too). ``--paired LABELS.csv A.csv B.csv``: the
    difference A - B on the same clips with its paired interval, from two ``edge-coat eval --predictions`` files
    (compares label strings, so the dataset's labels must be the model's, as for RAVDESS and UrbanSound8K)."""
    import argparse
    import json
    import sys

    p = argparse.ArgumentParser(prog="python -m edge_coat.train.metrics", description=main.__doc__.split("\n")[0])
    p.add_argument("results", nargs="*", help="edge-coat eval --json files (emotion or events)")
    p.add_argument("--paired", nargs=3, metavar=("LABELS", "A", "B"),
                   help="a dataset's labels.csv and two edge-coat eval --predictions files of the same clips")
    p.add_argument("--resamples", type=int, default=1000)
    args = p.parse_args(argv)
    if not args.results and not args.paired:
        p.error("give eval results (JSON) or --paired LABELS A B")
    rc = 0
    if args.paired:
        try:
            truth, a, b = read_paired(*args.paired)
            d = paired_bootstrap(truth, a, b, resamples=args.resamples)
        except KeyError as exc:
            print(f"--paired: a CSV lacks the column {exc} (labels.csv needs file,label; eval --predictions files "
                  "file,prediction,score)", file=sys.stderr)
            return 2
        except (OSError, ValueError) as exc:
            print(f"--paired: {exc}", file=sys.stderr)
            return 2
        print(f"A - B on {len(truth)} clips: accuracy {d['accuracy']['diff']:+.3f} "
              f"[{d['accuracy']['ci95'][0]:+.3f} to {d['accuracy']['ci95'][1]:+.3f}], UA {d['ua']['diff']:+.3f} "
              f"[{d['ua']['ci95'][0]:+.3f} to {d['ua']['ci95'][1]:+.3f}] (A {args.paired[1]}, B {args.paired[2]})")
    for path in args.results:
        try:
            m = json.loads(open(path, encoding="utf-8").read())["metrics"]
            y_true, y_pred = pairs_from_confusion(m["labels"], m["confusion"])
            ci = bootstrap_intervals(y_true, y_pred, resamples=args.resamples)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            print(f"{path}: not a classification result of edge-coat eval ({exc.__class__.__name__}: {exc})",
                  file=sys.stderr)
            rc = 2
            continue
        print(f"{path}: n {len(y_true)}, accuracy {m['accuracy']:.3f} [{ci['accuracy'][0]:.3f}-{ci['accuracy'][1]:.3f}], "
              f"UA {m['ua']:.3f} [{ci['ua'][0]:.3f}-{ci['ua'][1]:.3f}]")
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
