"""Prefill cost of the CoAT thinking block and decode speed, on a tiny model on the CPU.

For each K (thinking vectors) and window length it times the prefill with and without the thinking
block (thinking block + sequence assembly + one LLM prefill; the audio encoder is the same in both
and timed apart) and reports the ratio next to the expected one, 1 + (K + 2) / L (L = prefix length
without thinking; +2 for the think_open/think_close markers), plus the ratio of the LLM prefill alone
(the K + 2 extra positions) and the thinking block's own time. Decode speed is the greedy loop's
tokens per second after the prefill, with and without thinking (it should not differ: the KV cache
is just K + 2 positions longer). Runs are interleaved (with, without, with, ...) and summarised by
the median and the interquartile range, so the ratio is measured in one run on the same machine.

    python -m bench.speed.bench_model                      # K = 8 16 32, windows 5 10 30 s
    python -m bench.speed.bench_model --family qwen2_5_omni --repeats 15 --out /tmp/bench_model.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from bench.common import RESULTS
from edge_coat.model.config import FAMILIES

PROMPT = "what is the emotion of the speaker ?"


def _median_iqr(xs: list[float]) -> tuple[float, float]:
    q1, med, q3 = np.percentile(xs, [25, 50, 75])
    return float(med), float(q3 - q1)


def bench_one(model, waves, repeats: int, decode_tokens: int) -> dict:
    import torch

    from edge_coat.model.decoding import greedy_generate, prefill
    from edge_coat.model.sequence import assemble

    with torch.inference_mode():
        audio, mask = model.encode(waves)
        t0 = time.perf_counter()
        for _ in range(3):
            model.encode(waves)
        encoder_s = (time.perf_counter() - t0) / 3
        prefix, prompt = model.prefix_ids(), [model._ids(PROMPT)] * len(waves)

        def build(thinking: bool, th=None):
            if thinking and th is None:
                th = model.think(audio, mask)
            return assemble(model.adapter.embed_tokens, prefix, audio, mask, prompt, thinking=th,
                            think_open=model.think_open if thinking else None,
                            think_close=model.think_close if thinking else None)

        def timed_prefill(thinking: bool) -> tuple[float, float]:
            """(thinking block seconds, assembly + LLM prefill seconds)."""
            t = time.perf_counter()
            th = model.think(audio, mask) if thinking else None
            t_think = time.perf_counter() - t
            t = time.perf_counter()
            prefill(model.adapter, build(thinking, th))
            return t_think, time.perf_counter() - t

        def timed_decode(thinking: bool) -> float:
            asm = build(thinking)
            t = time.perf_counter()
            greedy_generate(model.adapter, asm, 1, stop_at_eos=False)
            t1 = time.perf_counter() - t
            t = time.perf_counter()
            greedy_generate(model.adapter, asm, decode_tokens + 1, stop_at_eos=False)
            return max(time.perf_counter() - t - t1, 1e-9)  # the decode steps alone

        for th in (True, False):  # warm-up
            timed_prefill(th)
        pre = {True: [], False: []}
        llm = {True: [], False: []}
        block = []
        dec = {True: [], False: []}
        for _ in range(repeats):
            for th in (True, False):
                t_think, t_llm = timed_prefill(th)
                pre[th].append(t_think + t_llm)
                llm[th].append(t_llm)
                if th:
                    block.append(t_think)
            for th in (True, False):
                dec[th].append(timed_decode(th))
        length = int(build(False).embeds.shape[1])
    k = model.config.num_thinking
    ratios = [a / b for a, b in zip(pre[True], pre[False])]
    llm_ratios = [a / b for a, b in zip(llm[True], llm[False])]
    tps = {th: [decode_tokens * len(waves) / d for d in dec[th]] for th in (True, False)}
    med = {th: _median_iqr(pre[th]) for th in (True, False)}
    return {
        "K": k,
        "seconds": round(len(waves[0]) / 16000, 3),
        "batch": len(waves),
        "prefix_len": length,
        "audio_frames": int(mask[0].sum()),
        "encoder_ms": encoder_s * 1e3,
        "prefill_thinking_ms": med[True][0] * 1e3,
        "prefill_thinking_iqr_ms": med[True][1] * 1e3,
        "prefill_plain_ms": med[False][0] * 1e3,
        "prefill_plain_iqr_ms": med[False][1] * 1e3,
        "ratio": _median_iqr(ratios)[0],
        "ratio_iqr": _median_iqr(ratios)[1],
        "llm_ratio": _median_iqr(llm_ratios)[0],
        "llm_ratio_iqr": _median_iqr(llm_ratios)[1],
        "thinking_block_ms": _median_iqr(block)[0] * 1e3,
        "expected_ratio": 1 + (k + 2) / length,
        "decode_tok_s_thinking": _median_iqr(tps[True])[0],
        "decode_tok_s_plain": _median_iqr(tps[False])[0],
        "decode_tok_s_iqr_plain": _median_iqr(tps[False])[1],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--family", default="qwen2_audio", choices=FAMILIES)
    p.add_argument("--ks", type=int, nargs="+", default=[8, 16, 32])
    p.add_argument("--seconds", type=float, nargs="+", default=[5, 10, 30])
    p.add_argument("--batch", type=int, default=1, help="windows per call")
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--decode-tokens", type=int, default=16)
    p.add_argument("--threads", type=int, default=1, help="torch threads (this VM computes like one core)")
    p.add_argument("--out", type=Path, default=RESULTS / "bench_model.json")
    args = p.parse_args(argv)

    import torch

    from edge_coat.model import tiny_coat_model

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    max_s = int(np.ceil(max(args.seconds)))
    rows = []
    for k in args.ks:
        model = tiny_coat_model(args.family, max_seconds=max_s, num_thinking=k)
        for s in args.seconds:
            waves = [(0.1 * rng.standard_normal(int(s * 16000))).astype(np.float32) for _ in range(args.batch)]
            rows.append(bench_one(model, waves, args.repeats, args.decode_tokens))
            r = rows[-1]
            print(f"K={k:3d} {s:5.1f}s L={r['prefix_len']:5d}  ratio {r['ratio']:.3f} "
                  f"(expected {r['expected_ratio']:.3f})", file=sys.stderr)

    header = (f"{'K':>4} {'win s':>6} {'L':>5} {'enc ms':>8} {'prefill+think ms':>17} {'prefill ms':>11} "
              f"{'ratio':>13} {'LLM ratio':>14} {'block ms':>9} {'expect':>7} {'tok/s think':>12} {'tok/s plain':>12}")
    print(f"\nCoAT prefill overhead and decode speed: {args.family} tiny, batch {args.batch}, "
          f"{args.threads} thread(s), median (IQR) of {args.repeats}")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['K']:>4} {r['seconds']:>6.1f} {r['prefix_len']:>5} {r['encoder_ms']:>8.2f} "
              f"{r['prefill_thinking_ms']:>9.2f} ({r['prefill_thinking_iqr_ms']:5.2f}) "
              f"{r['prefill_plain_ms']:>11.2f} {r['ratio']:>6.3f} ({r['ratio_iqr']:.3f}) "
              f"{r['llm_ratio']:>7.3f} ({r['llm_ratio_iqr']:.3f}) {r['thinking_block_ms']:>9.2f} {r['expected_ratio']:>7.3f} "
              f"{r['decode_tok_s_thinking']:>12.1f} {r['decode_tok_s_plain']:>12.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "bench_model",
        "family": args.family,
        "batch": args.batch,
        "threads": args.threads,
        "repeats": args.repeats,
        "decode_tokens": args.decode_tokens,
        "machine": platform.platform(),
        "torch": torch.__version__,
        "rows": rows,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
