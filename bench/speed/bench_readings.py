"""The model stage's pitch evidence reading: the pitch expert per window (the old path) against
``pitch_readings`` on the whole batch (the new path), interleaved in one run.

Per setting (window seconds x batch size), each round times both paths on the same windows
(speech-like pulse trains and machine hums, as bench_streams' pool) and the ratio old / new is taken
per round, so a loaded machine moves both sides alike. Also reported: how far the two agree on these
windows (pitch relative difference, voiced-ratio difference).

    python -m bench.speed.bench_readings                     # 5 s and 10 s windows, batch 1 and 8, 7 rounds
    python -m bench.speed.bench_readings --seconds 5 --batches 1 --rounds 3

Prints a table and writes bench/results/bench_readings.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from bench.common import RESULTS, finish, fmt, machine, summary
from edge_coat.experts import get_expert
from edge_coat.experts.dsp import pitch_readings
from edge_coat.messages import SAMPLE_RATE


def windows(seconds: float, n: int, seed: int = 0) -> list[np.ndarray]:
    """n distinct (N,) float32 windows, F0 90 + 40 i Hz: hums (+ 3rd harmonic) and voice-like syllables, + noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    out = []
    for i in range(n):
        f = 90.0 + 40.0 * i
        if i % 2:
            x = 0.2 * np.sin(2 * np.pi * f * t) + 0.05 * np.sin(2 * np.pi * 3 * f * t)
        else:  # voice-like: 8 harmonics with vibrato, gated into 0.4 s syllables
            phase = np.cumsum(f * (1.0 + 0.05 * np.sin(2 * np.pi * 0.7 * t)) / SAMPLE_RATE)
            x = 0.1 * sum(np.sin(2 * np.pi * k * phase) / k for k in range(1, 9)) * ((t % 0.6) < 0.4)
        out.append((x + 0.02 * rng.standard_normal(t.size)).astype(np.float32))
    return out


def old_path(ws: list[np.ndarray]) -> list[tuple[float, float]]:
    e = get_expert("pitch_prosody")
    return [(r["pitch_hz"], r["voiced_ratio"]) for r in (e.readings(e(w)) for w in ws)]


def new_path(ws: list[np.ndarray]) -> list[tuple[float, float]]:
    return [(r.pitch_hz, r.voiced_ratio) for r in pitch_readings(ws)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, nargs="+", default=[5.0, 10.0], help="window lengths")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8], help="windows per stage batch")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--out", type=Path, default=RESULTS / "bench_readings.json")
    args = p.parse_args(argv)
    at_start = machine()
    get_expert("pitch_prosody").load()
    new_path(windows(1.0, 1))  # warm-up (scipy imports)
    rows = []
    print(f"{'window s':>8} {'batch':>5} {'old ms/window':>20} {'new ms/window':>20} {'x faster (per round)':>22}"
          f"  agreement (pitch rel diff max, voiced diff max)")
    for seconds in args.seconds:
        for batch in args.batches:
            ws = windows(seconds, batch)
            old_ms, new_ms, ratio = [], [], []
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                a = old_path(ws)
                t1 = time.perf_counter()
                b = new_path(ws)
                t2 = time.perf_counter()
                old_ms.append((t1 - t0) * 1000 / batch)
                new_ms.append((t2 - t1) * 1000 / batch)
                ratio.append((t1 - t0) / (t2 - t1))
            # pitch agreement where the expert finds a voiced tenth of the window (a median over a
            # handful of frames is noise for both)
            rel = [abs(nb[0] / na[0] - 1.0) for na, nb in zip(a, b) if na[1] >= 0.1 and nb[0] > 0]
            dv = [abs(na[1] - nb[1]) for na, nb in zip(a, b)]
            row = {"window_s": seconds, "batch": batch, "old_ms_per_window": summary(old_ms),
                   "new_ms_per_window": summary(new_ms), "ratio_old_over_new": summary(ratio),
                   "pitch_rel_diff_max": max(rel) if rel else None, "voiced_ratio_diff_max": max(dv)}
            rows.append(row)
            print(f"{seconds:>8g} {batch:>5} {fmt(row['old_ms_per_window'], 1):>20} "
                  f"{fmt(row['new_ms_per_window'], 1):>20} {fmt(row['ratio_old_over_new'], 1):>22}"
                  f"  {row['pitch_rel_diff_max'] or 0:.4f}, {row['voiced_ratio_diff_max']:.3f}")
    result = {"benchmark": "bench_readings", "rounds": args.rounds, "rows": rows,
              "machine_start": at_start, "machine_end": machine()}
    return finish(args.out, result)


if __name__ == "__main__":
    sys.exit(main())
