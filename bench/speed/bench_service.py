"""End-to-end cost of the service around the model: the whole pipeline vs bare model calls.

Baseline (same process, same model, same windows): the windows cut in numpy and fed to
``CoatStage.process`` in batches, nothing else. Service: the same audio as WAV files through real
capture sources, ZeroMQ on loopback, windowing and gates, the model stage, detectors (with
enrollment), the SQLite event log and the gRPC server with one subscriber. The ratio is what the
service adds on top of the model; audio seconds per wall second say how many real-time streams of
this kind the machine carries.

    python -m bench.speed.bench_service [--model DIR] [--streams 4] [--seconds 30] [--repeats 3]

Prints a table and writes bench/results/bench_service.json. Default model: a random tiny one (its
speed, not its judgement, is what is measured).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from bench.common import RESULTS, write_json
from edge_coat.messages import SAMPLE_RATE, Window

WINDOW_S, HOP_S, BATCH = 2.0, 1.0, 8


def hum(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    f = 110.0 * (1 + seed % 5)
    x = 0.2 * np.sin(2 * np.pi * f * t) + 0.05 * np.sin(2 * np.pi * 3 * f * t) + 0.01 * rng.standard_normal(len(t))
    return x.astype(np.float32)  # (N,)


def windows_of(sid: str, wave: np.ndarray) -> list[Window]:
    L, H = int(WINDOW_S * SAMPLE_RATE), int(HOP_S * SAMPLE_RATE)
    out = []
    for i, s in enumerate(range(0, len(wave) - L + 1, H)):
        w = wave[s:s + L]
        out.append(Window(stream_id=sid, index=i, start_sample=s, start_ts=s / SAMPLE_RATE,
                          end_ts=(s + L) / SAMPLE_RATE, samples=w, tasks=("anomaly",),
                          rms_dbfs=float(10 * np.log10(np.mean(w**2) + 1e-12))))
    return out


def bare(stage, waves: dict[str, np.ndarray]) -> tuple[float, int]:
    ws = [w for sid, wave in waves.items() for w in windows_of(sid, wave)]
    t = time.perf_counter()
    for i in range(0, len(ws), BATCH):
        stage.process(ws[i:i + BATCH])
    return time.perf_counter() - t, len(ws)


def service_run(stage, model_dir: Path, files: dict[str, Path], tmp: Path) -> tuple[float, int, int]:
    from edge_coat.config import validate_config
    from edge_coat.events.client import EventClient
    from edge_coat.service import Service

    cfg = validate_config({
        "capture": {"sources": [{"uri": str(p), "stream_id": sid} for sid, p in files.items()],
                    "sender": {"endpoint": "tcp://127.0.0.1:0", "buffer_s": 120.0},
                    "state_dir": None},  # every run sends its files whole
        "worker": {"receiver": {"bind": "tcp://127.0.0.1:0"},
                   "default_stream": {"window_s": WINDOW_S, "hop_s": HOP_S, "tasks": {"anomaly": {}}},
                   "batch": {"max_batch": BATCH, "max_wait_s": 0.05}},
        "model": {"path": str(model_dir)},
        "detectors": {"anomaly": {"profile_dir": str(tmp / "profiles"), "min_enroll_windows": 8, "k": 3}},
        "events": {"db_path": str(tmp / "events.db"), "listen": "127.0.0.1:0", "insecure": True},
        "metrics": {"enabled": False},
        "service": {"enroll_at_start": {sid: {"windows": 10} for sid in files}},
    })
    svc = Service(cfg, stage=stage).start(capture=False)
    client = EventClient(f"127.0.0.1:{svc.grpc_port}", insecure=True)
    got: list = []
    sub = threading.Thread(target=lambda: _collect(client, got), daemon=True)
    sub.start()
    t = time.perf_counter()
    svc.start_capture()
    while not (svc.sources_ended() and not svc.windows_pending()):
        time.sleep(0.01)
    elapsed = time.perf_counter() - t
    windows = sum(s["windows_processed"] for s in svc.worker.stats()["streams"].values())
    svc.stop()
    sub.join(10)
    client.close()
    return elapsed, windows, len(got)


def _collect(client, got: list) -> None:
    import grpc

    try:
        for e in client.subscribe(from_cursor=0, resume=False):
            got.append(e)
    except grpc.RpcError:
        pass


def main() -> int:
    import logging

    import torch

    from edge_coat.config import ModelSection
    from edge_coat.worker.coat_stage import CoatStage

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, help="model folder (default: a random tiny model)")
    p.add_argument("--streams", type=int, default=4)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=RESULTS / "bench_service.json")
    args = p.parse_args()
    logging.basicConfig(level=logging.ERROR)
    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="bench-service-"))
    model_dir = args.model
    if model_dir is None:
        from edge_coat.model import tiny_coat_model

        model_dir = tiny_coat_model("qwen2_audio", seed=0, max_seconds=5).save_pretrained(tmp / "model")
    runtime = {"backend": "onnx" if (model_dir / "thinking.onnx").is_file() else "torch",
               "verify_bundle": (model_dir / "manifest.json").is_file()}
    stage = CoatStage(ModelSection(path=model_dir, thinking=runtime, readings=[]))
    waves = {f"s{i}": hum(args.seconds, i) for i in range(args.streams)}
    bare(stage, {"warm": waves["s0"][: 4 * SAMPLE_RATE]})  # warm-up
    rows = []
    for r in range(args.repeats):
        run_dir = tmp / f"run{r}"
        run_dir.mkdir()
        files = {sid: run_dir / f"{sid}.wav" for sid in waves}
        for sid, wave in waves.items():
            sf.write(str(files[sid]), wave, SAMPLE_RATE, subtype="PCM_16")
        t_bare, n_bare = bare(stage, waves)
        t_svc, n_svc, n_events = service_run(stage, model_dir, files, run_dir)
        rows.append({"bare_s": t_bare, "service_s": t_svc, "windows_bare": n_bare, "windows_service": n_svc,
                     "events": n_events})
    audio_s = args.streams * args.seconds
    med = {k: statistics.median(r[k] for r in rows) for k in ("bare_s", "service_s")}
    result = {
        "model": str(model_dir), "streams": args.streams, "seconds_per_stream": args.seconds,
        "threads": args.threads, "window_s": WINDOW_S, "hop_s": HOP_S, "runs": rows,
        "median_bare_s": med["bare_s"], "median_service_s": med["service_s"],
        "service_over_bare": med["service_s"] / med["bare_s"],
        "audio_x_realtime_bare": audio_s / med["bare_s"], "audio_x_realtime_service": audio_s / med["service_s"],
    }
    print(f"{'pipeline':<34} {'median s':>9} {'x real time':>12} {'windows':>8}")
    print(f"{'model stage alone (baseline)':<34} {med['bare_s']:9.2f} {result['audio_x_realtime_bare']:12.1f} "
          f"{rows[0]['windows_bare']:8d}")
    print(f"{'whole service (capture..gRPC)':<34} {med['service_s']:9.2f} {result['audio_x_realtime_service']:12.1f} "
          f"{rows[0]['windows_service']:8d}")
    print(f"service / baseline: {result['service_over_bare']:.2f}x  ({args.streams} streams x {args.seconds:g} s, "
          f"{args.repeats} runs, {args.threads} torch thread(s))")
    write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
