"""LoRA on the tower's top block against the frozen block, on dev clips only (README.md here).

    python docs/coat-tiny-tower-lora/probe.py RUN OUT.json [--seeds 1 2 3] [--epochs 6]

RUN: a finished coat-tiny training run (its model's tower, its split.json and run_config.json)."""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

CANDIDATES = {"emovo": ["neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised"],
              "turev": ["angry", "calm", "happy", "sad"]}
TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]


def load_rows(run: Path, model):
    """(part, corpus, task, answer, wave) of the run's train (x3 channels), val and val-telephone clips."""
    from edge_coat.data.tasks import get_task
    from edge_coat.train.augment import apply_channel
    from edge_coat.train.config import TrainConfig
    from edge_coat.train.data import load_folders, load_wave
    from edge_coat.train.pipeline import dataset_labels, task_specs

    cfg = TrainConfig.model_validate_json((run / "run_config.json").read_text())
    split = json.loads((run / "split.json").read_text())
    sources = [s for s in cfg.data if s.task in ("emotion", "events")]
    specs = task_specs(sorted({s.task for s in sources}))
    folders = load_folders(sources, {t: dataset_labels(t, spec) for t, spec in specs.items()})
    rows = []
    for src, clips in zip(sources, folders):
        corpus, spec = Path(src.path).name, get_task(src.task)
        assert "held_out" in split[src.path]
        for part in ("train", "val"):  # never held_out
            keep = set(split[src.path][part])
            for i, c in enumerate(x for x in clips if x.file in keep):
                w, ans = load_wave(c, model.max_window_seconds), spec.answer(c.label, c.meta)
                if part == "train":
                    for k, ch in enumerate(("clean", "telephone", "room")):
                        rows.append(("train", corpus, src.task, ans, apply_channel(w, ch, np.random.default_rng([0, i, k]))))
                else:
                    rows.append(("val", corpus, src.task, ans, w))
                    if corpus == "ravdess":
                        rows.append(("val_tel", corpus, src.task, ans, apply_channel(w, "telephone")))
    return rows


@torch.no_grad()  # not inference_mode: the LoRA arm back-propagates through these tensors
def cache_top_inputs(model, rows):
    """Per row: the top block's input (chunks, T', Da) float16, its attention mask and the valid output mask."""
    tower = model.adapter.model.model.audio_tower
    seen = {}

    def hook(_, args, kwargs):
        seen["h"] = (args[0] if args else kwargs["hidden_states"]).detach()
        seen["m"] = kwargs.get("attention_mask", args[1] if len(args) > 1 else None)

    handle = tower.layers[-1].register_forward_pre_hook(hook, with_kwargs=True)
    out = []
    for r in rows:
        mel, mel_mask, _ = model.frontend.chunks([r[4]])
        hidden, valid = model.adapter.encode_tower(mel, mel_mask)  # (n, T, Da), (n, T)
        out.append((seen["h"].half(), seen["m"], valid, hidden.float()))
    handle.remove()
    return out


def top(tower, h, m):
    """The top block, pooler and final norm: (n, T', Da) -> (n, T, Da)."""
    x = tower.layers[-1](h, attention_mask=m)
    x = x[0] if isinstance(x, tuple) else x
    x = tower.avg_pooler(x.permute(0, 2, 1)).permute(0, 2, 1)
    return tower.layer_norm(x)


def stats(x, valid):
    """Valid positions of a clip's chunks (n, T, Da) -> [mean, std] (2 Da,)."""
    v = x[valid]  # (T_valid, Da)
    return torch.cat([v.mean(0), v.std(0, unbiased=False)])


def main():
    import copy

    from peft import LoraConfig, inject_adapter_in_model
    from sklearn.linear_model import LogisticRegression

    from edge_coat.model.coat import CoatModel

    p = argparse.ArgumentParser()
    p.add_argument("run", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--epochs", type=int, default=6)
    a = p.parse_args()
    torch.set_num_threads(1)
    t0 = time.time()
    model = CoatModel.from_pretrained(a.run / "model")
    model.eval()
    rows = load_rows(a.run, model)
    cache = cache_top_inputs(model, rows)
    print(f"{len(rows)} rows cached in {time.time() - t0:.0f}s", flush=True)
    part = np.array([r[0] for r in rows])
    corpus = np.array([r[1] for r in rows])
    task = np.array([r[2] for r in rows])
    answer = np.array([r[3] for r in rows])
    labels = {t: list(model.config.tasks[t].labels) for t in ("emotion", "events")}
    frozen = torch.stack([stats(c[3], c[2]) for c in cache]).numpy()  # (N, 2Da)
    train = part == "train"
    mu, sd = frozen[train].mean(0), frozen[train].std(0) + 1e-6
    y = np.array([labels[t].index(a_) for t, a_ in zip(task, answer)])

    def figures(scores):  # scores: row -> logits over its task's labels
        out = {}
        for name, c, pt, t in [("RAVDESS UA", "ravdess", "val", "emotion"), ("RAVDESS tel UA", "ravdess", "val_tel", "emotion"),
                               ("EMOVO UA", "emovo", "val", "emotion"), ("TurEV UA", "turev", "val", "emotion"),
                               ("UrbanSound8K acc", "urbansound8k", "val", "events")]:
            sel = np.where((part == pt) & (corpus == c))[0]
            cand = CANDIDATES.get(c, labels[t])
            idx = [labels[t].index(x) for x in cand]
            pred = np.array(cand)[np.stack([scores[i][idx] for i in sel]).argmax(1)]
            truth = answer[sel]
            out[name] = float((pred == truth).mean()) if name.endswith("acc") else \
                float(np.mean([(pred[truth == k] == k).mean() for k in cand if (truth == k).any()]))
            out[f"n {name}"] = int(len(sel))
        out["emotion mean UA"] = float(np.mean([out["RAVDESS UA"], out["EMOVO UA"], out["TurEV UA"]]))
        return out

    result = {"rows": {k: int((part == k).sum()) for k in ("train", "val", "val_tel")}, "arms": {}}
    # reference: the 1.4 readout's fit on the frozen features
    ref = {}
    xs = (frozen - mu) / sd
    for t in labels:
        sel = train & (task == t)
        clf = LogisticRegression(C=0.1, max_iter=3000).fit(xs[sel], y[sel])
        dec = clf.decision_function(xs)
        for i in np.where(task == t)[0]:
            row = np.full(len(labels[t]), -1e9)
            row[clf.classes_] = dec[i]
            ref[i] = row
    result["arms"]["frozen + LR (C=0.1)"] = [figures(ref)]
    print("LR", result["arms"]["frozen + LR (C=0.1)"], flush=True)
    tower0 = model.adapter.model.model.audio_tower
    mu_t, sd_t = torch.tensor(mu), torch.tensor(sd)
    for arm in ("frozen", "lora"):
        result["arms"][arm] = []
        for seed in a.seeds:
            torch.manual_seed(seed)
            rng = np.random.default_rng(seed)
            tower = copy.deepcopy(tower0).float()
            for q in tower.parameters():
                q.requires_grad_(False)
            params = []
            if arm == "lora":
                block = inject_adapter_in_model(LoraConfig(r=8, lora_alpha=16, target_modules=TARGETS, lora_dropout=0.0),
                                                tower.layers[-1])
                tower.layers[-1] = block
                params += [q for n, q in block.named_parameters() if "lora_" in n]
                for q in params:
                    q.requires_grad_(True)
            heads = nn.ModuleDict({t: nn.Linear(frozen.shape[1], len(labels[t])) for t in labels})
            params += list(heads.parameters())
            opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)
            tr = np.where(train)[0]

            def feats(idx, grad):
                with torch.set_grad_enabled(grad):
                    if arm == "frozen":
                        f = torch.from_numpy(frozen[idx])
                    else:
                        f = torch.stack([stats(top(tower, cache[i][0].float(), cache[i][1]), cache[i][2]) for i in idx])
                    return (f - mu_t) / sd_t

            for epoch in range(a.epochs):
                order = rng.permutation(tr)
                total = 0.0
                for b in range(0, len(order), 32):
                    idx = order[b:b + 32]
                    f = feats(idx, True)
                    loss = 0.0
                    for t in labels:
                        m = task[idx] == t
                        if m.any():
                            loss = loss + nn.functional.cross_entropy(heads[t](f[torch.from_numpy(m)]),
                                                                      torch.from_numpy(y[idx][m]), reduction="sum")
                    loss = loss / len(idx)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    total += float(loss) * len(idx)
                print(f"{arm} seed {seed} epoch {epoch + 1}: train loss {total / len(tr):.3f} ({time.time() - t0:.0f}s)",
                      flush=True)
            ev = np.where(~train)[0]
            with torch.no_grad():
                f = feats(ev, False)
                scores = {i: heads[task[i]](f[j]).numpy() for j, i in enumerate(ev)}
            fig = figures(scores)
            result["arms"][arm].append({"seed": seed, **fig})
            print(arm, seed, fig, flush=True)
            a.out.write_text(json.dumps(result, indent=1) + "\n")
    for arm, runs in result["arms"].items():
        keys = [k for k in runs[0] if not k.startswith("n ") and k != "seed"]
        result.setdefault("mean", {})[arm] = {k: float(np.mean([r[k] for r in runs])) for k in keys}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["mean"], indent=1))


if __name__ == "__main__":
    main()
