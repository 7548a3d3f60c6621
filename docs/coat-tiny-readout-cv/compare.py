"""The rule of README.md: the readout's C per task by speaker-grouped cross-validation against C = 0.1.

    python docs/coat-tiny-readout-cv/compare.py [FEAT3_DIR] [FEAT2_DIR]

FEAT3_DIR: {b,c}-coat-aug{0,1,2}.npz, dumps of runs/coat-fold-{b,c}/coat; FEAT2_DIR: {a,card141}-coat.npz
(runs/coat-fold-a/coat and docs/coat-tiny-1.4/run), printed beside. The dumps hold no clip names, so each row's
group is rebuilt from its run's split in extract.py's row order, and checked against the dumped answers."""
import json
import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import GroupKFold

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "docs" / "coat-tiny-thinking-readout"))
sys.path.insert(0, str(ROOT))
from analyze import FIGURES, evaluate  # noqa: E402

NAMES = [n for _, _, n in FIGURES]
CS = [0.01, 0.03, 0.1, 0.3, 1.0]
BARS = {"RAVDESS UA": 0.0, "telephone UA": -1.0, "EMOVO UA": -1.0, "TurEV UA": -1.0, "angry AUC": -0.5,
        "UrbanSound8K acc": -1.9}
RUNS = {"b": "runs/coat-fold-b/coat", "c": "runs/coat-fold-c/coat", "a": "runs/coat-fold-a/coat",
        "card141": "docs/coat-tiny-1.4/run"}


def row_groups(run: Path) -> tuple[np.ndarray, np.ndarray]:
    """(answer, group) per row of extract.py's dump of ``run``, in its order (train x 3 channels, val, held_out and
    the held-out RAVDESS telephone rows)."""
    from edge_coat.data.tasks import get_task
    from edge_coat.train.config import TrainConfig
    from edge_coat.train.data import group_of, load_folders
    from edge_coat.train.pipeline import dataset_labels, task_specs

    cfg = TrainConfig.model_validate_json((run / "run_config.json").read_text())
    split = json.loads((run / "split.json").read_text())
    sources = [s for s in cfg.data if s.task in ("emotion", "events")]
    specs = task_specs(sorted({s.task for s in sources}))
    folders = load_folders(sources, {t: dataset_labels(t, spec) for t, spec in specs.items()})
    answers, groups = [], []
    for src, clips in zip(sources, folders):
        corpus, spec = Path(src.path).name, get_task(src.task)
        for part in ("train", "val", "held_out"):
            keep = set(split[src.path][part])
            for c in (x for x in clips if x.file in keep):
                n = 3 if part == "train" else 2 if (part == "held_out" and corpus == "ravdess") else 1
                answers += [spec.answer(c.label, c.meta)] * n
                groups += [f"{corpus}/{group_of(c)}"] * n
    return np.array(answers), np.array(groups)


def cv_fitter(groups: np.ndarray, chosen: dict):
    def fit(task, x, y, rows):
        g = groups[rows]
        folds = list(GroupKFold(n_splits=3).split(x, y, g))
        clf = LogisticRegressionCV(Cs=CS, cv=folds, scoring="neg_log_loss", max_iter=3000, l1_ratios=(0.0,),
                                   use_legacy_attributes=False).fit(x, y)
        chosen[task] = float(clf.C_)
        return clf
    return fit


def run_dump(path: Path, run: Path):
    d = dict(np.load(path))
    answers, groups = row_groups(ROOT / run)
    assert len(answers) == len(d["answer"]) and np.array_equal(answers, d["answer"]), f"{path}: rows do not match {run}"
    chosen = {}
    return evaluate(d, ("tower_stats",)), evaluate(d, ("tower_stats",), fit_clf=cv_fitter(groups, chosen)), chosen


def line(label, r):
    print(f"| {label} | " + " | ".join(f"{r[n]:.3f}" for n in NAMES) + " |", flush=True)


def mean(rows):
    return {n: float(np.mean([r[n] for r in rows])) for n in NAMES}


def main():
    feat3 = Path(sys.argv[1] if len(sys.argv) > 1 else "/work/feat3")
    feat2 = Path(sys.argv[2] if len(sys.argv) > 2 else "/work/feat2")
    print("| dump / readout | " + " | ".join(NAMES) + " |")
    print("|---|" + "---|" * len(NAMES))
    per_fold = {}
    for fold in "bc":
        refs, cands = [], []
        for i in range(3):
            ref, cand, chosen = run_dump(feat3 / f"{fold}-coat-aug{i}.npz", Path(RUNS[fold]))
            line(f"{fold} draw {i}, C = 0.1", ref)
            line(f"{fold} draw {i}, cross-validated C (emotion {chosen['emotion']}, events {chosen['events']})", cand)
            refs.append(ref)
            cands.append(cand)
        per_fold[fold] = (mean(refs), mean(cands))
    ref = mean([per_fold[f][0] for f in "bc"])
    cand = mean([per_fold[f][1] for f in "bc"])
    line("**B+C** C = 0.1", ref)
    line("**B+C** cross-validated C", cand)
    ok = True
    print("\nrule (B+C mean, candidate minus reference, points):")
    for n, bar in BARS.items():
        diff = 100 * (cand[n] - ref[n])
        ok &= diff >= bar
        print(f"  {n}: {diff:+.1f} (bar {bar:+.1f}) {'pass' if diff >= bar else 'FAIL'}")
    print("  -> " + ("adopt" if ok else "not adopted"), flush=True)
    print("\nbeside, not counted:")
    for dump in ("a", "card141"):
        if (feat2 / f"{dump}-coat.npz").is_file():
            ref, cand, chosen = run_dump(feat2 / f"{dump}-coat.npz", Path(RUNS[dump]))
            line(f"{dump} C = 0.1", ref)
            line(f"{dump} cross-validated C (emotion {chosen['emotion']}, events {chosen['events']})", cand)


if __name__ == "__main__":
    main()
