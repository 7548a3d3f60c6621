"""Step 1 of docs/coat-tiny-layer-concat: linear probes on single Whisper blocks and blocks side by side.

    PYTHONPATH=. python docs/coat-tiny-layer-concat/probe.py runs/coat-card-loco/whisper docs/coat-tiny-1.4/run/split.json \
        CACHE.npz [--json OUT]

Development clips only: the train and validation clips of the card's split (``split.json``), never its held-out ones.
Block features come from ``bench.accuracy.whisper_layers.block_features`` (2 s chunks, real length, first 10 s);
the probe is that bench's (standardised logistic regression, C = 0.1, grouped 4-fold CV, UA).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

SETS = {"ravdess": "speaker", "emovo": "speaker", "turev": "speaker", "urbansound8k": "file"}
CANDIDATES = {"3": [3], "2+3": [2, 3], "1+2+3": [1, 2, 3], "3+4": [3, 4], "2+3+4": [2, 3, 4]}


def group_of(corpus: str, row: dict) -> str:
    return row["file"].split("-")[0] if corpus == "urbansound8k" else row["speaker"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("encoder")
    p.add_argument("split")
    p.add_argument("cache")
    p.add_argument("--json")
    args = p.parse_args(argv)
    from bench.accuracy.whisper_layers import block_features, probe

    split = json.loads(Path(args.split).read_text())
    cache = Path(args.cache)
    feats = dict(np.load(cache, allow_pickle=True)) if cache.exists() else {}
    if not feats:
        import torch
        from transformers import WhisperFeatureExtractor

        from edge_coat.data.folder import load_audio
        from edge_coat.model.whisper import load_encoder

        torch.set_num_threads(1)
        encoder = load_encoder(args.encoder)
        extractor = WhisperFeatureExtractor(feature_size=encoder.config.num_mel_bins)
        for root, parts in split.items():
            corpus = Path(root).name
            dev = set(parts["train"]) | set(parts["val"])
            rows = [r for r in csv.DictReader(open(Path(root) / "labels.csv")) if r["file"] in dev]
            x = np.stack([block_features(encoder, extractor, load_audio(Path(root) / r["file"])[: 10 * 16_000], 2.0)
                          for r in rows])
            feats[f"{corpus}_x"] = x
            feats[f"{corpus}_y"] = np.array([r["label"] for r in rows])
            feats[f"{corpus}_g"] = np.array([group_of(corpus, r) for r in rows])
            print(f"{corpus}: {len(rows)} development clips encoded", flush=True)
        np.savez(cache, **feats)
    out = {}
    for corpus in SETS:
        x, y, g = feats[f"{corpus}_x"], feats[f"{corpus}_y"], feats[f"{corpus}_g"]
        out[corpus] = {"n": int(len(y)), "groups": int(len(set(g)))}
        for name, blocks in CANDIDATES.items():
            out[corpus][name] = probe(np.concatenate([x[:, b] for b in blocks], axis=1), y, g)
    print("| candidate | " + " | ".join(SETS) + " | mean |")
    for name in CANDIDATES:
        ua = [out[c][name] for c in SETS]
        print(f"| {name} | " + " | ".join(f"{u:.3f}" for u in ua) + f" | {np.mean(ua):.3f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
