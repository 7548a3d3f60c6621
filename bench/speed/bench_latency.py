"""End-to-end latency: from the last sample of a window entering the capture worker to its event
reaching a gRPC subscriber, p50/p99, under 1 stream and under many.

What runs: the in-process `Service` with the roles capture + worker + serve and the embedded default
model (`bench/common.py`): generated sources paced at real time (``gen:sine``, one capture thread
each) -> Sender -> ZeroMQ on loopback -> worker windowing and batching -> CoatStage -> detectors ->
SQLite event log -> gRPC server -> a real `EventClient` subscriber in this process.

Every window makes an event: the emotion detector is configured to open an episode on the first
window (``on_threshold`` 0, one window) and to emit an ``update`` on every later one
(``update_every_s`` 0.001), and a loud tone counts as speech when no VAD runs. The latency of an
event is its receive time at the subscriber minus its ``window_end_ts`` (= Window.end_ts, the
capture wall-clock time just after the window's last sample; the generated sources stamp wall-clock
time like live ones). ``end`` events (emitted when a stream closes) are left out.

The total is split with taps on the same windows: ``to_window`` (capture -> the worker cut the
window: chunk hand-off, ZeroMQ, windowing), ``to_log`` (-> the event was stored: batch queue wait,
model stage, detectors, SQLite), ``fanout`` (stored -> received), and the model stage's own
``model`` time per batch (from ``WindowResult.latency_ms``); ``queue`` is to_log - to_window - model.

Window: ``--window`` (capped at the model's ``max_window_seconds``) with a 2 s hop,
``max_batch`` 8. Repeated ``--repeats`` times, 1 stream and ``--many`` streams interleaved; reported:
median [min..max] of the per-run p50 and p99, and the ratio many / 1 per repeat.

Scenarios. The measured one (``aligned``, always run) starts every source at once, so the streams'
windows are due at the same instants and go through the model stage as one batch: the worst case for
a shared model thread. ``--stagger`` adds a second, separately reported scenario (``staggered``, rows
``<many>s``): the same ``--many`` sources, source i started i x hop / many seconds after the first, as
streams that join at unrelated times would be; its ratio is reported apart
(``ratio_staggered_over_one``) and changes nothing of the aligned figures.

Window grids. The worker shifts each new stream's window grid by less than a hop so that streams started
together fall due one by one (``worker.window_phase: spread``, the site default: see
`edge_coat.worker.windowing.PhasePlanner`); every scenario runs with the site default unless
``--window-phase aligned``. ``--phase-baseline`` adds the ``aligned`` scenario with every grid at phase 0
(rows ``<many>a``, ``ratio_aligned_grids_over_one``): the worker before grid phases, measured in the same
run.

    python -m bench.speed.bench_latency                       # 1 vs 8 streams, 21 s each, 3 repeats (~3 min)
    python -m bench.speed.bench_latency --many 16 --seconds 31
    python -m bench.speed.bench_latency --quick               # smoke run (~40 s)
    python -m bench.speed.bench_latency --stagger             # plus the staggered scenario (~4.5 min)
    python -m bench.speed.bench_latency --stagger --phase-baseline   # plus grids at phase 0 (~6 min)

Prints a table and writes bench/results/bench_latency.json.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from bench.common import (
    RESULTS, capped_window, default_model, finish, fmt, machine, model_section, summary,
)

log = logging.getLogger("bench_latency")
PARTS = ("total", "to_window", "queue", "model", "to_log", "fanout")


def site_config(n: int, seconds: float, tmp: Path, args, model_dir: Path, phase: str | None = None):
    """A site config: ``n`` real-time tone sources, every window an emotion event."""
    from edge_coat.config import validate_config

    sources = [{"uri": f"gen:sine?freq={150 + 37 * i}&amp=0.3&duration={seconds:g}", "stream_id": f"s{i}",
                "chunk_ms": args.chunk_ms} for i in range(n)]
    return validate_config({
        "capture": {"sources": sources, "sender": {"endpoint": "tcp://127.0.0.1:0", "buffer_s": 60.0},
                    "state_dir": None},  # every run sends its files whole
        "worker": {"receiver": {"bind": "tcp://127.0.0.1:0"},
                   "default_stream": {"window_s": args.window_used, "hop_s": args.hop, "tasks": {"emotion": {}}},
                   "batch": {"max_batch": args.max_batch, "max_wait_s": args.max_wait},
                   **({"window_phase": phase} if phase else {})},
        "model": model_section(model_dir, threads=args.threads).model_dump(),
        "detectors": {"anomaly": {"enabled": False, "profile_dir": str(tmp / "profiles")},
                      "emotion": {"ema_alpha": 1.0, "episode": {
                          "on_threshold": 0.0, "off_threshold": 0.0, "on_windows": 1, "off_windows": 1,
                          "cooldown_s": 0.0, "update_every_s": 0.001}}},
        "events": {"db_path": str(tmp / "events.db"), "listen": "127.0.0.1:0", "insecure": True},
        "metrics": {"enabled": False},
        "service": {"grace_s": 0.5, "drain_timeout_s": 30.0},
    })


def start_staggered(svc, spacing_s: float) -> None:
    """``Service.start_capture`` for the staggered scenario: source i starts i x ``spacing_s`` after the first."""
    from edge_coat.capture.runner import start_capture_threads
    from edge_coat.transport.sender import Sender

    cap = svc.cfg.capture
    endpoint = svc.worker_endpoint.replace("0.0.0.0", "127.0.0.1")
    svc.sender = Sender(cap.sender.model_copy(update={"endpoint": endpoint}))
    svc.sender.start()
    threads = []
    for i, sc in enumerate(cap.sources):
        if i:
            time.sleep(spacing_s)
        threads += start_capture_threads([sc], svc.sender, None)
        svc.capture_threads = list(threads)


def run_once(stage, n: int, args, model_dir: Path, stagger: bool = False, phase: str | None = None) -> dict:
    """One service run with ``n`` streams (started together, or staggered over one hop); latencies of every
    start/update event received."""
    from edge_coat.events.client import EventClient
    from edge_coat.service import Service

    tmp = Path(tempfile.mkdtemp(prefix="bench-latency-"))
    cfg = site_config(n, args.seconds, tmp, args, model_dir, phase)
    svc = Service(cfg, stage=stage).start(capture=False)
    ready: dict[tuple[str, float], float] = {}  # (stream, end_ts) -> wall time the worker cut the window
    model_s: dict[tuple[str, float], float] = {}  # -> the model stage's batch time
    svc.worker.on_window = lambda w, _t: ready.__setitem__((w.stream_id, round(w.end_ts, 6)), time.time())
    svc.result_listeners.append(
        lambda r, _recs: model_s.__setitem__((r.window.stream_id, round(r.window.end_ts, 6)),
                                             r.latency_ms.get("total", 0.0) / 1000.0))
    got: list[tuple[float, object]] = []
    client = EventClient(f"127.0.0.1:{svc.grpc_port}", insecure=True)

    def collect() -> None:
        import grpc

        try:
            for e in client.subscribe(from_cursor=0, resume=False):
                got.append((time.time(), e))
        except grpc.RpcError:
            pass

    sub = threading.Thread(target=collect, name="subscriber", daemon=True)
    sub.start()
    t0 = time.monotonic()
    if stagger:
        start_staggered(svc, args.hop / n)
    else:
        svc.start_capture()
    deadline = t0 + args.seconds + 60.0
    while not (svc.sources_ended() and not svc.windows_pending()) and time.monotonic() < deadline:
        time.sleep(0.05)
    windows = sum(s["windows_processed"] for s in svc.worker.stats()["streams"].values())
    until = time.monotonic() + 5.0
    while sum(1 for _, e in got if e.phase != "end") < windows and time.monotonic() < until:
        time.sleep(0.02)
    dropped = svc.worker.stats()["batch_dropped"]
    svc.stop()
    sub.join(10.0)
    client.close()

    rows = []
    for recv, e in got:
        if e.phase == "end":
            continue
        key = (e.stream_id, round(e.window_end_ts, 6))
        row = {"total": recv - e.window_end_ts, "to_log": e.created_ts - e.window_end_ts,
               "fanout": recv - e.created_ts}
        if key in ready:
            row["to_window"] = ready[key] - e.window_end_ts
        if key in model_s:
            row["model"] = model_s[key]
        if "to_window" in row and "model" in row:
            row["queue"] = row["to_log"] - row["to_window"] - row["model"]
        rows.append(row)
    out = {"streams": n, "scenario": "staggered" if stagger else "aligned", "windows": windows,
           "window_phase": cfg.worker.window_phase, "events": len(rows), "batch_dropped": dropped}
    for part in PARTS:
        xs = [r[part] for r in rows if part in r]
        out[part] = ({"p50": float(np.percentile(xs, 50)), "p99": float(np.percentile(xs, 99)),
                      "max": float(max(xs))} if xs else None)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, help="model folder (default: models/coat-tiny, else a random stand-in)")
    p.add_argument("--many", type=int, default=8, help="streams of the 'many' runs")
    p.add_argument("--seconds", type=float, default=21.0, help="audio per stream per run")
    p.add_argument("--window", type=float, default=10.0, help="window seconds asked for (capped at the model's)")
    p.add_argument("--hop", type=float, default=2.0)
    p.add_argument("--max-batch", type=int, default=8)
    p.add_argument("--max-wait", type=float, default=0.05, help="batch queue max_wait_s (site default 0.05)")
    p.add_argument("--chunk-ms", type=int, default=100, help="capture chunk (site default 100 ms)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch / onnxruntime threads")
    p.add_argument("--quick", action="store_true", help="smoke run: 1 repeat, 2 streams, 9 s, 4 s windows")
    p.add_argument("--stagger", action="store_true",
                   help="also run the staggered scenario (the --many sources started hop / many apart), reported "
                        "separately")
    p.add_argument("--window-phase", choices=("spread", "aligned"), default=None,
                   help="the worker's window_phase in every scenario (default: the site default, spread)")
    p.add_argument("--phase-baseline", action="store_true",
                   help="also run the aligned scenario with window_phase aligned (every grid at phase 0), rows "
                        "'<many>a': the worker before grid phases, in the same run")
    p.add_argument("--out", "--json", dest="out", type=Path, default=RESULTS / "bench_latency.json")
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.many, args.seconds = 1, min(args.many, 2), min(args.seconds, 9.0)
        args.window = min(args.window, 4.0)  # 9 s of audio holds at least two of them (10 s windows did not)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    log.setLevel(logging.INFO)

    import torch

    from edge_coat.worker.coat_stage import CoatStage

    torch.set_num_threads(args.threads)
    at_start = machine()
    model_dir, what = (args.model, str(args.model)) if args.model else default_model()
    stage = CoatStage(model_section(model_dir, threads=args.threads))
    max_s = float(stage.model.max_window_seconds)
    args.window_used, note = capped_window(args.window, max_s, args.hop)
    if note:
        print(note)
    if args.seconds < args.window_used + args.hop:
        raise SystemExit(f"--seconds {args.seconds:g} gives fewer than 2 windows of {args.window_used:g} s; "
                         f"raise --seconds to at least {args.window_used + args.hop:g}")

    # (streams, staggered, table row): the measured scenario, then the staggered one when asked for
    ph = args.window_phase
    levels = [(1, False, "1", ph), (args.many, False, str(args.many), ph)]
    if args.stagger:
        levels.append((args.many, True, f"{args.many}s", ph))
    if args.phase_baseline:
        levels.append((args.many, False, f"{args.many}a", "aligned"))
    runs = []
    for r in range(args.repeats):
        for n, stagger, row, phase in levels:
            res = run_once(stage, n, args, model_dir, stagger, phase)
            res["repeat"], res["row"] = r, row
            runs.append(res)
            tot = res["total"] or {}
            log.info("repeat %d, %d stream(s) %s, grids %s: %d events of %d windows, p50 %.3f s, p99 %.3f s", r,
                     n, res["scenario"], res["window_phase"], res["events"], res["windows"],
                     tot.get("p50", float("nan")),
                     tot.get("p99", float("nan")))

    def agg(row: str, part: str, q: str) -> dict:
        return summary([x[part][q] for x in runs if x["row"] == row and x[part]])

    table = {row: {part: {q: agg(row, part, q) for q in ("p50", "p99")} for part in PARTS}
             for _, _, row, _ in levels}

    def ratio(row: str) -> dict:
        out = {}
        for q in ("p50", "p99"):
            rs = []
            for r in range(args.repeats):
                one = [x for x in runs if x["repeat"] == r and x["row"] == "1" and x["total"]]
                many = [x for x in runs if x["repeat"] == r and x["row"] == row and x["total"]]
                if one and many and one[0]["total"][q] > 0:
                    rs.append(many[0]["total"][q] / one[0]["total"][q])
            out[q] = summary(rs)
        return out

    ratios = ratio(str(args.many))
    parts_many = table[str(args.many)]
    bottleneck = max(("to_window", "queue", "model", "fanout"),
                     key=lambda k: parts_many[k]["p50"]["median"] or 0.0)
    result = {
        "benchmark": "bench_latency", "model": what, "model_dir": str(model_dir), "stage": stage.info(),
        "window_s_asked": args.window, "window_s": args.window_used, "hop_s": args.hop, "note": note,
        "max_batch": args.max_batch, "max_wait_s": args.max_wait, "chunk_ms": args.chunk_ms,
        "seconds_per_run": args.seconds, "many": args.many, "repeats": args.repeats, "threads": args.threads,
        "quick": args.quick, "latency_s": table, "ratio_many_over_one": ratios,
        "ratio_staggered_over_one": ratio(f"{args.many}s") if args.stagger else None,
        "ratio_aligned_grids_over_one": ratio(f"{args.many}a") if args.phase_baseline else None,
        "window_phase": args.window_phase or "site default (spread)",
        "largest_part_many": bottleneck, "runs": runs, "machine_start": at_start, "machine_end": machine(),
    }
    print(f"\nEnd-to-end latency, capture of a window's last sample -> gRPC subscriber, seconds "
          f"({args.window_used:g} s windows, {args.hop:g} s hop, max_batch {args.max_batch}, "
          f"{args.repeats} repeat(s); median [min..max] of the per-run percentile)")
    print(f"{'streams':>7} {'part':>10} {'p50':>22} {'p99':>22}")
    for _, _, name, _ in levels:
        for part in PARTS:
            row = table[name][part]
            print(f"{name:>7} {part:>10} {fmt(row['p50'], 3):>22} {fmt(row['p99'], 3):>22}")
    print(f"many / 1: p50 {fmt(ratios['p50'])}, p99 {fmt(ratios['p99'])}; largest part under {args.many} "
          f"streams: {bottleneck}")
    if args.stagger:
        st = result["ratio_staggered_over_one"]
        print(f"staggered scenario ({args.many}s: sources started {args.hop / args.many:g} s apart), many / 1: "
              f"p50 {fmt(st['p50'])}, p99 {fmt(st['p99'])}")
    if args.phase_baseline:
        al = result["ratio_aligned_grids_over_one"]
        print(f"aligned scenario with every window grid at phase 0 ({args.many}a: the worker before grid phases), "
              f"many / 1: p50 {fmt(al['p50'])}, p99 {fmt(al['p99'])}")
    return finish(args.out, result)


if __name__ == "__main__":
    sys.exit(main())
