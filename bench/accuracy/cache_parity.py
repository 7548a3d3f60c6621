"""Does the model stage's encoder cache change answers? Dev clips played as streams through `CoatStage`
with the per-stream encoder cache on and off, the same windows both ways. "On" keeps the thinking block's
per-frame part with the encoded chunks too, when the bundle has its part graphs (``thinking_cache_used``);
"off" runs the whole block per window.

What runs: the clips of a dataset folder (``labels.csv``; ``--speakers`` keeps a dev split's speakers)
are concatenated in file order into streams of about ``--stream-seconds`` each, cut into ``--window``
windows every ``--hop`` (10 s / 2 s: each window shares 4 of its 5 chunks with the one before), batched
across streams (``--max-batch``) and scored for ``--task`` by two stages over one model: encoder cache
on and off. A window's label is the clip that covers most of it (a window spans several short clips,
so the absolute figures are those of these stream windows, not the clip-level eval contract of
``edge-coat eval``: the point is the difference between the two columns).

Reported: the largest difference of a label probability between the two, the latents' largest
difference, and per mode the metrics ``edge-coat eval`` reports: accuracy / UA / macro-F1 for a
classification task, AUC / pAUC of the model's own P(abnormal) for ``anomaly``; with the window counts
and the cache's hit rate.

    python -m bench.accuracy.cache_parity --model models/coat-tiny --data ../shared/data/ravdess \\
        --task emotion --speakers 14 15 16 --json bench/results/cache_parity_emotion.json
    python -m bench.accuracy.cache_parity --model models/coat-tiny --data FACTORY_DEV --task anomaly \\
        --json bench/results/cache_parity_anomaly.json
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

from bench.common import RESULTS, default_model, finish, machine, model_section
from edge_coat.messages import SAMPLE_RATE, EndOfStream, Window

log = logging.getLogger("cache_parity")


def build_streams(clips, audio: list[np.ndarray], stream_seconds: float) -> list[tuple[np.ndarray, list]]:
    """Clips in order -> streams of about ``stream_seconds``: (samples (n,) float32, [(start, end, label)])."""
    streams, parts, spans, n = [], [], [], 0
    for clip, wave in zip(clips, audio):
        parts.append(wave)
        spans.append((n, n + wave.size, clip.label))
        n += wave.size
        if n >= stream_seconds * SAMPLE_RATE:
            streams.append((np.concatenate(parts), spans))
            parts, spans, n = [], [], 0
    if parts:
        streams.append((np.concatenate(parts), spans))
    return streams


def majority_label(spans: list, start: int, end: int) -> str:
    """The label of the clip covering most of samples [start, end)."""
    return max(spans, key=lambda s: max(0, min(s[1], end) - max(s[0], start)))[2]


def windows_of(streams, window: int, hop: int, task: str) -> tuple[list[list[Window]], list[str]]:
    """Batches of windows, the streams' k-th windows together (as a worker queues them), and their labels."""
    per_stream = []
    for i, (samples, spans) in enumerate(streams):
        ws = []
        for k in range(max(0, (samples.size - window) // hop + 1)):
            s = k * hop
            ws.append((Window(stream_id=f"dev{i}", index=k, start_sample=s, start_ts=s / SAMPLE_RATE,
                              end_ts=(s + window) / SAMPLE_RATE, samples=samples[s:s + window], tasks=(task,),
                              sender_epoch=1), majority_label(spans, s, s + window)))
        per_stream.append(ws)
    ordered = [w for k in range(max(len(ws) for ws in per_stream)) for ws in per_stream if k < len(ws) for w in [ws[k]]]
    return [w for w, _ in ordered], [label for _, label in ordered]


def run(stage, windows: list[Window], max_batch: int, n_streams: int, task: str):
    probs, latents = [], []
    for j in range(0, len(windows), max_batch):
        for r in stage.process(windows[j:j + max_batch]):
            probs.append(r.label_probs[task])
            latents.append(r.thinking)
    for i in range(n_streams):
        stage.end_stream(EndOfStream(f"dev{i}", 0.0))
    return probs, latents


def metrics(task: str, labels: list[str], probs: list[dict], candidates: list[str]) -> dict:
    from edge_coat.train.metrics import anomaly_metrics, classification_metrics

    if task == "anomaly":
        return anomaly_metrics([int(y == "abnormal") for y in labels], [p["abnormal"] for p in probs])
    pred = [max(p, key=p.get) for p in probs]
    m, _ = classification_metrics(labels, pred, candidates)
    return m


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, help="model folder (default: models/coat-tiny, else the random stand-in)")
    p.add_argument("--data", type=Path, required=True, help="dataset folder with labels.csv")
    p.add_argument("--task", required=True, help="the model task scored (emotion, anomaly, events, ...)")
    p.add_argument("--speakers", nargs="*", default=None, help="keep these values of the speaker column (dev split)")
    p.add_argument("--limit", type=int, default=0, help="at most this many clips (0: all)")
    p.add_argument("--window", type=float, default=10.0)
    p.add_argument("--hop", type=float, default=2.0)
    p.add_argument("--stream-seconds", type=float, default=60.0)
    p.add_argument("--max-batch", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", "--out", dest="out", type=Path, default=RESULTS / "cache_parity.json")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    import torch

    from edge_coat.data.folder import DatasetFolder
    from edge_coat.worker.coat_stage import CoatStage

    torch.set_num_threads(args.threads)
    at_start = machine()
    model_dir, what = (args.model, str(args.model)) if args.model else default_model()
    on = CoatStage(model_section(model_dir, threads=args.threads, readings=[], cache=True))
    off = CoatStage(model_section(model_dir, threads=args.threads, readings=[], cache=False), model=on.model)
    if args.task not in on.tasks:
        raise SystemExit(f"--task {args.task!r}: the model knows {sorted(on.tasks)}")
    candidates = list(on.tasks[args.task].labels)
    folder = DatasetFolder(args.data, check_audio=False)
    clips = [c for c in folder if c.label in candidates
             and (args.speakers is None or c.meta.get("speaker", "") in set(args.speakers))]
    if args.limit:
        clips = clips[: args.limit]
    if not clips:
        raise SystemExit(f"no clips of {args.data} with labels in {candidates} (and speakers {args.speakers})")
    audio = [folder.load(c) for c in clips]
    streams = build_streams(clips, audio, args.stream_seconds)
    window, hop = int(round(args.window * SAMPLE_RATE)), int(round(args.hop * SAMPLE_RATE))
    windows, labels = windows_of(streams, window, hop, args.task)
    if not windows:
        raise SystemExit(f"the streams are shorter than one {args.window:g} s window: lower --window")
    with_cache, lat_on = run(on, windows, args.max_batch, len(streams), args.task)
    without, lat_off = run(off, windows, args.max_batch, len(streams), args.task)
    dp = max(abs(a[k] - b[k]) for a, b in zip(with_cache, without) for k in candidates)
    dl = max(float(np.abs(a - b).max()) for a, b in zip(lat_on, lat_off))
    result = {
        "benchmark": "cache_parity", "model": what, "model_dir": str(model_dir), "stage": on.info(),
        "data": str(args.data), "task": args.task, "speakers": args.speakers, "clips": len(clips),
        "streams": len(streams), "windows": len(windows), "window_s": args.window, "hop_s": args.hop,
        "cache_used": on.cache is not None, "thinking_cache_used": on.thinking_cache,
        "encoder_cache": on.stats()["encoder_cache"],
        "max_abs_prob_diff": dp, "max_abs_latent_diff": dl,
        "metrics": {"cache_on": metrics(args.task, labels, with_cache, candidates),
                    "cache_off": metrics(args.task, labels, without, candidates)},
        "machine_start": at_start, "machine_end": machine(),
    }
    keys = ("auc", "pauc") if args.task == "anomaly" else ("accuracy", "ua", "macro_f1")
    print(f"{args.task} on {len(windows)} windows of {len(streams)} streams ({len(clips)} clips of {args.data}), "
          f"cache {'used' if result['cache_used'] else 'NOT used: ' + on.cache_note}; thinking cache {on.thinking_note}")
    for mode in ("cache_on", "cache_off"):
        m = result["metrics"][mode]
        print(f"  {mode:>9}: " + ", ".join(f"{k} {m[k]:.4f}" for k in keys if k in m))
    print(f"  largest probability difference {dp:.2e}, latent difference {dl:.2e}; "
          f"hit rate {result['encoder_cache'].get('hit_rate')}")
    return finish(args.out, result)


if __name__ == "__main__":
    sys.exit(main())
