"""Cost of one window through the model, the issue-4 speed figure: encoder + thinking block + LLM
prefill + label scoring, per window, at batch 1 and batch 8, on one thread.

What runs: the model stage's own model (`CoatStage`, the default model with its ONNX thinking block,
torch and onnxruntime pinned to ``--threads``), no readings (the pitch reading is not part of the
issue-4 figure; bench_streams.py includes it) and no encoder cache (every window is encoded whole: the
cost of one window on its own; bench_streams.py measures the cache on streams). Per call, three variants, interleaved so that load
changes hit all of them alike:

* ``stage``: ``CoatStage.process`` of the batch (the production path); its ``latency_ms`` gives the
  per-part split (encode / thinking / llm = prefill + scoring);
* ``thinking``: ``model.score_task(waves, task)``, the same work without the stage around it;
* ``no_thinking``: ``model.score_task(waves, task, use_thinking=False)``, the baseline: the same model
  with the thinking block removed from the sequence.

Reported: median [min..max] ms per call and per window of each, the ratio thinking / no_thinking per
call pair, and the per-part medians. Window: ``--window`` seconds, up to the model's
``max_window_seconds`` (30 s); a window longer than the encoder's input (coat-tiny: 5 s) is encoded in
encoder-length chunks, and a shorter one costs what a full encoder input costs (the encoder pads).

    python -m bench.speed.bench_window                       # 10 s windows, batches 1 and 8, 30 calls each
    python -m bench.speed.bench_window --window 10 5 --batches 1 4 8 --calls 50
    python -m bench.speed.bench_window --model DIR --baseline encoder-torch   # ONNX encoder vs torch, same run
    python -m bench.speed.bench_window --model DIR --baseline previous        # vs encoder in torch + cached scoring
    python -m bench.speed.bench_window --model models/coat-tiny --baseline-model OLD_DIR   # vs another model, same run

Prints a table and writes bench/results/bench_window.json.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np

from bench.common import RESULTS, capped_window, default_model, finish, fmt, machine, model_section, summary
from bench.speed.bench_streams import audio_pool, make_window

PARTS = ("encode", "thinking", "llm", "total")


def time_calls(stage, pool: list[np.ndarray], batch: int, task: str, calls: int, baseline=None) -> dict:
    """``calls`` rounds of the variants at ``batch``; seconds per call and the stage's split. With a
    ``baseline`` stage (the previous path), its ``process`` runs in the same rounds, interleaved."""
    model = stage.model
    out: dict[str, list[float]] = {"stage": [], "thinking": [], "no_thinking": []}
    if baseline is not None:
        out["baseline"] = []
    parts: dict[str, list[float]] = {p: [] for p in PARTS}
    base_parts: dict[str, list[float]] = {p: [] for p in PARTS}
    for r in range(calls):
        waves = [pool[(r + i) % len(pool)] for i in range(batch)]  # B x (samples,)
        windows = [make_window(f"w{i}", r, w, 0.0, task) for i, w in enumerate(waves)]
        t = time.perf_counter()
        res = stage.process(windows)
        out["stage"].append(time.perf_counter() - t)
        for p in PARTS:
            parts[p].append(res[0].latency_ms[p] / 1000.0)
        if baseline is not None:
            t = time.perf_counter()
            res = baseline.process(windows)
            out["baseline"].append(time.perf_counter() - t)
            for p in PARTS:
                base_parts[p].append(res[0].latency_ms[p] / 1000.0)
        t = time.perf_counter()
        model.score_task(waves, task)
        out["thinking"].append(time.perf_counter() - t)
        t = time.perf_counter()
        model.score_task(waves, task, use_thinking=False)
        out["no_thinking"].append(time.perf_counter() - t)
    ratio = [a / b for a, b in zip(out["thinking"], out["no_thinking"]) if b > 0]
    ms = lambda xs, d=1: summary([x * 1000.0 / d for x in xs])  # noqa: E731
    row = {
        "batch": batch, "calls": calls,
        "ms_per_call": {k: ms(v) for k, v in out.items()},
        "ms_per_window": {k: ms(v, batch) for k, v in out.items()},
        "stage_parts_ms_per_window": {p: ms(v, batch) for p, v in parts.items()},
        "ratio_thinking_over_no_thinking": summary(ratio),
    }
    if baseline is not None:
        row["baseline_parts_ms_per_window"] = {p: ms(v, batch) for p, v in base_parts.items()}
        row["ratio_stage_over_baseline"] = summary([a / b for a, b in zip(out["stage"], out["baseline"]) if b > 0])
        for part in ("encode", "llm"):
            row[f"ratio_{part}_over_baseline"] = summary(
                [a / b for a, b in zip(parts[part], base_parts[part]) if b > 0])
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, help="model folder (default: models/coat-tiny, else a random stand-in)")
    p.add_argument("--window", type=float, nargs="+", default=[10.0],
                   help="window seconds, one row set per value (capped at the model's max_window_seconds)")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    p.add_argument("--calls", type=int, default=30, help="timed calls per batch size (>= 20 for the issue-4 figure)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--task", default="anomaly", help="task scored (the site default is anomaly)")
    p.add_argument("--threads", type=int, default=1, help="torch / onnxruntime threads")
    p.add_argument("--quantization", choices=["fp32", "int8"], default="fp32",
                   help="the measured stage's LLM quantization (int8: CPU dynamic; changes scores by ~1e-2)")
    p.add_argument("--encoder-quantization", choices=["fp32", "int8"], default="fp32",
                   help="the measured stage's audio encoder quantization (model.encoder.quantization)")
    p.add_argument("--baseline", choices=["none", "encoder-torch", "scoring-cached", "previous", "fp32"],
                   default="none",
                   help="also time a second stage, interleaved, and report stage / baseline per call pair: "
                   "encoder-torch = the audio encoder in torch (before encoder.onnx); scoring-cached = prefill then "
                   "candidates over the KV cache (before the fused call); previous = both; fp32 = the same stage "
                   "in fp32, LLM and encoder (with --quantization or --encoder-quantization int8)")
    p.add_argument("--baseline-model", type=Path,
                   help="another model folder (e.g. the previous coat-tiny) measured as the baseline in the same rounds")
    p.add_argument("--out", type=Path, default=RESULTS / "bench_window.json")
    args = p.parse_args(argv)
    if args.calls < 1 or min(args.batches) < 1:
        raise SystemExit(f"expected --calls >= 1 and batches >= 1, got {args.calls} and {args.batches}")
    logging.basicConfig(level=logging.WARNING)  # this bench logs nothing itself; the table is printed
    at_start = machine()
    model_dir, what = (args.model, str(args.model)) if args.model else default_model()
    from edge_coat.worker.coat_stage import CoatStage

    # the stage pins torch and onnxruntime to args.threads (model_section's torch_threads / intra_op_threads)
    section = model_section(model_dir, threads=args.threads, readings=[], cache=False)
    enc = section.encoder.model_copy(update={"quantization": args.encoder_quantization})
    stage = CoatStage(section.model_copy(update={"quantization": args.quantization, "encoder": enc}))
    baseline = None
    if args.baseline_model is not None:
        if args.baseline != "none":
            raise SystemExit("give --baseline or --baseline-model, not both")
        args.baseline = f"model {args.baseline_model}"
        base_section = model_section(args.baseline_model, threads=args.threads, readings=[], cache=False)
        baseline = CoatStage(base_section.model_copy(update={"quantization": args.quantization}))
    elif args.baseline != "none":
        torch_encoder = args.baseline in ("encoder-torch", "previous")
        base_section = model_section(model_dir, threads=args.threads, readings=[], cache=False,
                                     encoder="torch" if torch_encoder else "onnx")
        quant = "fp32" if args.baseline == "fp32" else args.quantization  # the baseline varies one thing
        baseline = CoatStage(base_section.model_copy(update={"quantization": quant}))
        if args.baseline in ("scoring-cached", "previous"):
            baseline.model.scoring = "cached"
    rows = []
    for asked in args.window:
        longest = float(stage.model.max_window_seconds)
        if baseline is not None:
            longest = min(longest, float(baseline.model.max_window_seconds))
        window_s, note = capped_window(asked, longest, 0.0)
        if note:
            print(note.split(" (hop")[0] + " were measured")
        pool = audio_pool(window_s)
        for b in args.batches:
            time_calls(stage, pool, b, args.task, args.warmup, baseline)
        rows += [{"window_s": window_s, **time_calls(stage, pool, b, args.task, args.calls, baseline)}
                 for b in args.batches]
    result = {"benchmark": "bench_window", "model": what, "model_dir": str(model_dir), "stage": stage.info(),
              "baseline": args.baseline, "baseline_stage": baseline.info() if baseline else None,
              "window_s_asked": args.window, "window_s": sorted({r["window_s"] for r in rows}), "task": args.task,
              "threads": args.threads, "quantization": args.quantization,
              "encoder_quantization": args.encoder_quantization, "readings": [], "rows": rows, "machine_start": at_start,
              "machine_end": machine()}
    info = stage.info()
    print(f"\nOne window through the model (task {args.task}, {args.threads} thread, encoder on {info['encoder']}, "
          f"thinking on {info['thinking']}; median [min..max] of {args.calls} calls; ms per window)")
    base_col = f"{'baseline':>18} {'stage/baseline':>18}" if baseline else ""
    print(f"{'window':>6} {'batch':>5} {'stage.process':>18} {base_col} {'with thinking':>18} {'no thinking':>18} "
          f"{'x no-thinking':>18}  stage split enc/think/llm")
    for r in rows:
        w, sp = r["ms_per_window"], r["stage_parts_ms_per_window"]
        split = "/".join(f"{sp[p]['median']:.1f}" for p in ("encode", "thinking", "llm"))
        base = f"{fmt(w['baseline'], 1):>18} {fmt(r['ratio_stage_over_baseline']):>18}" if baseline else ""
        print(f"{r['window_s']:>6g} {r['batch']:>5} {fmt(w['stage'], 1):>18} {base} {fmt(w['thinking'], 1):>18} "
              f"{fmt(w['no_thinking'], 1):>18} {fmt(r['ratio_thinking_over_no_thinking']):>18}  {split}")
    if baseline is not None:
        print(f"\nParts, stage / baseline ({args.baseline}) per call pair: median [min..max]")
        for r in rows:
            print(f"{r['window_s']:>6g} {r['batch']:>5}  encode {fmt(r['ratio_encode_over_baseline'])}  "
                  f"llm {fmt(r['ratio_llm_over_baseline'])}  whole {fmt(r['ratio_stage_over_baseline'])}")
    return finish(args.out, result)


if __name__ == "__main__":
    sys.exit(main())
