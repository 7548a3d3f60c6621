"""Event service benchmark: log write rate, and fan-out latency with many subscribers.

Runs ``edge-coat serve`` as its own process over a fresh log file on loopback, writes events into
the log at a fixed rate from this process (as the worker would), and subscribes N clients over one
grpc.aio channel. Latency = receive time - the time the log stored the event (same clock). The
baseline is the same measurement with 1 subscriber, in the same run.

    python bench/bench_events.py [--subscribers 1000] [--rate 1000] [--seconds 10]

Prints a table and writes bench/results/bench_events.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge_coat.events.log import EventLog  # noqa: E402
from edge_coat.messages import EventRecord  # noqa: E402
from edge_coat.v1 import events_pb2 as pb  # noqa: E402
from edge_coat.v1 import events_pb2_grpc as pb_grpc  # noqa: E402


def make_record(i: int) -> EventRecord:
    return EventRecord(stream_id=f"press-{i % 16}", kind="anomaly", phase="start", episode_id=f"e{i}",
                       label="abnormal", score=0.8, window_start_ts=time.time(), window_end_ts=time.time() + 2,
                       text=f"press-{i % 16}: abnormal sound (score 0.80); pitch 120 Hz, -20 dBFS",
                       evidence={"scores": {"score": 0.8, "distance": 3.2}, "readings": {"pitch_hz": 120.0,
                                 "loudness_dbfs": -20.0}, "tags": [["Engine", 0.7], ["Hiss", 0.2]],
                                 "gap_seconds": 0.0, "model": {"name": "coat-tiny", "version": "0.1"}})


def write_rate(path: Path, seconds: float, batch: int) -> float:
    log = EventLog(path)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        log.append_many([make_record(n + i) for i in range(batch)])
        n += batch
    rate = n / (time.perf_counter() - t0)
    log.close()
    return rate


def start_serve(db: Path, port: int) -> subprocess.Popen:
    cfg = Path(tempfile.mkdtemp()) / "site.json"
    cfg.write_text(json.dumps({"events": {"db_path": str(db), "listen": f"127.0.0.1:{port}", "insecure": True,
                                          "poll_interval_s": 0.005, "heartbeat_s": 5.0, "queue_events": 20000}}))
    proc = subprocess.Popen([sys.executable, "-m", "edge_coat", "serve", "--config", str(cfg)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    if "listening" not in line:
        raise RuntimeError(f"serve did not start: {line!r}")
    return proc


def fanout(db: Path, port: int, subscribers: int, rate: float, seconds: float) -> dict:
    """Publish ``rate`` events/s for ``seconds`` and measure delivery to every subscriber."""
    total = int(rate * seconds)
    sample_every = max(1, subscribers // 100)  # record latencies of ~100 subscribers (all are checked for loss)

    async def main():
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.EventServiceStub(channel)
            log = EventLog(db)
            start = log.head()
            lat: list[float] = []
            counts = [0] * subscribers

            async def read(k, call):
                async for resp in call:
                    now = time.time()
                    counts[k] += len(resp.events)
                    if k % sample_every == 0:
                        lat.extend(now - e.created_ts for e in resp.events)
                    if resp.events and resp.events[-1].id >= start + total:
                        call.cancel()
                        return

            calls = [stub.Subscribe(pb.SubscribeRequest(from_cursor=start)) for _ in range(subscribers)]
            tasks = [asyncio.create_task(read(k, c)) for k, c in enumerate(calls)]
            await asyncio.sleep(1.0 + subscribers / 500)  # let the subscriptions open

            def produce():
                tick, batch = 0.01, max(1, int(rate * 0.01))
                t0 = time.perf_counter()
                for j in range(0, total, batch):
                    log.append_many([make_record(j + i) for i in range(min(batch, total - j))])
                    delay = t0 + (j // batch + 1) * tick - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                return time.perf_counter() - t0

            t_pub = await asyncio.to_thread(produce)
            done, pending = await asyncio.wait(tasks, timeout=seconds * 6 + 30)
            for t in pending:
                t.cancel()
            log.close()
            arr = np.array(lat) * 1000.0
            return {"subscribers": subscribers, "events": total, "publish_s": t_pub,
                    "publish_rate": total / t_pub, "complete_subscribers": sum(c >= total for c in counts),
                    "deliveries": int(sum(counts)), "p50_ms": float(np.percentile(arr, 50)) if len(arr) else None,
                    "p99_ms": float(np.percentile(arr, 99)) if len(arr) else None,
                    "max_ms": float(arr.max()) if len(arr) else None}

    return asyncio.run(main())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--subscribers", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=1000.0, help="events per second written to the log")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "bench_events.json"))
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    results = {"write_rate_single": write_rate(tmp / "w1.db", 2.0, 1),
               "write_rate_batch100": write_rate(tmp / "w2.db", 2.0, 100)}
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    db = tmp / "events.db"
    EventLog(db).close()
    proc = start_serve(db, port)
    try:
        results["baseline_1_subscriber"] = fanout(db, port, 1, args.rate, min(args.seconds, 5.0))
        results["fanout"] = fanout(db, port, args.subscribers, args.rate, args.seconds)
    finally:
        proc.terminate()
        proc.wait(10)
    base, fan = results["baseline_1_subscriber"], results["fanout"]
    results["p50_ratio_vs_baseline"] = fan["p50_ms"] / base["p50_ms"] if base["p50_ms"] else None
    results["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0], "grpc": grpc.__version__}
    print(f"log writes: {results['write_rate_single']:.0f} events/s (1 per transaction), "
          f"{results['write_rate_batch100']:.0f} events/s (100 per transaction)")
    print(f"{'subscribers':>11} {'events':>7} {'pub rate':>9} {'complete':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for r in (base, fan):
        print(f"{r['subscribers']:>11} {r['events']:>7} {r['publish_rate']:>9.0f} {r['complete_subscribers']:>9} "
              f"{r['p50_ms'] or float('nan'):>8.1f} {r['p99_ms'] or float('nan'):>8.1f} {r['max_ms'] or float('nan'):>8.1f}")
    print(f"fan-out p50 latency / 1-subscriber p50: {results['p50_ratio_vs_baseline']:.1f}x")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
