"""How many concurrent 16 kHz streams (100 ms chunks) one worker ingests and windows on loopback
with zero loss, with the no-op model stage.

The worker runs in this process; the capture side runs in `--senders` child processes, each one
`Sender` multiplexing its share of the streams, sending every stream's chunk every 100 ms in real
time. For each stream count it reports: loss (samples sent vs ingested, gaps, drops), worker CPU
seconds per stream-second (this process only, measured with getrusage), and latency from capture
(the moment a window's last chunk was complete) to window-ready, p50/p99. CPU per stream-second
is also given as a ratio to the smallest stream count of the same run.

    python bench/bench_transport.py --streams 250 1000 2000 --seconds 6
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_coat.transport.config import LinkConfig, ReceiverConfig, SenderConfig  # noqa: E402
from edge_coat.worker.config import BatchConfig, StreamConfig, TaskGateConfig, WorkerConfig  # noqa: E402
from edge_coat.worker.service import Worker  # noqa: E402
from edge_coat.worker.stage import NoopStage  # noqa: E402

CHUNK = 1600


def _sender_proc(endpoint: str, ids: list[str], seconds: float, start_at: float, out: mp.Queue) -> None:
    from edge_coat.transport.sender import Sender

    sender = Sender(SenderConfig(endpoint=endpoint, buffer_s=30.0, link=LinkConfig(heartbeat_s=1.0))).start()
    sender.connected.wait(30)
    x = (np.random.default_rng(0).standard_normal(CHUNK) * 0.1).astype(np.float32)
    n_chunks = round(seconds * 10)
    late = 0
    while time.time() < start_at:
        time.sleep(0.005)
    for k in range(n_chunks):
        due = start_at + (k + 1) * 0.1  # chunk k is complete at this time
        now = time.time()
        if now < due:
            time.sleep(due - now)
        elif now > due + 0.1:
            late += 1
        ts = due - 0.1
        for sid in ids:
            sender.submit(sid, x, ts, end_of_stream=k == n_chunks - 1)
    acked = sender.wait_acked(60)
    st = sender.stats()
    out.put({"acked": acked, "late_ticks": late,
             "dropped_samples": sum(s["dropped_samples"] for s in st["streams"].values())})
    sender.close()


def run_level(n_streams: int, seconds: float, n_senders: int) -> dict:
    latencies: list[float] = []

    def on_window(w, _t):
        latencies.append(time.time() - w.end_ts)

    cfg = WorkerConfig(
        receiver=ReceiverConfig(bind="tcp://127.0.0.1:0", link=LinkConfig(heartbeat_s=1.0)),
        default_stream=StreamConfig(window_s=1.0, hop_s=1.0, tasks={"anomaly": TaskGateConfig(min_rms_dbfs=-200)}),
        batch=BatchConfig(max_batch=64, max_wait_s=0.05),
    )
    worker = Worker(cfg, NoopStage(), on_window=on_window).start()
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    ids = [f"s{i:05d}" for i in range(n_streams)]
    start_at = time.time() + 4.0 + 0.002 * n_streams  # children import and connect first
    procs = [ctx.Process(target=_sender_proc, args=(worker.endpoint, ids[i::n_senders], seconds, start_at, out))
             for i in range(n_senders)]
    for p in procs:
        p.start()
    while time.time() < start_at:
        time.sleep(0.01)
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    reports = [out.get(timeout=seconds + 120) for _ in procs]
    r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    for p in procs:
        p.join(10)
    stats = worker.stats()
    worker.close()
    expected_s = round(seconds * 10) * CHUNK / 16000
    per = stats["streams"]
    lost_s = sum(max(0.0, expected_s - per.get(sid, {}).get("audio_s_in", 0.0)) for sid in ids)
    gaps_s = sum(s["gap_s"] for s in per.values())
    drops = stats["receiver"]["messages"].get("queue_dropped", 0) + stats["batch_dropped"]
    windows = sum(s["windows_processed"] for s in per.values())
    cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
    lat = np.array(latencies) * 1000
    return {
        "streams": n_streams,
        "seconds": seconds,
        "zero_loss": bool(lost_s == 0 and gaps_s == 0 and drops == 0 and all(r["acked"] for r in reports)),
        "lost_s": lost_s,
        "gap_s": gaps_s,
        "queue_drops": drops,
        "sender_late_ticks": sum(r["late_ticks"] for r in reports),
        "windows": windows,
        "expected_windows": n_streams * int(expected_s),
        "worker_cpu_s": cpu,
        "wall_s": t1 - t0,
        "cpu_ms_per_stream_s": 1000 * cpu / (n_streams * expected_s),
        "latency_p50_ms": float(np.percentile(lat, 50)) if len(lat) else None,
        "latency_p99_ms": float(np.percentile(lat, 99)) if len(lat) else None,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--streams", type=int, nargs="+", default=[250, 1000, 2000])
    ap.add_argument("--seconds", type=float, default=6.0, help="audio per stream per level")
    ap.add_argument("--senders", type=int, default=2, help="capture processes")
    ap.add_argument("--max-p99-ms", type=float, default=1000.0,
                    help="a level 'keeps up' when zero-loss and capture-to-window p99 is below this")
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "bench_transport.json")
    args = ap.parse_args()
    rows = [run_level(n, args.seconds, args.senders) for n in args.streams]
    base = rows[0]["cpu_ms_per_stream_s"]
    for r in rows:
        r["cpu_ratio_vs_first"] = r["cpu_ms_per_stream_s"] / base if base else None
        # zero loss alone can hide a worker that falls behind and catches up from the replay buffers
        r["keeps_up"] = bool(r["zero_loss"] and r["latency_p99_ms"] is not None
                             and r["latency_p99_ms"] < args.max_p99_ms and r["sender_late_ticks"] == 0)
    head = f"{'streams':>8} {'zero loss':>9} {'windows':>9} {'cpu ms/stream-s':>16} {'ratio':>6} " \
           f"{'p50 ms':>8} {'p99 ms':>8} {'late ticks':>10} {'keeps up':>8}"
    print(head)
    for r in rows:
        print(f"{r['streams']:>8} {str(r['zero_loss']):>9} {r['windows']:>9} {r['cpu_ms_per_stream_s']:>16.3f} "
              f"{r['cpu_ratio_vs_first']:>6.2f} {r['latency_p50_ms'] or 0:>8.1f} {r['latency_p99_ms'] or 0:>8.1f} "
              f"{r['sender_late_ticks']:>10} {str(r['keeps_up']):>8}")
    best = max((r["streams"] for r in rows if r["zero_loss"]), default=0)
    real_time = max((r["streams"] for r in rows if r["keeps_up"]), default=0)
    print(f"largest zero-loss stream count: {best}; largest that also keeps up in real time "
          f"(p99 < {args.max_p99_ms:.0f} ms, senders on time): {real_time} (target 2000)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"rows": rows, "max_zero_loss_streams": best, "max_real_time_streams": real_time}, indent=2))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
