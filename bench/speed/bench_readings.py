"""The model stage's pitch evidence reading: the pitch expert per window (the old path) against
``pitch_readings`` on the whole batch (the new path), interleaved in one run; with ``--stream``, the
per-stream pitch frame cache (``edge_coat.worker.pitch_cache``, what ``CoatStage`` reads pitch through)
against ``pitch_readings`` on whole windows (``pitch_cache=False``), on streams of overlapping windows.

Per setting (window seconds x batch size), each round times both paths on the same windows
(speech-like pulse trains and machine hums, as bench_streams' pool) and the ratio old / new is taken
per round, so a loaded machine moves both sides alike. Also reported: how far the two agree on these
windows (pitch relative difference, voiced-ratio difference).

    python -m bench.speed.bench_readings                     # 5 s and 10 s windows, batch 1 and 8, 7 rounds
    python -m bench.speed.bench_readings --seconds 5 --batches 1 --rounds 3
    python -m bench.speed.bench_readings --stream --window 10 --hop 2 --batches 1 8 --rounds 7 \
        [--speech ../shared/data/ravdess]                # pitch cache on vs off, per window

``--stream``: per setting (streams = windows per batch), each round plays the streams' windows 1..``--hops``
(window 0 went through the cache untimed, so it holds what a running stream's holds) and times, hop by hop in
alternating order, the cache's readings and ``pitch_readings`` on the same batch; the ratio off / on is taken
per round. The audio: ``windows``' hums and voice-like syllables, or with ``--speech`` a corpus folder's clips
(``labels.csv``) one after the other, a speaker per stream. Also reported: the largest difference between the
two readings (0.0: the cache reads the same frames).

Prints a table and writes bench/results/bench_readings.json (``--stream``: bench_readings_stream.json).
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
from edge_coat.messages import SAMPLE_RATE, Window


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


def speech(folder: Path, n: int, seconds: float) -> list[np.ndarray]:
    """n streams' audio of at least ``seconds`` each: a corpus folder's clips (``labels.csv``, 16 kHz) one after
    the other, one speaker per stream."""
    import csv

    import soundfile as sf

    by_speaker: dict[str, list[str]] = {}
    for row in csv.DictReader(open(folder / "labels.csv")):
        by_speaker.setdefault(row.get("speaker", ""), []).append(row["file"])
    out = []
    for files in list(by_speaker.values())[:n]:
        parts, total = [], 0
        for f in files:
            x, sr = sf.read(folder / f, dtype="float32")
            if sr != SAMPLE_RATE or x.ndim != 1:
                raise ValueError(f"{folder / f}: expected 16 kHz mono, got {sr} Hz, shape {x.shape}")
            parts.append(x)
            total += x.size
            if total >= seconds * SAMPLE_RATE:
                break
        out.append(np.concatenate(parts))  # (samples,)
    if len(out) < n or min(x.size for x in out) < seconds * SAMPLE_RATE:
        raise ValueError(f"{folder}: fewer than {n} speakers with {seconds:g} s of audio; ask for fewer streams or hops")
    return out


def stream_rows(args) -> list[dict]:
    """Pitch cache on vs off over streams of overlapping windows (see the module docstring)."""
    from edge_coat.worker.pitch_cache import PitchFrameCache

    win, hop = int(round(args.window * SAMPLE_RATE)), int(round(args.hop * SAMPLE_RATE))
    seconds = args.window + args.hop * args.hops
    rows = []
    print(f"{'streams':>7} {'off ms/window':>20} {'on ms/window':>20} {'x faster (per round)':>22}  "
          f"frames reused (share), max |pitch diff| Hz, max |voiced diff|")
    for n in args.batches:
        audio = speech(args.speech, n, seconds) if args.speech else windows(seconds, n)
        batches = [[Window(stream_id=f"s{i}", index=k, start_sample=k * hop, start_ts=k * args.hop,
                           end_ts=k * args.hop + args.window, samples=x[k * hop:k * hop + win].copy())
                    for i, x in enumerate(audio)] for k in range(args.hops + 1)]
        on_ms, off_ms, ratio, dp, dv = [], [], [], 0.0, 0.0
        for r in range(args.rounds):
            cache = PitchFrameCache()
            cache.readings(batches[0])  # untimed: the cache holds what a running stream's holds
            before = dict(cache.counts)
            t_on = t_off = 0.0
            for k, batch in enumerate(batches[1:]):
                for side in ("on", "off") if (r + k) % 2 == 0 else ("off", "on"):
                    t0 = time.perf_counter()
                    if side == "on":
                        got = cache.readings(batch)
                    else:
                        want = pitch_readings([w.samples for w in batch])
                    dt = time.perf_counter() - t0
                    t_on, t_off = (t_on + dt, t_off) if side == "on" else (t_on, t_off + dt)
                dp = max([dp] + [abs(a.pitch_hz - b.pitch_hz) for a, b in zip(got, want)])
                dv = max([dv] + [abs(a.voiced_ratio - b.voiced_ratio) for a, b in zip(got, want)])
            on_ms.append(t_on * 1000 / (args.hops * n))
            off_ms.append(t_off * 1000 / (args.hops * n))
            ratio.append(t_off / t_on)
        reused, computed = (cache.counts[c] - before[c] for c in ("frames_reused", "frames_computed"))
        share = round(reused / (reused + computed), 3)  # over the timed hops of the last round
        row = {"streams": n, "window_s": args.window, "hop_s": args.hop, "hops": args.hops,
               "audio": str(args.speech) if args.speech else "generated", "off_ms_per_window": summary(off_ms),
               "on_ms_per_window": summary(on_ms), "ratio_off_over_on": summary(ratio),
               "reused_share": share, "pitch_diff_max_hz": dp, "voiced_ratio_diff_max": dv}
        rows.append(row)
        print(f"{n:>7} {fmt(row['off_ms_per_window'], 2):>20} {fmt(row['on_ms_per_window'], 2):>20} "
              f"{fmt(row['ratio_off_over_on'], 2):>22}  {share}, {dp:g}, {dv:g}")
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, nargs="+", default=[5.0, 10.0], help="window lengths")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8], help="windows per stage batch")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--stream", action="store_true", help="pitch cache on vs off over streams of overlapping windows "
                   "(--batches: streams, one window of each per batch)")
    p.add_argument("--window", type=float, default=10.0, help="--stream: window seconds")
    p.add_argument("--hop", type=float, default=2.0, help="--stream: hop seconds")
    p.add_argument("--hops", type=int, default=10, help="--stream: timed hops per round")
    p.add_argument("--speech", type=Path, help="--stream: a corpus folder (labels.csv + 16 kHz clips) to read")
    p.add_argument("--out", type=Path, help="result JSON (default bench/results/bench_readings[_stream].json)")
    args = p.parse_args(argv)
    at_start = machine()
    if args.stream:
        new_path(windows(1.0, 1))  # warm-up (scipy imports)
        rows = stream_rows(args)
        result = {"benchmark": "bench_readings_stream", "rounds": args.rounds, "rows": rows,
                  "machine_start": at_start, "machine_end": machine()}
        return finish(args.out or RESULTS / "bench_readings_stream.json", result)
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
    return finish(args.out or RESULTS / "bench_readings.json", result)


if __name__ == "__main__":
    sys.exit(main())
