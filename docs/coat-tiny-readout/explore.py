"""Exploration: LR readout on the model's thinking latents (train split) vs the LLM's answers, held-out."""
import json, sys, time
import numpy as np, torch
from pathlib import Path
from edge_coat.data.folder import DatasetFolder
from edge_coat.train.data import load_wave
from edge_coat.model.coat import CoatModel
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, accuracy_score
torch.set_num_threads(1)
run, which = sys.argv[1], sys.argv[2]  # run dir, model name (coat / no-experts)
split = json.load(open(f"{run}/{which}/split.json"))
m = CoatModel.from_pretrained(f"{run}/{which}/model"); m.eval()
T = m.config.temperature
out = {}
for corpus, task in [("ravdess", "emotion"), ("urbansound8k", "events"), ("emovo", "emotion"), ("turev", "emotion")]:
    key = f"../shared/data/{corpus}"
    folder = DatasetFolder(key, check_audio=False)
    by = {c.file: c for c in folder}
    labels = list(m.config.tasks[task].labels)
    sets = {}
    for part in ("train", "held_out"):
        clips = [by[f] for f in split[key][part] if by[f].label in labels]
        cand = sorted({c.label for c in clips}) if corpus != "ravdess" and corpus != "urbansound8k" else labels
        feats, lps, ys, tw, sm, pj = [], [], [], [], [], []
        for i in range(0, len(clips), 16):
            b = clips[i:i+16]
            waves = [load_wave(c, m.max_window_seconds) for c in b]
            r = m.score_labels(waves, m.config.tasks[task].prompt, cand)
            th = r.thinking  # (B,K,D)
            with torch.no_grad():
                h, mk = m.encode_tower(waves); w = mk.float()[..., None]; n = w.sum(1)
                mu = (h * w).sum(1) / n; sd = (((h - mu[:, None]) ** 2 * w).sum(1) / n).sqrt()
                a, am = m.encode(waves); fr = m.thinking.summary.frames(m.thinking.in_proj(a.to(m.thinking.dtype)))
                sv = m.thinking.summary.pool(fr, am)
                wa = am.float()[..., None]; na = wa.sum(1); pm = (a * wa).sum(1) / na; ps = (((a - pm[:, None]) ** 2 * wa).sum(1) / na).sqrt()
                pj.append(torch.cat([pm, ps], -1).numpy())
            tw.append(torch.cat([mu, sd], -1).numpy()); sm.append(sv.numpy())
            feats.append(np.concatenate([th.mean(1), th.std(1)], -1)); lps.append(r.logprobs); ys += [c.label for c in b]
        sets[part] = (np.concatenate(feats), np.concatenate(lps), np.array(ys), cand, np.concatenate(tw), np.concatenate(sm), np.concatenate(pj))
    Xtr, Ltr, ytr, cand, TWtr, SMtr, PJtr = sets["train"]; Xte, Lte, yte, cand_te, TWte, SMte, PJte = sets["held_out"]
    feat_sets = {"mean": (Xtr[:, :Xtr.shape[1] // 2], Xte[:, :Xtr.shape[1] // 2]), "meanstd": (Xtr, Xte), "tower": (TWtr, TWte), "summary": (SMtr, SMte), "proj": (PJtr, PJte)}
    cand = cand_te
    res = {"n_train": len(ytr), "n_test": len(yte)}
    llm_pred = np.array(cand)[Lte.argmax(1)]
    res["llm_ua"] = balanced_accuracy_score(yte, llm_pred); res["llm_acc"] = accuracy_score(yte, llm_pred)
    D = Xtr.shape[1] // 2
    for name, (A, B) in feat_sets.items():
        if name in ("mean", "meanstd"): continue
        for C in (0.1,):
            clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=3000)).fit(A, ytr)
            P = clf.predict_proba(B); cls = list(clf.classes_)
            idx = [cls.index(c) for c in cand]
            pr = np.array(cand)[P[:, idx].argmax(1)]
            res[f"lr_{name}_C{C}_ua"] = balanced_accuracy_score(yte, pr)
            fused = np.log(P[:, idx] + 1e-9) + torch.log_softmax(torch.tensor(Lte / T), -1).numpy()
            res[f"fuse_{name}_C{C}_ua"] = balanced_accuracy_score(yte, np.array(cand)[fused.argmax(1)])
            if corpus == "urbansound8k":
                res[f"lr_{name}_C{C}_acc"] = accuracy_score(yte, pr); res[f"fuse_{name}_C{C}_acc"] = accuracy_score(yte, np.array(cand)[fused.argmax(1)])
    out[corpus] = res
    print(corpus, json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in res.items()}), flush=True)
json.dump(out, open(f"/work/wb/readout-{Path(run).name}-{which}.json", "w"), indent=1)
