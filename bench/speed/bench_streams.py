"""Streams per CPU core in real time: the most concurrent streams whose windows are all processed
within their hop, with batching on (``max_batch`` 8, 16, ...) and off (``max_batch`` 1).

What runs: the worker's real batch queue (`edge_coat.worker.service.BatchQueue`, ``max_wait_s`` as
the site default) feeding the real model stage (`CoatStage`, the embedded default model with its
ONNX thinking block and the default ``pitch`` reading) on one thread, torch and onnxruntime pinned to
one thread each. A pacer thread plays N streams at real time: stream i's window k is due at
``t0 + phase_i + k * hop`` (random phases, as streams that joined at different times), when its last
sample would have been captured. A window is on time when the model stage has finished it less than
one hop after it was due; a level passes when every window of ``--hops`` hops is on time.

Window: the issue asks for 10 s windows and a 2 s hop; the model accepts windows up to
``max_window_seconds`` (30 s; longer than its 5 s encoder input means 5 s chunks), so the window is
``min(--window, max_window_seconds)`` and the JSON says so (the encoder pads its last chunk to 5 s). The capture and ZeroMQ side is left out: it runs on the
capture hosts and its cost is bench_transport.py's figure.

Search per batch setting: doubling from a start level (a quarter of the capacity the measured cost per
window allows) until a level fails, then bisection to ``--resolution``; the whole search is bounded by
``--budget-s`` (the result then says it is a lower bound). Repeated ``--repeats`` times, batch settings
interleaved; reported: median [min..max] streams per setting and the ratio batched / unbatched per repeat.
The per-stage time the stage reports (encode, thinking, llm, readings) over the search says what limits it.

    python -m bench.speed.bench_streams                       # max_batch 1, 4 and 8, 3 repeats (~15 min)
    python -m bench.speed.bench_streams --batches 1 8 16 --hops 5
    python -m bench.speed.bench_streams --quick               # smoke run (~1 min)

Prints a table and writes bench/results/bench_streams.json.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.common import (
    RESULTS, capped_window, default_model, finish, fmt, machine, model_section, summary,
)
from edge_coat.messages import SAMPLE_RATE, Window

log = logging.getLogger("bench_streams")
STAGE_PARTS = ("encode", "thinking", "llm", "readings")


def audio_pool(window_samples: int, n: int = 8, seed: int = 0) -> list[np.ndarray]:
    """A few distinct windows (machine hums with noise); the cost does not depend on the content."""
    rng = np.random.default_rng(seed)
    t = np.arange(window_samples) / SAMPLE_RATE
    out = []
    for i in range(n):
        f = 90.0 + 40.0 * i
        x = 0.2 * np.sin(2 * np.pi * f * t) + 0.05 * np.sin(2 * np.pi * 3 * f * t) + 0.02 * rng.standard_normal(t.size)
        out.append(x.astype(np.float32))  # (window_samples,)
    return out


def cost_per_window(stage, pool: list[np.ndarray], batch: int, task: str, rounds: int = 3) -> float:
    """Median seconds per window of ``stage.process`` at ``batch`` (the start level of the search)."""
    times = []
    for r in range(rounds):
        ws = [make_window(f"cal{i}", r, pool[i % len(pool)], 0.0, task) for i in range(batch)]
        t = time.perf_counter()
        stage.process(ws)
        times.append((time.perf_counter() - t) / batch)
    return float(np.median(times))


def make_window(sid: str, k: int, samples: np.ndarray, end_ts: float, task: str) -> Window:
    dur = samples.size / SAMPLE_RATE
    return Window(stream_id=sid, index=k, start_sample=k, start_ts=end_ts - dur, end_ts=end_ts, samples=samples,
                  rms_dbfs=-20.0, tasks=(task,))


def run_level(stage, n: int, max_batch: int, *, hop_s: float, hops: int, max_wait_s: float,
              pool: list[np.ndarray], task: str, seed: int) -> dict:
    """Play ``n`` streams at real time for ``hops`` hops through the batch queue into the stage.

    Returns on_time (every window finished within a hop of its due time), the latencies (finish - due),
    the batch sizes and the model thread's busy share. Stops early once a window is late."""
    from edge_coat.worker.service import BatchQueue

    rng = np.random.default_rng(seed)
    phases = np.sort(rng.uniform(0.0, hop_s, n))  # (n,)
    q = BatchQueue(max_batch, max_wait_s, capacity=1_000_000)
    stop = threading.Event()
    late = threading.Event()
    due_of: dict[tuple[str, int], float] = {}
    lat: list[float] = []
    batches: list[int] = []
    busy = [0.0]
    errors: list[str] = []
    expected = n * hops

    def model_loop() -> None:
        while not stop.is_set() and len(lat) < expected:
            batch = q.take(0.05)
            if not batch:
                continue
            t = time.perf_counter()
            try:
                stage.process(batch)
            except Exception as exc:  # noqa: BLE001 - recorded, the level fails
                errors.append(f"{type(exc).__name__}: {exc}")
                late.set()
                return
            done = time.monotonic()
            busy[0] += time.perf_counter() - t
            batches.append(len(batch))
            for w in batch:
                d = done - due_of[(w.stream_id, w.index)]
                lat.append(d)
                if d > hop_s:
                    late.set()

    worker = threading.Thread(target=model_loop, name="model", daemon=True)
    t0 = time.monotonic() + 0.05
    worker.start()
    # the pacer: every window at its due time (all the streams' windows of one hop in phase order)
    schedule = [(k * hop_s + phases[i], i, k) for k in range(hops) for i in range(n)]
    for due_rel, i, k in schedule:
        if late.is_set():
            break
        due = t0 + due_rel
        wait = due - time.monotonic()
        if wait > 0:
            late.wait(wait)
        sid = f"s{i}"
        due_of[(sid, k)] = due
        q.put_many([make_window(sid, k, pool[(i + k) % len(pool)], time.time(), task)])
    # the last windows get one hop to finish
    deadline = t0 + schedule[-1][0] + hop_s + 0.05
    while len(lat) < expected and not late.is_set() and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    worker.join(60.0)
    wall = time.monotonic() - t0
    on_time = not late.is_set() and len(lat) >= expected and not errors
    return {"streams": n, "on_time": on_time, "windows": len(lat), "expected": expected,
            "late": int(sum(d > hop_s for d in lat)), "unfinished": max(0, expected - len(lat)),
            "latency_p50_s": float(np.percentile(lat, 50)) if lat else None,
            "latency_max_s": float(max(lat)) if lat else None,
            "mean_batch": float(np.mean(batches)) if batches else None,
            "busy_share": busy[0] / wall if wall > 0 else None, "wall_s": wall, "errors": errors[:3]}


def search(measure: Callable[[int], bool], start: int, *, budget_s: float, max_streams: int,
           resolution: float) -> dict:
    """The highest level ``measure`` passes: doubling from ``start`` until a level fails (halving instead
    while even the start fails), then bisection until the bracket is narrower than ``resolution`` of the
    passing level (at least 1). No new level starts once ``budget_s`` has passed."""
    t_begin = time.monotonic()
    tried: list[tuple[int, bool]] = []
    lo, hi = 0, None  # lo: highest passing level seen, hi: lowest failing level seen
    n = max(1, start)
    bounded = unresolved = False  # no failing level found / bisection stopped before the resolution

    def over() -> bool:
        return time.monotonic() - t_begin > budget_s

    def ok(level: int) -> bool:
        passed = bool(measure(level))
        tried.append((level, passed))
        return passed

    while True:
        if over() or n > max_streams:
            bounded = hi is None
            break
        if ok(n):
            lo = n
            if hi is not None:
                break
            n *= 2
        else:
            hi = n
            if lo > 0 or n == 1:
                break
            n //= 2
    while hi is not None and hi - lo > max(1, int(lo * resolution)):
        if over():
            unresolved = True
            break
        mid = (lo + hi) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid
    return {"streams": lo, "first_failing": hi, "lower_bound_only": bounded,
            "resolution_reached": not (bounded or unresolved), "search_s": time.monotonic() - t_begin,
            "tried": tried}


def search_streams(stage, max_batch: int, start: int, args, pool, seed: int) -> dict:
    """:func:`search` over real-time levels of ``max_batch``; every level's measurements kept."""
    levels: list[dict] = []

    def measure(level: int) -> bool:
        r = run_level(stage, level, max_batch, hop_s=args.hop, hops=args.hops,
                      max_wait_s=args.max_wait, pool=pool, task=args.task, seed=seed + level)
        levels.append(r)
        log.info("max_batch %d: %d streams -> %s (p50 %.2f s, max %s s, mean batch %s)", max_batch, level,
                 "on time" if r["on_time"] else "LATE", r["latency_p50_s"] or -1, r["latency_max_s"],
                 r["mean_batch"])
        return r["on_time"]

    res = search(measure, start, budget_s=args.budget_s, max_streams=args.max_streams, resolution=args.resolution)
    return {"max_batch": max_batch, **res, "levels": levels}


def stage_shares(before: dict, after: dict) -> dict:
    """Share of the stage's time per part (encode, thinking, llm, readings) between two stats()."""
    spent = {p: after["latency_s"][p]["sum"] - before["latency_s"][p]["sum"] for p in STAGE_PARTS}
    total = sum(spent.values()) or 1.0
    return {p: round(v / total, 3) for p, v in spent.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, help="model folder (default: models/coat-tiny, else a random stand-in)")
    p.add_argument("--window", type=float, default=10.0, help="window seconds asked for (capped at the model's)")
    p.add_argument("--hop", type=float, default=2.0, help="hop seconds (the deadline of each window)")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8],
                   help="max_batch settings (1 = unbatched, the baseline)")
    p.add_argument("--max-wait", type=float, default=0.05, help="batch queue max_wait_s (site default 0.05)")
    p.add_argument("--task", default="anomaly", help="task of every window (the site default is anomaly)")
    p.add_argument("--hops", type=int, default=4, help="hops played per level")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--resolution", type=float, default=0.1, help="bisection stops at this relative width")
    p.add_argument("--budget-s", type=float, default=150.0, help="longest one search may take")
    p.add_argument("--max-streams", type=int, default=512)
    p.add_argument("--threads", type=int, default=1, help="torch / onnxruntime threads")
    p.add_argument("--readings", nargs="*", default=None,
                   help="model.readings (default: the site default, pitch); --readings alone: none")
    p.add_argument("--quick", action="store_true", help="smoke run: 1 repeat, 2 hops, 30 s budget per search")
    p.add_argument("--out", type=Path, default=RESULTS / "bench_streams.json")
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.hops, args.budget_s = 1, 2, min(args.budget_s, 30.0)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("edge_coat", "transformers", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    import torch

    from edge_coat.worker.coat_stage import CoatStage

    torch.set_num_threads(args.threads)
    at_start = machine()
    model_dir, what = (args.model, str(args.model)) if args.model else default_model()
    stage = CoatStage(model_section(model_dir, threads=args.threads, readings=args.readings))
    max_s = float(stage.model.max_window_seconds)
    args.window_used, note = capped_window(args.window, max_s, args.hop)
    if note:
        print(note)
    pool = audio_pool(int(round(args.window_used * SAMPLE_RATE)))
    cost_per_window(stage, pool, 1, args.task, rounds=1)  # warm-up
    costs = {b: cost_per_window(stage, pool, b, args.task) for b in args.batches}
    starts = {b: max(1, int(args.hop / costs[b] / 4)) for b in args.batches}
    for b in args.batches:
        print(f"max_batch {b}: {costs[b] * 1000:.0f} ms per window -> search starts at {starts[b]} streams")

    runs = []
    for r in range(args.repeats):
        for b in args.batches:
            before = stage.stats()
            res = search_streams(stage, b, starts[b], args, pool, seed=1000 * r + b)
            res["stage_share"] = stage_shares(before, stage.stats())
            res["repeat"] = r
            runs.append(res)
            cut = "" if res["resolution_reached"] else " (search cut by the budget)"
            print(f"repeat {r} max_batch {b}: {res['streams']} streams{cut} in {res['search_s']:.0f} s")

    base = min(args.batches)
    per = {b: summary([x["streams"] for x in runs if x["max_batch"] == b]) for b in args.batches}
    ratios = {}
    for b in args.batches:
        if b == base:
            continue
        rs = []
        for r in range(args.repeats):
            num = [x["streams"] for x in runs if x["max_batch"] == b and x["repeat"] == r]
            den = [x["streams"] for x in runs if x["max_batch"] == base and x["repeat"] == r]
            if num and den and den[0] > 0:
                rs.append(num[0] / den[0])
        ratios[str(b)] = summary(rs)
    shares = {b: {p: summary([x["stage_share"][p] for x in runs if x["max_batch"] == b])["median"]
                  for p in STAGE_PARTS} for b in args.batches}
    result = {
        "benchmark": "bench_streams", "model": what, "model_dir": str(model_dir), "stage": stage.info(),
        "window_s_asked": args.window, "window_s": args.window_used, "hop_s": args.hop, "note": note,
        "task": args.task, "readings": list(stage.readings), "hops_per_level": args.hops,
        "max_wait_s": args.max_wait, "threads": args.threads,
        "repeats": args.repeats, "quick": args.quick,
        "cost_per_window_s": {str(b): costs[b] for b in args.batches},
        "streams": {str(b): per[b] for b in args.batches},
        "ratio_over_unbatched": ratios, "baseline_max_batch": base,
        "stage_share": {str(b): shares[b] for b in args.batches},
        "bottleneck": {str(b): max(shares[b], key=lambda k: shares[b][k] or 0) for b in args.batches},
        "runs": runs, "machine_start": at_start, "machine_end": machine(),
    }
    print(f"\nStreams per core in real time ({args.window_used:g} s windows, {args.hop:g} s hop, "
          f"{args.threads} thread, {args.repeats} repeat(s); median [min..max])")
    print(f"{'max_batch':>9} {'streams':>16} {'x unbatched':>18} {'ms/window':>10}  stage share (enc/think/llm/read)")
    for b in args.batches:
        ratio = "baseline" if b == base else fmt(ratios[str(b)])
        sh = "/".join(f"{shares[b][p]:.2f}" if shares[b][p] is not None else "-" for p in STAGE_PARTS)
        print(f"{b:>9} {fmt(per[b], 0):>16} {ratio:>18} {costs[b] * 1000:>10.0f}  {sh}")
    return finish(args.out, result)


if __name__ == "__main__":
    sys.exit(main())
