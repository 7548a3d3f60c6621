"""Speed of each audio expert (x real time) and of the teacher cache, on the CPU.

Each expert runs on the same clip (default 10 s of a synthetic pump with a fault, from the
factory generator); runs are interleaved (every expert once per round) and summarised by the
median and interquartile range. Speeds are also given as a ratio to a baseline measured in the same
run: a plain numpy magnitude STFT of the clip (512-point, 10 ms hop), so numbers from a loaded
or a quiet machine compare. The teacher cache row is a hit (load from disk) for all experts at
once, against computing them.

    python -m bench.speed.bench_experts                         # 10 s clip, 7 rounds
    python -m bench.speed.bench_experts --seconds 30 --rounds 5 --out /tmp/bench_experts.json
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import RESULTS, write_json



def _median_iqr(xs: list[float]) -> tuple[float, float]:
    q1, med, q3 = np.percentile(xs, [25, 50, 75])
    return float(med), float(q3 - q1)


def _stft_baseline(wave: np.ndarray) -> np.ndarray:
    frames = np.lib.stride_tricks.sliding_window_view(wave, 512)[::160]  # (T, 512)
    return np.abs(np.fft.rfft(frames * np.hanning(512), axis=1))  # (T, 257)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=10.0, help="clip length (default 10)")
    p.add_argument("--rounds", type=int, default=7, help="timed rounds per expert (default 7)")
    p.add_argument("--experts", nargs="+", help="expert names (default: the five defaults)")
    p.add_argument("--out", type=Path, default=RESULTS / "bench_experts.json")
    args = p.parse_args(argv)

    import torch

    from edge_coat.data.factory import render_clip
    from edge_coat.experts import TeacherCache, get_experts

    torch.set_num_threads(1)
    wave = render_clip("pump", seed=0, duration_s=args.seconds, fault="cavitation", onset_s=args.seconds / 2).wave
    experts = get_experts(args.experts)

    load_s = {}
    for e in experts:  # load + one warm-up call each, untimed in the table
        t0 = time.perf_counter()
        e.load()
        e(wave)
        load_s[e.name] = time.perf_counter() - t0

    times: dict[str, list[float]] = {e.name: [] for e in experts}
    base: list[float] = []
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        _stft_baseline(wave)
        base.append(time.perf_counter() - t0)
        for e in experts:
            t0 = time.perf_counter()
            e(wave)
            times[e.name].append(time.perf_counter() - t0)

    with tempfile.TemporaryDirectory() as tmp:
        cache = TeacherCache(tmp)
        t0 = time.perf_counter()
        cache.get_all(experts, wave)
        miss_s = time.perf_counter() - t0
        hits = []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            cache.get_all(experts, wave)
            hits.append(time.perf_counter() - t0)

    base_med, _ = _median_iqr(base)
    rows = []
    for e in experts:
        med, iqr = _median_iqr(times[e.name])
        rows.append({
            "expert": e.name, "version": e.version, "license": e.license,
            "median_s": med, "iqr_s": iqr, "x_realtime": args.seconds / med,
            "vs_stft_baseline": med / base_med, "load_and_first_call_s": load_s[e.name],
        })
    hit_med, hit_iqr = _median_iqr(hits)
    total_compute = sum(r["median_s"] for r in rows)

    print(f"clip: {args.seconds:g} s synthetic pump; {args.rounds} rounds; 1 torch thread; "
          f"{platform.processor() or platform.machine()}")
    print(f"baseline numpy STFT: {base_med * 1e3:.2f} ms median")
    print(f"{'expert':<18} {'median ms':>10} {'IQR ms':>8} {'x real time':>12} {'x STFT baseline':>16} {'load s':>7}")
    for r in rows:
        print(f"{r['expert']:<18} {r['median_s'] * 1e3:>10.1f} {r['iqr_s'] * 1e3:>8.1f} "
              f"{r['x_realtime']:>12.1f} {r['vs_stft_baseline']:>16.1f} {r['load_and_first_call_s']:>7.2f}")
    print(f"{'all experts':<18} {total_compute * 1e3:>10.1f} {'':>8} {args.seconds / total_compute:>12.1f}")
    print(f"{'cache hit (all)':<18} {hit_med * 1e3:>10.1f} {hit_iqr * 1e3:>8.1f} {args.seconds / hit_med:>12.1f}"
          f"   ({total_compute / hit_med:.0f}x faster than computing; first miss {miss_s * 1e3:.0f} ms)")

    result = {
        "clip_seconds": args.seconds, "rounds": args.rounds, "machine": platform.machine(),
        "baseline_stft_s": base_med, "experts": rows,
        "all_experts_s": total_compute, "cache_hit_s": hit_med, "cache_hit_iqr_s": hit_iqr,
        "cache_miss_s": miss_s, "cache_speedup": total_compute / hit_med,
    }
    write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
