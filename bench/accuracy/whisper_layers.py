"""Which Whisper block feeds the projector: a linear probe per block, on development data only.

    python -m bench.accuracy.whisper_layers --encoder runs/coat-tiny-1/whisper --json bench/results/whisper_layers.json

For each block output of the pretrained encoder (0 = after the convolutions and positions, i = after
block i), clips are encoded the way coat-tiny 1.0 encodes them (2 s chunks, real length), pooled as
mean and std over time, standardised, and classified by logistic regression (C=0.1) with
speaker-grouped (RAVDESS, emotion) or recording-grouped (UrbanSound8K, sound classes) 4-fold
cross-validation. Only development groups take part: RAVDESS speakers 01-13 (14-16 are the reported
held-out split) and UrbanSound8K recordings outside ``--us8k-holdout``. Prints UA per block.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np

from bench.common import REPO


def block_features(encoder, extractor, wave: np.ndarray, chunk_s: float) -> np.ndarray:
    """(blocks + 1, 2 * D): mean and std over time of every block's output, 2 s chunks concatenated."""
    import torch

    from edge_coat.model.whisper import block_outputs

    n, cs = wave.shape[0], int(chunk_s * 16_000)
    outs: list[list] = [[] for _ in range(len(encoder.layers) + 1)]
    for start in range(0, n, cs):
        chunk = wave[start:start + cs]
        if chunk.shape[0] < 1600 and start > 0:
            break
        mel = extractor(chunk, sampling_rate=16_000, return_tensors="pt", padding="longest")["input_features"]
        mel = mel[..., : (mel.shape[-1] // 2) * 2]  # (1, n_mels, F) even
        with torch.no_grad():
            for i, h in enumerate(block_outputs(encoder, mel)):
                outs[i].append(h)
    return np.stack([np.concatenate([torch.cat(o).mean(0).numpy(), torch.cat(o).std(0).numpy()]) for o in outs])


def probe(x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import GroupKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    pred = cross_val_predict(clf, x, y, groups=groups, cv=GroupKFold(4))
    return float(balanced_accuracy_score(y, pred))


def main(argv=None) -> int:
    import torch
    from transformers import WhisperFeatureExtractor

    from edge_coat.data.folder import load_audio
    from edge_coat.model.whisper import load_encoder
    from edge_coat.train.report import format_table, write_json

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--encoder", required=True, help="folder written by edge-coat models import-whisper")
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    p.add_argument("--us8k-holdout", help="held-out UrbanSound8K recordings (file of fsIDs) to leave out")
    p.add_argument("--chunk-seconds", type=float, default=2.0)
    p.add_argument("--json", dest="json_out", default=str(REPO / "bench" / "results" / "whisper_layers.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    encoder = load_encoder(args.encoder)
    extractor = WhisperFeatureExtractor(feature_size=encoder.config.num_mel_bins)
    held = set()
    if args.us8k_holdout:
        held = {s.strip() for s in Path(args.us8k_holdout).read_text().replace(",", "\n").split() if s.strip()}
    sets = {
        "ravdess emotion (speakers 01-13)": ("ravdess", lambda r: r["speaker"] if int(r["speaker"]) <= 13 else None),
        "urbansound8k classes (dev recordings)": (
            "urbansound8k", lambda r: (r["file"].split("-")[0] if r["file"].split("-")[0] not in held else None)),
    }
    results, rows = {}, []
    for name, (folder, group_of) in sets.items():
        root = Path(args.data) / folder
        clips = [(r, group_of(r)) for r in csv.DictReader(open(root / "labels.csv"))]
        clips = [(r, g) for r, g in clips if g is not None]
        t0 = time.time()
        x = np.stack([block_features(encoder, extractor, load_audio(root / r["file"])[: 10 * 16_000], args.chunk_seconds)
                      for r, _ in clips])  # (N, blocks + 1, 2D)
        y = np.array([r["label"] for r, _ in clips])
        g = np.array([g for _, g in clips])
        ua = [probe(x[:, b], y, g) for b in range(x.shape[1])]
        results[name] = {"n": len(clips), "ua_per_block": ua, "seconds": time.time() - t0}
        rows.append([name, len(clips)] + ua)
    print(format_table(["set", "n"] + [f"block {b}" for b in range(len(encoder.layers) + 1)], rows))
    write_json(Path(args.json_out), {"encoder": args.encoder, "chunk_seconds": args.chunk_seconds, "results": results})
    print(f"wrote {args.json_out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
