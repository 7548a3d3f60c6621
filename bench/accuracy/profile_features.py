"""Which window summary carries a machine's faults? Normal-profile AUC of candidate feature vectors.

    python -m bench.accuracy.profile_features --data runs/x/factory-dev55 [--model models/coat-tiny] [--json OUT]

A diagnostic for the reconstruction expert's target (issue 13, section 4): the thinking-latent profile trails
the mel-statistics profile, and the slots are taught to reconstruct only per-slot log-mel band *means*. Here
every candidate summary of a clip goes through the same kNN normal profile the service uses (per machine,
the first half of its normal clips enrolled, loudness-normalised to -26 dBFS, as ``edge-coat eval --task
anomaly`` does), so the question "what would the slots have to carry" gets a number:

- ``mel``: the service's mel profile vector (80 level-centred Whisper log-mel band means and band stds);
- ``mel_means`` / ``mel_stds``: its two halves alone;
- ``recon_means``: the reconstruction expert's target as trained (40 bands every 80 ms, averaged onto K=8
  time slots, flattened);
- ``recon_means_stds``: the same plus each slot's per-band standard deviation over its frames;
- ``thinking`` (with ``--model``): the model's thinking latents, pooled as the service pools them (the supervised
  LLM layer's states at the thinking positions);
- ``thinking_block`` (with ``--model``): the thinking block's own output, the K continuous vectors placed after the
  audio (before the LLM reads them), averaged over K;
- ``thinking_flat`` / ``thinking_block_flat``: the same two, the K vectors concatenated instead of averaged;
- ``tower`` (with ``--model``): the pretrained audio tower's output (the Whisper encoder's, for coat-tiny), its mean
  and std over time as the answer readout summarises a window; ``tower_mean`` / ``tower_std`` its halves;
  ``mel+tower`` both vectors in one;
- ``heads_recon`` (with ``--model``): the thinking latents read through the reconstruction expert's head (K x 40
  log-mel bands), its band means over the slots (level-centred, as mel's) and band stds over the slots;
  ``heads_frames``: every time-resolved expert head's output, mean and std over the slots; ``heads_all``: those and
  the pooled heads' outputs; ``mel+heads_recon``: mel's vector and ``heads_recon`` in one.

Run it on development clips only (never the held-out machine or fault), e.g. a factory folder generated
with a seed no training or report uses.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np


def slot_stats(frames: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(T, B) frames -> per-slot band means and stds, each (k, B), over the stretches training pools the
    reconstruction target onto (``pool_segments``); the std from the same pooling of the squares."""
    from edge_coat.experts.base import pool_segments

    x = frames.astype(np.float64)
    means = pool_segments(x, k).astype(np.float64)
    return means, np.sqrt(np.maximum(pool_segments(x * x, k) - means * means, 0.0))


def thinking_block(model, waves, batch_size: int = 8) -> list[np.ndarray]:
    """The thinking block's output per clip: (K, D) float32 each (``CoatModel.think`` on the clip's embeds)."""
    import torch

    out = []
    with torch.inference_mode():
        for i in range(0, len(waves), batch_size):
            audio, mask = model.encode(list(waves[i:i + batch_size]))
            out.extend(model.think(audio, mask).float().cpu().numpy())
    return out


def tower_statistics(model, waves, batch_size: int = 8) -> list[np.ndarray]:
    """The pretrained audio tower's output per clip, as the answer readout summarises a window: (2 * Da,) float64
    each, the mean and the std over time of ``CoatModel.encode_tower``."""
    import torch

    from edge_coat.model.readout import window_statistics

    out = []
    with torch.inference_mode():
        for i in range(0, len(waves), batch_size):
            hidden, mask = model.encode_tower(list(waves[i:i + batch_size]))
            out.extend(window_statistics(hidden, mask).double().cpu().numpy())
    return out


def head_readings(model, latents: list[np.ndarray]) -> dict[str, list[np.ndarray]]:
    """The expert heads' outputs on each clip's thinking latents (K, D): the model's own readings of the window.

    Returns ``heads_recon``, ``heads_frames`` and ``heads_all`` vectors per clip (see the module docstring)."""
    import torch

    out: dict[str, list[np.ndarray]] = {"heads_recon": [], "heads_frames": [], "heads_all": []}
    specs = model.heads.specs
    frames = [n for n in specs if not specs[n].pooled]  # time-resolved heads: (K, dim) each
    with torch.inference_mode():
        for lat in latents:
            preds = {n: v[0].double().cpu().numpy() for n, v in model.heads(torch.as_tensor(lat)[None].float()).items()}
            recon = preds["reconstruction"]  # (K, 40)
            means = recon.mean(axis=0)
            out["heads_recon"].append(np.concatenate([means - means.mean(), recon.std(axis=0)]))
            timed = np.concatenate([preds[n] for n in frames], axis=1)  # (K, sum of dims)
            out["heads_frames"].append(np.concatenate([timed.mean(axis=0), timed.std(axis=0)]))
            pooled = [preds[n].reshape(-1) for n in specs if specs[n].pooled]
            out["heads_all"].append(np.concatenate([out["heads_frames"][-1], *pooled]))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="a factory folder (labels.csv with machine, label, fault)")
    p.add_argument("--model", help="also score the thinking latents of this model")
    p.add_argument("--k", type=int, default=3, help="neighbours of the kNN profile (the service's default: 3)")
    p.add_argument("--method", default="knn",
                   help="the profile's distance, 'knn' (the service's default) or 'mahalanobis' (Ledoit-Wolf shrunk), "
                        "or both comma-separated; a name scored with a method other than the first is printed NAME@METHOD")
    p.add_argument("--snr-db", type=float, help="add pink background noise at this SNR to every clip first")
    p.add_argument("--json", help="write the AUCs here")
    args = p.parse_args(argv)

    from edge_coat.data.folder import DatasetFolder
    from edge_coat.detectors.features import mel_statistics
    from edge_coat.detectors.profile import NormalProfile, pool_latents
    from edge_coat.experts.content import ReconstructionExpert
    from edge_coat.train.evaluate import _waves, split_enrollment
    from edge_coat.train.metrics import anomaly_metrics

    clips = DatasetFolder(args.data).clips
    waves = _waves(clips, 10.0, -26.0, snr_db=args.snr_db)
    recon = ReconstructionExpert().load()
    feats: dict[str, list[np.ndarray]] = {n: [] for n in ("mel", "mel_means", "mel_stds", "recon_means",
                                                          "recon_means_stds")}
    for w in waves:
        mel = mel_statistics(w)
        half = mel.shape[0] // 2
        feats["mel"].append(mel)
        feats["mel_means"].append(mel[:half])
        feats["mel_stds"].append(mel[half:])
        means, stds = slot_stats(recon(w), 8)  # K = 8 slots, as coat-tiny
        feats["recon_means"].append(means.reshape(-1))
        feats["recon_means_stds"].append(np.concatenate([means.reshape(-1), stds.reshape(-1)]))
    if args.model:
        from edge_coat.model.coat import CoatModel
        from edge_coat.train.evaluate import score_clips

        model = CoatModel.from_pretrained(args.model)
        spec = model.config.tasks["anomaly"]
        _, latents = score_clips(model, clips, spec.prompt, list(spec.labels), use_thinking=True, waves=waves)
        feats["thinking"] = [pool_latents(lat, "mean") for lat in latents]
        feats["thinking_flat"] = [pool_latents(lat, "flatten") for lat in latents]
        block = thinking_block(model, waves)
        feats["thinking_block"] = [pool_latents(b, "mean") for b in block]
        feats["thinking_block_flat"] = [pool_latents(b, "flatten") for b in block]
        feats["mel+thinking"] = [np.concatenate([m, t]) for m, t in zip(feats["mel"], feats["thinking"])]
        feats.update(head_readings(model, latents))
        feats["mel+heads_recon"] = [np.concatenate([m, h]) for m, h in zip(feats["mel"], feats["heads_recon"])]
        tower = tower_statistics(model, waves)
        half = tower[0].shape[0] // 2
        feats["tower"] = tower
        feats["tower_mean"] = [t[:half] for t in tower]
        feats["tower_std"] = [t[half:] for t in tower]
        feats["mel+tower"] = [np.concatenate([m, t]) for m, t in zip(feats["mel"], tower)]

    enrolled, test = split_enrollment(clips, None)
    y = np.array([int(clips[i].label == "abnormal") for i in test])
    methods = [m for m in args.method.split(",") if m]
    out = {"data": args.data, "model": args.model, "k": args.k, "methods": methods, "n_test": len(test), "auc": {},
           "auc_by_fault": {}}
    dist = {}
    names = [(n, m) for m in methods for n in list(feats) + (["mel|thinking"] if "thinking" in feats else [])]
    for base, method in names:
        name = base if method == methods[0] else f"{base}@{method}"
        if base == "mel|thinking":  # each profile's distance over its own enrollment median, summed
            d = dist[name.replace("mel|thinking", "mel")] + dist[name.replace("mel|thinking", "thinking")]
        else:
            x = np.stack(feats[base])  # (N, F)
            profiles = {m: NormalProfile.fit(x[idx], method=method, k=args.k, features="mel")
                        for m, idx in enrolled.items()}
            prof = [profiles[clips[i].meta.get("machine", "")] for i in test]
            d = np.array([p.distance(x[i]) / max(p.median, 1e-12) for p, i in zip(prof, test)])
            dist[name] = d
        out["auc"][name] = anomaly_metrics(y, d, 0.1)["auc"]
        normal = [j for j, i in enumerate(test) if y[j] == 0]
        by = {}
        for fault in sorted({clips[i].meta.get("fault") for i in test if clips[i].label == "abnormal"}):
            idx = [j for j, i in enumerate(test) if clips[i].meta.get("fault") == fault]
            yy = np.array([0] * len(normal) + [1] * len(idx))
            by[fault] = anomaly_metrics(yy, d[normal + idx], 0.1)["auc"]
        out["auc_by_fault"][name] = by
        print(f"{name:30s} AUC {out['auc'][name]:.3f}  " + "  ".join(f"{f} {a:.2f}" for f, a in by.items()))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
