"""Per-window cost of the anomaly detector's scoring against the model call it follows, interleaved.

Each round, on the same 5 s generated pump window: the model stage's call (``score_task`` for the
anomaly task, batch 1: encoder + thinking + prefill + label scoring), then ``AnomalyDetector.score``
against an enrolled profile with ``features="mel"`` (log-mel statistics + kNN) and with
``features="thinking"`` (pooled latents + kNN). Ratios detector / model are taken per round, so a
loaded machine moves both sides alike.

    python -m bench.speed.bench_anomaly                 # 15 rounds, 40 enrollment windows
    python -m bench.speed.bench_anomaly --rounds 5 --enroll 20

Prints a table and writes bench/results/bench_anomaly.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import RESULTS, default_model, finish, fmt, machine, summary
from edge_coat.data.factory import render_clip
from edge_coat.messages import SAMPLE_RATE, Window, WindowResult


def as_result(model, wave: np.ndarray, index: int) -> WindowResult:
    r = model.score_task([wave], "anomaly")
    window = Window(stream_id="bench", index=index, start_sample=index * wave.size, start_ts=float(index),
                    end_ts=index + wave.size / SAMPLE_RATE, samples=wave, tasks=("anomaly",))
    return WindowResult(window=window, label_probs={"anomaly": dict(zip(r.labels, map(float, r.probs[0])))},
                        thinking=r.thinking[0])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--enroll", type=int, default=40, help="normal windows in each profile")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--model", type=Path, help="model folder (default: models/coat-tiny, or its random stand-in)")
    p.add_argument("--out", type=Path, default=RESULTS / "bench_anomaly.json")
    args = p.parse_args(argv)
    import torch

    from edge_coat.detectors import AnomalyConfig, AnomalyDetector
    from edge_coat.model.coat import CoatModel

    torch.set_num_threads(1)
    at_start = machine()
    model_dir, what = (args.model, str(args.model)) if args.model else default_model()
    model = CoatModel.from_pretrained(model_dir)
    seconds = min(args.seconds, model.max_seconds)
    waves = [render_clip("pump", seed=700 + i, duration_s=seconds).wave for i in range(args.enroll + 1)]
    enroll = [as_result(model, w, i) for i, w in enumerate(waves[:-1])]
    probe_wave = waves[-1]
    with tempfile.TemporaryDirectory() as tmp:
        dets = {}
        for features in ("mel", "thinking"):
            det = AnomalyDetector(AnomalyConfig(features=features, profile_dir=Path(tmp) / features))
            det.enroll_from_results("bench", enroll)
            dets[features] = det
        times = {"model": [], "mel": [], "thinking": []}
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            probe = as_result(model, probe_wave, args.enroll)
            times["model"].append(time.perf_counter() - t0)
            for features, det in dets.items():
                t0 = time.perf_counter()
                det.score(probe)
                times[features].append(time.perf_counter() - t0)
    ms = {k: summary(np.array(v) * 1000) for k, v in times.items()}
    ratio = {k: summary(np.array(times[k]) / np.array(times["model"])) for k in ("mel", "thinking")}
    print(f"anomaly scoring per {seconds:g} s window vs the model call ({what}, batch 1, 1 thread, "
          f"{args.rounds} rounds, profile of {args.enroll} windows); median [min..max]")
    print(f"{'step':<34} {'ms':>24} {'x model call':>24}")
    print(f"{'model score_task (anomaly)':<34} {fmt(ms['model'], 1):>24} {'1':>24}")
    for k in ("mel", "thinking"):
        print(f"{'detector score, features=' + k:<34} {fmt(ms[k], 2):>24} {fmt(ratio[k], 3):>24}")
    result = {"benchmark": "bench_anomaly", "model": what, "seconds": seconds, "rounds": args.rounds,
              "enroll": args.enroll, "ms": ms, "ratio_to_model": ratio, "machine_start": at_start,
              "machine_end": machine()}
    return finish(args.out, result)


if __name__ == "__main__":
    sys.exit(main())
