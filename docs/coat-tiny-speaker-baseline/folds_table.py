"""Held-out figures of fold runs, per arm and their mean over folds A-C (RUN/results/*-ARM.json of
runs/coat-fold-{a,b,c}): python docs/coat-tiny-speaker-baseline/folds_table.py coat-tr coat-rela no-experts-rela"""
import json, os, sys
import numpy as np
arms = sys.argv[1:]
names = ["RAVDESS","tel","EMOVO","TurEV","angryAUC","US8K"]
means = {}
for arm in arms:
    rows = []
    for fold in "abc":
        R = f"runs/coat-fold-{fold}/results"
        def ua(pre):
            f = f"{R}/{pre}-{arm}.json"
            return json.load(open(f))["metrics"]["ua"] if os.path.exists(f) else np.nan
        f = f"{R}/emotion-{arm}.json"
        auc = json.load(open(f))["per_class"]["angry"]["auc_vs_rest"] if os.path.exists(f) else np.nan
        f = f"{R}/events-{arm}.json"
        acc = json.load(open(f))["metrics"]["accuracy"] if os.path.exists(f) else np.nan
        r = [ua("emotion"), ua("emotion-tel"), ua("emotion-emovo"), ua("emotion-turev"), auc, acc]
        rows.append(r)
        print(fold, arm, " | ".join(f"{v:.3f}" for v in r))
    means[arm] = np.nanmean(rows, 0)
    print("mean", arm, " | ".join(f"{v:.3f}" for v in means[arm]))
