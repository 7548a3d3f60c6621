"""Why the thinking block reads a standardised tower: its summary path alone against a linear probe, on dev data.

    python -m bench.accuracy.summary_readout --tower-cache /work/cache/tower --json bench/results/summary_readout.json

The RAVDESS development speakers only (01-13; 14-16 are the reported held-out split and are never
loaded), four speaker folds. Features: the frozen Whisper tower's output as the coat-tiny training
cache holds it (``edge_coat.train.towercache``: clean, telephone and room variants), so the cache
of a training run must exist (``--tower-cache``, the fingerprint of the shipped tower by default).

* ``probe``: mean and std over time of the clean variant, standardised, logistic regression (C grid),
  what the model card's frozen-Whisper+LR reference fits.
* ``summary`` rows: the model's summary path (projector 384->256, the thinking block's input
  projection, optionally the per-frame MLP, masked mean and std, LayerNorm + linear) and a linear
  classifier, trained like the model (AdamW, batches of 16 drawing a variant at random, 1,500 steps),
  on the raw tower output or on the tower output standardised with the training folds' statistics.

Reported: UA (balanced accuracy) on the clean variant of each held-out fold, averaged.
Measured 2026-12-05 (1 thread, ~12 min): probe 0.674-0.681; summary with MLP 0.606, without 0.642;
standardised with MLP 0.658, without 0.673.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from bench.common import REPO

VARIANTS = ("clean", "telephone", "room")


def load(data: Path, root: Path):
    """-> (frames per variant: lists of (T, 384) float32 tensors, labels (N,), speakers (N,))."""
    import torch

    from edge_coat.data.folder import DatasetFolder, speaker_of
    from edge_coat.experts.cache import audio_sha256

    frames: dict[str, list] = {v: [] for v in VARIANTS}
    labels, speakers = [], []
    ds = DatasetFolder(data)
    for clip in ds:
        spk = speaker_of(clip)
        if int(spk) > 13:  # held-out speakers: never read
            continue
        sha = audio_sha256(ds.load(clip))
        for i, v in enumerate(VARIANTS):
            path = root / sha[:2] / f"{sha}-{i}-{v}.npy"
            if not path.is_file():
                raise SystemExit(f"{path} is missing: train with --tower-cache {root.parent} first (the recipe does)")
            frames[v].append(torch.tensor(np.load(path).astype(np.float32)))
        labels.append(clip.label)
        speakers.append(spk)
    names = sorted(set(labels))
    return frames, np.array([names.index(s) for s in labels]), np.array(speakers)


def probe(frames, y, g, folds, c: float) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.array([np.concatenate([a.mean(0).numpy(), a.std(0).numpy()]) for a in frames["clean"]])
    out = []
    for f in folds:
        te = np.isin(g, f)
        model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000)).fit(x[~te], y[~te])
        out.append(balanced_accuracy_score(y[te], model.predict(x[te])))
    return float(np.mean(out))


def summary(frames, y, g, folds, *, mlp: bool, standardise: bool, steps: int = 1500) -> float:
    import torch
    from sklearn.metrics import balanced_accuracy_score
    from torch import nn

    class Readout(nn.Module):
        def __init__(self, shift, scale):
            super().__init__()
            self.shift, self.scale = shift, scale
            self.proj, self.inp = nn.Linear(384, 256), nn.Linear(256, 256)
            self.norm = nn.LayerNorm(256)
            self.frame = nn.Sequential(nn.Linear(256, 512), nn.GELU(), nn.Linear(512, 256)) if mlp else None
            self.out = nn.Sequential(nn.LayerNorm(512), nn.Linear(512, 256))
            self.cls = nn.Linear(256, int(y.max()) + 1)

        def forward(self, batch):
            pooled = []
            for a in batch:
                m = self.inp(self.proj((a - self.shift) / self.scale))
                if self.frame is not None:
                    m = m + self.frame(self.norm(m))
                pooled.append(torch.cat([m.mean(0), m.std(0)]))
            return self.cls(torch.relu(self.out(torch.stack(pooled))))

    out = []
    for f in folds:
        te, tr = np.where(np.isin(g, f))[0], np.where(~np.isin(g, f))[0]
        torch.manual_seed(0)
        rng = np.random.default_rng(0)
        shift, scale = torch.zeros(384), torch.ones(384)
        if standardise:  # the training folds' clean frames only
            every = torch.cat([frames["clean"][i] for i in tr])
            shift, scale = every.mean(0), every.std(0) + 1e-3
        model = Readout(shift, scale)
        opt = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.01)
        for _ in range(steps):
            idx, var = rng.choice(tr, 16), rng.integers(0, len(VARIANTS), 16)
            logits = model([frames[VARIANTS[v]][i] for i, v in zip(idx, var)])
            loss = nn.functional.cross_entropy(logits, torch.tensor(y[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            pred = model([frames["clean"][i] for i in te]).argmax(1).numpy()
        out.append(balanced_accuracy_score(y[te], pred))
    return float(np.mean(out))


def main(argv=None) -> int:
    import torch

    from edge_coat.train.report import write_json

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tower-cache", type=Path, default=Path(".cache/tower"))
    p.add_argument("--fingerprint", default="2de069510b2005d2", help="tower fingerprint (default: the shipped tower's)")
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "ravdess")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    frames, y, g = load(args.data, args.tower_cache / args.fingerprint)
    speakers = sorted(set(g))
    folds = [speakers[i::4] for i in range(4)]
    rows = {f"probe C={c}": probe(frames, y, g, folds, c) for c in (0.01, 0.1, 1.0)}
    for mlp in (True, False):
        for std in (False, True):
            t = time.time()
            name = f"summary{'' if mlp else ' no-MLP'}{' standardised' if std else ''}"
            rows[name] = summary(frames, y, g, folds, mlp=mlp, standardise=std, steps=args.steps)
            print(f"{name}: UA {rows[name]:.3f} ({time.time() - t:.0f} s)", flush=True)
    for k, v in rows.items():
        print(f"{k:32s} {v:.3f}")
    if args.json:
        write_json(args.json, {"clips": int(len(y)), "folds": [list(map(str, f)) for f in folds], "ua": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
