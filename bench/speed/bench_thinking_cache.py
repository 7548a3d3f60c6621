"""The model stage per part with the thinking block's per-frame cache on and off, in the same run, and the
parity of the two on the same windows (issue 14).

Two ``CoatStage`` over one model, both with the encoder and pitch caches: "whole" runs the whole thinking
block per window (``thinking_cache=False``: the path before issue 14), "split" keeps each chunk's per-frame
part with the encoder cache and runs only the per-window part per window. N streams (``--streams``), each a
stream of its own audio cut into windows as the worker cuts them (``--window``, ``--hop``); per round, one
window of every stream in one batch, through both stages (which goes first alternates by round); the first
round of each stage fills its caches and is not counted. Reported per window (the batch's time / its
windows): median [min..max] over the rounds of ``encode``, ``thinking``, ``llm``, ``readings`` and ``total``
(the stage's own ``latency_ms``; with the split, ``thinking`` holds the per-frame part of the batch's new
chunks plus the per-window part), the ratio whole / split of thinking and total per round, and the largest
differences between the two stages' label probabilities and thinking latents over every window. Also the
per-frame graph's own cost on a batch of ``--streams`` new chunks and on one frame (its call overhead: what
folding it into ``encoder.onnx`` could save at most per batch).

Audio: ``--audio FOLDER`` (a dataset folder, labels.csv + audio, e.g. ../shared/data/ravdess: stream i is
clips i, i + N, i + 2N, ... one after the other), else generated machine hums.

    python -m bench.speed.bench_thinking_cache --window 10 --hop 2 --streams 8 --rounds 12 \\
        --audio ../shared/data/ravdess --json OUT

Prints a table and writes bench/results/bench_thinking_cache.json (or ``--json``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

from bench.common import RESULTS, capped_window, default_model, finish, fmt, machine, model_section, summary
from bench.speed.bench_streams import audio_pool
from edge_coat.messages import SAMPLE_RATE, Window

PARTS = ("encode", "thinking", "llm", "readings", "total")


def stream_audio(folder: Path | None, n: int, seconds: float) -> tuple[list[np.ndarray], str]:
    """n signals of at least ``seconds``: clips of ``folder`` one after the other (stream i: clips i, i + n,
    ...), or generated hums."""
    if folder is None:
        return audio_pool(seconds, n=n), "generated machine hums"
    from edge_coat.data.folder import DatasetFolder

    data = DatasetFolder(folder, check_audio=False)
    need = int(seconds * SAMPLE_RATE)
    out = []
    for i in range(n):
        parts, size, j = [], 0, i
        while size < need:
            if j >= len(data):
                raise SystemExit(f"--audio {folder}: {len(data)} clips are too few for {n} streams of {seconds:g} s")
            clip = data.load(j).astype(np.float32)
            parts.append(clip)
            size += clip.size
            j += n
        out.append(np.concatenate(parts)[:need])
    return out, f"{folder} ({len(data)} clips, clips concatenated per stream)"


def windows(audio: list[np.ndarray], k: int, window: int, hop: int, tasks: tuple[str, ...]) -> list[Window]:
    """Window k of every stream (samples k * hop .. k * hop + window)."""
    s = k * hop
    return [Window(stream_id=f"s{i}", index=k, start_sample=s, start_ts=s / SAMPLE_RATE,
                   end_ts=(s + window) / SAMPLE_RATE, samples=a[s:s + window].copy(), rms_dbfs=-20.0, tasks=tasks,
                   sender_epoch=1) for i, a in enumerate(audio)]


def frames_call_ms(model, n: int, calls: int = 20) -> dict:
    """Median [min..max] ms of the per-frame part on n encoder chunks' positions and on a single frame."""
    import time

    import torch

    block = model.thinking
    d = model.chunk_samples // SAMPLE_RATE * 25  # positions per chunk (25 per second)
    da = block.audio_dim if hasattr(block, "audio_dim") else block.in_proj.in_features
    out = {}
    for name, shape in (("chunks", (n, d, da)), ("one_frame", (1, 1, da))):
        x = torch.randn(*shape)
        times = []
        with torch.inference_mode():
            block.frame_features(x)
            for _ in range(calls):
                t0 = time.perf_counter()
                block.frame_features(x)
                times.append((time.perf_counter() - t0) * 1000.0)
        out[name] = summary(times)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=None, help="model bundle (default: models/coat-tiny)")
    p.add_argument("--window", type=float, default=10.0)
    p.add_argument("--hop", type=float, default=2.0)
    p.add_argument("--streams", type=int, default=8, help="streams, one window each per batch")
    p.add_argument("--rounds", type=int, default=12, help="timed batches per stage (after one untimed)")
    p.add_argument("--tasks", nargs="+", default=["anomaly", "emotion"])
    p.add_argument("--audio", type=Path, default=None, help="dataset folder to read the streams' audio from")
    p.add_argument("--threads", type=int, default=1, help="torch / onnxruntime threads")
    p.add_argument("--thinking-backend", choices=("onnx", "torch"), default="onnx",
                   help="model.thinking.backend (torch: the torch block's two parts, for parity in torch)")
    p.add_argument("--out", "--json", dest="out", type=Path, default=RESULTS / "bench_thinking_cache.json")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")

    import torch

    from edge_coat.worker.coat_stage import CoatStage

    torch.set_num_threads(args.threads)
    at_start = machine()
    model_dir, what = (args.model, str(args.model)) if args.model else default_model()
    section = model_section(model_dir, threads=args.threads)
    section = section.model_copy(update={"thinking": section.thinking.model_copy(
        update={"backend": args.thinking_backend})})
    split = CoatStage(section, thinking_cache=True)
    whole = CoatStage(section, model=split.model, thinking_cache=False)
    if not split.thinking_cache:
        raise SystemExit(f"the thinking cache cannot run with {model_dir}: {split.thinking_note}")
    window_s, note = capped_window(args.window, float(split.model.max_window_seconds), args.hop)
    window, hop = int(round(window_s * SAMPLE_RATE)), int(round(args.hop * SAMPLE_RATE))
    audio, source = stream_audio(args.audio, args.streams, window_s + args.rounds * args.hop + args.hop)
    tasks = tuple(args.tasks)
    stages = {"whole": whole, "split": split}
    per_window: dict[str, dict[str, list[float]]] = {m: {p: [] for p in PARTS} for m in stages}
    ratios: dict[str, list[float]] = {"thinking": [], "total": []}
    diff = {"label_probs": 0.0, "thinking": 0.0}
    for k in range(args.rounds + 1):
        batch = windows(audio, k, window, hop, tasks)
        order = ("whole", "split") if k % 2 else ("split", "whole")
        results = {m: stages[m].process(batch) for m in order}
        for g, r in zip(results["split"], results["whole"], strict=True):
            for t in tasks:
                a, b = np.array(list(g.label_probs[t].values())), np.array(list(r.label_probs[t].values()))
                diff["label_probs"] = max(diff["label_probs"], float(np.abs(a - b).max()))
            diff["thinking"] = max(diff["thinking"], float(np.abs(g.thinking - r.thinking).max()))
        if k == 0:
            continue  # the caches fill
        lat = {m: results[m][0].latency_ms for m in stages}  # per batch, the same on every result
        for m in stages:
            for part in PARTS:
                per_window[m][part].append(lat[m][part] / len(batch))
        for part in ratios:
            ratios[part].append(lat["whole"][part] / lat["split"][part])
    call_ms = frames_call_ms(split.model, args.streams)
    result = {
        "benchmark": "bench_thinking_cache", "frames_graph_ms": call_ms, "model": what, "model_dir": str(model_dir), "stage": split.info(),
        "audio": source, "window_s": window_s, "hop_s": args.hop, "note": note, "streams": args.streams,
        "rounds": args.rounds, "tasks": list(tasks), "threads": args.threads,
        "thinking_backend": args.thinking_backend,
        "per_window_ms": {m: {p: summary(v) for p, v in parts.items()} for m, parts in per_window.items()},
        "ratio_whole_over_split": {p: summary(v) for p, v in ratios.items()},
        "max_abs_diff": diff, "encoder_cache": split.stats()["encoder_cache"],
        "machine_start": at_start, "machine_end": machine(),
    }
    print(f"\nModel stage per window, thinking cache off (whole) and on (split): {args.streams} streams x "
          f"{args.rounds} batches, {window_s:g} s windows, {args.hop:g} s hop, {source}; ms, median [min..max]")
    print(f"{'part':>9} {'whole':>22} {'split':>22}")
    for part in PARTS:
        print(f"{part:>9} {fmt(result['per_window_ms']['whole'][part]):>22} "
              f"{fmt(result['per_window_ms']['split'][part]):>22}")
    print("whole / split per batch: " + ", ".join(f"{p} {fmt(result['ratio_whole_over_split'][p])}" for p in ratios))
    print(f"per-frame graph: {fmt(call_ms['chunks'], 3)} ms for {args.streams} chunks, {fmt(call_ms['one_frame'], 3)} "
          "ms for one frame (call overhead)")
    print(f"largest difference split vs whole: label probabilities {diff['label_probs']:.3g}, "
          f"thinking latents {diff['thinking']:.3g}")
    return finish(args.out, result)


if __name__ == "__main__":
    sys.exit(main())
