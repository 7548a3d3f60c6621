"""Streams per CPU core in real time: the most concurrent streams whose windows are all processed
within their hop, with the model stage's per-stream caches on and off (the encoder cache of 2 s chunks,
the thinking block's per-frame part kept with it, and the pitch frame cache: "off" is a stage whose cost
follows the windows, "on" one whose cost follows the audio), and with batching on (``max_batch`` 8, 16,
...) and off (``max_batch`` 1).

What runs: the worker's real batch queue (`edge_coat.worker.service.BatchQueue`, ``max_wait_s`` as
the site default) feeding the real model stage (`CoatStage`, the embedded default model with its
ONNX encoder and thinking block, the ``anomaly`` and ``emotion`` tasks on every window and the default
``pitch`` reading) on one thread, torch and onnxruntime pinned to one thread each. A pacer thread plays
N streams at real time: stream i's window k (samples ``k * hop .. k * hop + window`` of the stream's
own signal, so consecutive windows overlap as a worker cuts them) is due at ``t0 + phase_i + k * hop``
(random phases, as streams that joined at different times), when its last sample would have been
captured. A window is on time when the model stage has finished it less than one hop after it was
due; a level passes when every window of ``--hops`` hops is on time and the worst lag per hop does not
grow by more than ``--max-growth`` of a hop per hop (a stage over capacity falls behind a little every
hop, and a short level could pass with a backlog building). The streams are already running
when a level's clock starts (their window 0 went through the stage untimed, so the encoder cache holds
what a long-running stream's holds; ``--cold``: they start with the clock), and each level is a run of
its own: the stage is told the streams' end after it (``end_stream``), as the worker tells it.

Window: ``min(--window, max_window_seconds)`` (the model accepts windows up to 30 s, in encoder-length
chunks; the JSON says what was used). The capture and ZeroMQ side is left out: it runs on the capture
hosts and its cost is bench_transport.py's figure.

Search per setting (cache on/off x batch): doubling from a start level (a quarter of the capacity the
measured cost per window allows) until a level fails, then bisection to ``--resolution``; the whole
search is bounded by ``--budget-s`` (the result then says it is a lower bound). Repeated ``--repeats``
times, settings interleaved; reported: median [min..max] streams per setting, the ratio batched /
unbatched and ``cache_speedup`` (streams with the cache / without it, per repeat, same batch setting),
and ``streams_per_core``: the median streams with the cache at the best batch setting, per thread.
The per-stage time the stage reports (encode, thinking, llm, readings) over the search says what
limits it.

    python -m bench.speed.bench_streams --window 10 --hop 2 --json OUT   # cache on and off, max_batch 1 4 8
    python -m bench.speed.bench_streams --batches 8 --repeats 2 --model /path/to/bundle
    python -m bench.speed.bench_streams --cache on --quick                # smoke run (~1 min)

Prints a table and writes bench/results/bench_streams.json (or ``--json`` / ``--out``).
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
from edge_coat.messages import SAMPLE_RATE, EndOfStream, Window

log = logging.getLogger("bench_streams")
STAGE_PARTS = ("encode", "thinking", "llm", "readings")


def audio_pool(seconds: float, n: int = 8, seed: int = 0) -> list[np.ndarray]:
    """A few distinct signals of ``seconds`` (machine hums with noise) the streams' audio is read from;
    the cost does not depend on the content."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * SAMPLE_RATE))) / SAMPLE_RATE
    out = []
    for i in range(n):
        f = 90.0 + 40.0 * i
        x = 0.2 * np.sin(2 * np.pi * f * t) + 0.05 * np.sin(2 * np.pi * 3 * f * t) + 0.02 * rng.standard_normal(t.size)
        out.append(x.astype(np.float32))  # (samples,)
    return out


def make_window(sid: str, k: int, samples: np.ndarray, end_ts: float, task: str) -> Window:
    """A stand-alone window (bench_window: one window's cost; not on any stream's chunk grid)."""
    dur = samples.size / SAMPLE_RATE
    return Window(stream_id=sid, index=k, start_sample=k, start_ts=end_ts - dur, end_ts=end_ts, samples=samples,
                  rms_dbfs=-20.0, tasks=(task,))


class Streams:
    """Stream i's audio: ``pool[i % len(pool)]`` from an offset of its own; window k is a view of it at
    ``k * hop`` (no copy: the pacer thread stays cheap), ``start_sample`` on the stream's timeline."""

    def __init__(self, pool: list[np.ndarray], window: int, hop: int, tasks: tuple[str, ...], hops: int):
        self.pool, self.window, self.hop, self.tasks = pool, window, hop, tuple(tasks)
        self.room = pool[0].size - window - hops * hop  # the offsets a stream may start at
        if self.room < 0:
            raise ValueError(f"the audio pool holds {pool[0].size} samples; {hops} hops of {hop} after a {window} "
                             "sample window need more: make it longer")

    def window_of(self, i: int, k: int, end_ts: float, epoch: int = 1) -> Window:
        base = self.pool[i % len(self.pool)]
        off = (i * 7919 * 16) % (self.room + 1)
        s = k * self.hop
        samples = base[off + s:off + s + self.window]  # (window,) float32 view
        dur = self.window / SAMPLE_RATE
        return Window(stream_id=f"s{i}", index=k, start_sample=s, start_ts=end_ts - dur, end_ts=end_ts,
                      samples=samples, rms_dbfs=-20.0, tasks=self.tasks, sender_epoch=epoch)


def end_streams(stage, n: int) -> None:
    """Tell the stage that streams s0..s(n-1) ended (the worker does at each stream's end)."""
    end = getattr(stage, "end_stream", None)
    if end is not None:
        for i in range(n):
            end(EndOfStream(f"s{i}", time.time()))


def cost_per_window(stage, streams: Streams, batch: int, rounds: int = 3) -> float:
    """Median seconds per window of ``stage.process`` at ``batch`` (the start level of the search), over
    consecutive windows of ``batch`` streams (what the encoder cache sees in a run)."""
    times = []
    for r in range(rounds + 1):
        ws = [streams.window_of(i, r, 0.0) for i in range(batch)]
        t = time.perf_counter()
        stage.process(ws)
        if r:  # the first round fills the cache
            times.append((time.perf_counter() - t) / batch)
    end_streams(stage, batch)
    return float(np.median(times))


#: a level is sustained when its windows' lag grows by at most this share of a hop per hop (see run_level)
MAX_GROWTH = 0.05


def backlog_growth(by_hop: dict[int, list[float]]) -> float:
    """Growth of the worst lag per hop, in seconds per hop: (max of the last hop - max of the first) /
    (hops - 1); 0 with fewer than two hops. A stage over its capacity by a share x falls x hops behind
    every hop, so its lag grows by ~x * hop per hop even while every window is still within one hop."""
    hops = sorted(k for k, v in by_hop.items() if v)
    if len(hops) < 2:
        return 0.0
    return (max(by_hop[hops[-1]]) - max(by_hop[hops[0]])) / (hops[-1] - hops[0])


def run_level(stage, n: int, max_batch: int, *, hop_s: float, hops: int, max_wait_s: float,
              streams: Streams, seed: int, warm: bool = True, max_growth: float = MAX_GROWTH) -> dict:
    """Play ``n`` streams at real time for ``hops`` hops through the batch queue into the stage, then
    end them. ``warm``: the streams are already running when the clock starts (their window 0 goes
    through the stage first, untimed, in batches of ``max_batch``: what a long-running stream has in the
    encoder cache), and windows 1..hops are played; otherwise every stream starts at window 0.

    Returns on_time (every window finished within a hop of its due time, and the lag not growing by more
    than ``max_growth`` of a hop per hop: a level that passes only because it is short, with a backlog
    building, is not real time), the latencies (finish - due), the batch sizes and the model thread's busy
    share. Stops early once a window is late."""
    from edge_coat.worker.service import BatchQueue

    rng = np.random.default_rng(seed)
    phases = np.sort(rng.uniform(0.0, hop_s, n))  # (n,)
    q = BatchQueue(max_batch, max_wait_s, capacity=1_000_000)
    stop = threading.Event()
    late = threading.Event()
    due_of: dict[tuple[str, int], float] = {}
    lat: list[float] = []
    by_hop: dict[int, list[float]] = {}
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
                by_hop.setdefault(w.index, []).append(d)
                if d > hop_s:
                    late.set()

    first = 1 if warm else 0
    if warm:  # before the model thread starts: the stage is used from one thread
        for j in range(0, n, max_batch):
            stage.process([streams.window_of(i, 0, time.time()) for i in range(j, min(n, j + max_batch))])
    stats_before = stage.stats() if hasattr(stage, "stats") else None
    worker = threading.Thread(target=model_loop, name="model", daemon=True)
    t0 = time.monotonic() + 0.05
    worker.start()
    # the pacer: every window at its due time (all the streams' windows of one hop in phase order)
    schedule = [((k - first) * hop_s + phases[i], i, k) for k in range(first, first + hops) for i in range(n)]
    for due_rel, i, k in schedule:
        if late.is_set():
            break
        due = t0 + due_rel
        wait = due - time.monotonic()
        if wait > 0:
            late.wait(wait)
        sid = f"s{i}"
        due_of[(sid, k)] = due
        q.put_many([streams.window_of(i, k, time.time())])
    # the last windows get one hop to finish
    deadline = t0 + schedule[-1][0] + hop_s + 0.05
    while len(lat) < expected and not late.is_set() and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    worker.join(60.0)
    wall = time.monotonic() - t0
    spent = ({p: stage.stats()["latency_s"][p]["sum"] - stats_before["latency_s"][p]["sum"] for p in STAGE_PARTS}
             if stats_before is not None else None)  # the played windows only, not the warm-up
    end_streams(stage, n)
    growth = backlog_growth(by_hop)
    sustained = growth <= max_growth * hop_s
    on_time = not late.is_set() and len(lat) >= expected and not errors and sustained
    return {"streams": n, "on_time": on_time, "sustained": sustained, "backlog_growth_s_per_hop": growth, "windows": len(lat), "expected": expected, "warmup_windows": n * first,
            "late": int(sum(d > hop_s for d in lat)), "unfinished": max(0, expected - len(lat)),
            "latency_p50_s": float(np.percentile(lat, 50)) if lat else None,
            "latency_max_s": float(max(lat)) if lat else None,
            "mean_batch": float(np.mean(batches)) if batches else None,
            "busy_share": busy[0] / wall if wall > 0 else None, "wall_s": wall, "errors": errors[:3],
            "stage_s": spent}


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


def search_streams(stage, max_batch: int, start: int, args, streams: Streams, seed: int) -> dict:
    """:func:`search` over real-time levels of ``max_batch``; every level's measurements kept."""
    levels: list[dict] = []

    def measure(level: int) -> bool:
        r = run_level(stage, level, max_batch, hop_s=args.hop, hops=args.hops,
                      max_wait_s=args.max_wait, streams=streams, seed=seed + level, warm=not args.cold,
                      max_growth=args.max_growth)
        levels.append(r)
        log.info("cache %s, max_batch %d: %d streams -> %s (p50 %.2f s, max %s s, mean batch %s)",
                 "on" if getattr(stage, "cache", None) is not None else "off", max_batch, level,
                 "on time" if r["on_time"] else ("LATE" if r["late"] or r["unfinished"] or r["errors"] else "BACKLOG"), r["latency_p50_s"] or -1, r["latency_max_s"],
                 r["mean_batch"])
        return r["on_time"]

    res = search(measure, start, budget_s=args.budget_s, max_streams=args.max_streams, resolution=args.resolution)
    return {"max_batch": max_batch, **res, "levels": levels}


def stage_shares(before: dict, after: dict) -> dict:
    """Share of the stage's time per part (encode, thinking, llm, readings) between two stats()."""
    return shares_of({p: after["latency_s"][p]["sum"] - before["latency_s"][p]["sum"] for p in STAGE_PARTS})


def shares_of(spent: dict) -> dict:
    """Seconds per part -> share of their total."""
    total = sum(spent.values()) or 1.0
    return {p: round(v / total, 3) for p, v in spent.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, help="model folder (default: models/coat-tiny, else a random stand-in)")
    p.add_argument("--window", type=float, default=10.0, help="window seconds asked for (capped at the model's)")
    p.add_argument("--hop", type=float, default=2.0, help="hop seconds (the deadline of each window)")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8],
                   help="max_batch settings (1 = unbatched, the baseline)")
    p.add_argument("--cache", choices=("both", "on", "off"), default="both",
                   help="the model stage's encoder cache: on and off in the same run (cache_speedup), or one")
    p.add_argument("--max-wait", type=float, default=0.05, help="batch queue max_wait_s (site default 0.05)")
    p.add_argument("--tasks", nargs="+", default=["anomaly", "emotion"], help="tasks of every window")
    p.add_argument("--hops", type=int, default=4, help="hops played per level")
    p.add_argument("--max-growth", type=float, default=MAX_GROWTH,
                   help="largest growth of the worst lag per hop, as a share of the hop, for a level to pass "
                        f"(default {MAX_GROWTH}: a backlog that would take 20 hops to make a window late)")
    p.add_argument("--cold", action="store_true",
                   help="every level starts its streams at window 0 (default: streams already running, their "
                        "window 0 processed before the clock starts)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--resolution", type=float, default=0.1, help="bisection stops at this relative width")
    p.add_argument("--budget-s", type=float, default=150.0, help="longest one search may take")
    p.add_argument("--max-streams", type=int, default=512)
    p.add_argument("--threads", type=int, default=1, help="torch / onnxruntime threads")
    p.add_argument("--quantization", choices=("fp32", "int8"), default="fp32", help="model.quantization")
    p.add_argument("--readings", nargs="*", default=None,
                   help="model.readings (default: the site default, pitch); --readings alone: none")
    p.add_argument("--quick", action="store_true", help="smoke run: 1 repeat, 2 hops, 30 s budget per search")
    p.add_argument("--out", "--json", dest="out", type=Path, default=RESULTS / "bench_streams.json",
                   help="result JSON")
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
    section = model_section(model_dir, threads=args.threads, readings=args.readings).model_copy(
        update={"quantization": args.quantization})
    modes = {"both": ("on", "off"), "on": ("on",), "off": ("off",)}[args.cache]
    stages = {}
    for mode in modes:  # one model, two stages: the caches (encoder chunks, pitch frames) are the stage's
        cfg = section.model_copy(update={"encoder_cache": section.encoder_cache.model_copy(
            update={"enabled": mode == "on"})})
        model = next(iter(stages.values())).model if stages else None
        stages[mode] = CoatStage(cfg, model=model, pitch_cache=mode == "on", thinking_cache=mode == "on")
    first = next(iter(stages.values()))
    if "on" in stages and stages["on"].cache is None:
        print(f"note: the encoder cache is not used with this model: {stages['on'].cache_note}")
    if "on" in stages and not stages["on"].thinking_cache:
        print(f"note: the thinking cache is not used with this model: {stages['on'].thinking_note}")
    unknown = [t for t in args.tasks if t not in first.tasks]
    if unknown:
        raise SystemExit(f"--tasks {unknown}: the model knows {sorted(first.tasks)}")
    max_s = float(first.model.max_window_seconds)
    args.window_used, note = capped_window(args.window, max_s, args.hop)
    if note:
        print(note)
    window, hop = int(round(args.window_used * SAMPLE_RATE)), int(round(args.hop * SAMPLE_RATE))
    pool = audio_pool(args.window_used + (args.hops + 4) * args.hop + 20.0)
    streams = Streams(pool, window, hop, tuple(args.tasks), args.hops + 4)  # warm-up + levels + cost rounds
    settings = [(m, b) for m in modes for b in args.batches]
    cost_per_window(first, streams, 1, rounds=1)  # warm-up
    costs = {(m, b): cost_per_window(stages[m], streams, b) for m, b in settings}
    starts = {k: max(1, int(args.hop / costs[k] / 4)) for k in settings}
    for m, b in settings:
        print(f"cache {m}, max_batch {b}: {costs[(m, b)] * 1000:.0f} ms per window -> search starts at "
              f"{starts[(m, b)]} streams")

    runs = []
    for r in range(args.repeats):
        for m, b in settings:
            stage = stages[m]
            res = search_streams(stage, b, starts[(m, b)], args, streams, seed=1000 * r + b)
            # over the played windows of every level (warm-up windows left out)
            res["stage_share"] = shares_of({p: sum(lv["stage_s"][p] for lv in res["levels"]) for p in STAGE_PARTS})
            res.update(repeat=r, cache=m, encoder_cache=stage.stats().get("encoder_cache"))
            runs.append(res)
            cut = "" if res["resolution_reached"] else " (search cut by the budget)"
            print(f"repeat {r} cache {m} max_batch {b}: {res['streams']} streams{cut} in {res['search_s']:.0f} s")

    def of(m, b, r=None):
        return [x["streams"] for x in runs if x["cache"] == m and x["max_batch"] == b and (r is None or x["repeat"] == r)]

    def ratio(num, den) -> dict:
        rs = [a[0] / d[0] for a, d in ((num(r), den(r)) for r in range(args.repeats)) if a and d and d[0] > 0]
        return summary(rs)

    base = min(args.batches)
    key = lambda m, b: f"{b}" if len(modes) == 1 else f"cache_{m}/{b}"  # noqa: E731
    per = {key(m, b): summary(of(m, b)) for m, b in settings}
    ratios = {key(m, b): ratio(lambda r, m=m, b=b: of(m, b, r), lambda r, m=m: of(m, base, r))
              for m, b in settings if b != base}
    cache_speedup = ({str(b): ratio(lambda r, b=b: of("on", b, r), lambda r, b=b: of("off", b, r))
                      for b in args.batches} if len(modes) == 2 else None)
    shares = {key(m, b): {p: summary([x["stage_share"][p] for x in runs if x["cache"] == m and x["max_batch"] == b])
                          ["median"] for p in STAGE_PARTS} for m, b in settings}
    best_mode = "on" if "on" in modes else "off"
    best_b = max(args.batches, key=lambda b: per[key(best_mode, b)]["median"] or 0)
    spc = per[key(best_mode, best_b)]["median"]
    result = {
        "benchmark": "bench_streams", "model": what, "model_dir": str(model_dir), "stage": first.info(),
        "window_s_asked": args.window, "window_s": args.window_used, "hop_s": args.hop, "note": note,
        "tasks": list(args.tasks), "readings": list(first.readings), "hops_per_level": args.hops,
        "max_wait_s": args.max_wait, "threads": args.threads, "quantization": args.quantization,
        "streams_running_at_start": not args.cold,
        "repeats": args.repeats, "quick": args.quick, "cache_modes": list(modes),
        "encoder_cache_used": "on" in stages and stages["on"].cache is not None,
        "thinking_cache_used": "on" in stages and stages["on"].thinking_cache,
        "streams_per_core": spc / args.threads if spc is not None else None,
        "streams_per_core_setting": {"cache": best_mode, "max_batch": best_b, "threads": args.threads},
        "cache_speedup": cache_speedup[str(best_b)]["median"] if cache_speedup else None,
        "cache_speedup_per_batch": cache_speedup,
        "cost_per_window_s": {key(m, b): costs[(m, b)] for m, b in settings},
        "streams": per, "ratio_over_unbatched": ratios, "baseline_max_batch": base,
        "stage_share": shares,
        "bottleneck": {k: max(v, key=lambda p: v[p] or 0) for k, v in shares.items()},
        "loadavg_start": at_start.get("loadavg"), "runs": runs, "machine_start": at_start, "machine_end": machine(),
    }
    result["loadavg_end"] = result["machine_end"].get("loadavg")
    print(f"\nStreams per core in real time ({args.window_used:g} s windows, {args.hop:g} s hop, tasks "
          f"{'+'.join(args.tasks)}, {args.threads} thread, {args.repeats} repeat(s); median [min..max])")
    print(f"{'cache':>5} {'max_batch':>9} {'streams':>16} {'x unbatched':>18} {'ms/window':>10}  "
          "stage share (enc/think/llm/read)")
    for m, b in settings:
        k = key(m, b)
        rt = "baseline" if b == base else fmt(ratios[k])
        sh = "/".join(f"{shares[k][p]:.2f}" if shares[k][p] is not None else "-" for p in STAGE_PARTS)
        print(f"{m:>5} {b:>9} {fmt(per[k], 0):>16} {rt:>18} {costs[(m, b)] * 1000:>10.0f}  {sh}")
    if cache_speedup:
        print("cache_speedup (streams with the cache / without, per repeat): "
              + ", ".join(f"max_batch {b}: {fmt(v)}" for b, v in cache_speedup.items()))
    print(f"streams_per_core: {spc} (cache {best_mode}, max_batch {best_b}, {args.threads} thread)")
    return finish(args.out, result)


if __name__ == "__main__":
    sys.exit(main())
