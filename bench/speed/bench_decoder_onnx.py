"""Would the LLM decoder (the fused prefill + label-scoring call) be faster in onnxruntime?

Exports the model's decoder on ``inputs_embeds`` + a 4-D boolean attention mask (the tree mask of
``edge_coat.model.decoding.score_fused``) + explicit positions, with dynamic batch and sequence
axes, using ``torch.onnx.export(dynamo=True)``, and times it against torch on the same inputs in the
same run (interleaved repeats): the real sequence of a ``--window`` s window (audio, thinking block,
task prompt, two one-step candidate branches). Prints a table and writes JSON (ratio ort/torch per
repeat pair: < 1 means onnxruntime is faster) with the max abs difference of the outputs.

Not shipped in bundles yet: this measures whether it is worth it (see BENCHMARKS.md, issue 4).

    python -m bench.speed.bench_decoder_onnx [--model DIR] [--window 10] [--batches 1 8] [--repeats 10]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import RESULTS, default_model, finish, fmt, machine, summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, help="model folder (default: models/coat-tiny, else a random stand-in)")
    p.add_argument("--window", type=float, default=10.0, help="window seconds (sets the sequence length)")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--task", default="anomaly")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=RESULTS / "decoder_onnx.json")
    args = p.parse_args(argv)
    at_start = machine()
    import onnxruntime as ort
    import torch
    from torch import nn

    from edge_coat.export.onnx_export import save_onnx
    from edge_coat.model import CoatModel
    from edge_coat.model.decoding import tree_mask

    torch.set_num_threads(args.threads)
    model_dir, what = (args.model, str(args.model)) if args.model else default_model()
    model = CoatModel.from_pretrained(model_dir)
    adapter = model.adapter
    if model.config.family == "qwen2_5_omni":
        raise SystemExit("qwen2_5_omni takes 3-D mrope positions; this bench covers the Qwen2 decoders only")

    class Decoder(nn.Module):
        """The decoder as score_fused calls it: (B, S, D), (B, 1, S, S) bool, (B, S) -> last hidden (B, S, D)."""

        def __init__(self):
            super().__init__()
            self.llm = adapter.llm

        def forward(self, embeds, mask, positions):
            return self.llm(inputs_embeds=embeds, attention_mask=mask, position_ids=positions,
                            use_cache=False).last_hidden_state

    dec = Decoder().eval()
    rng = np.random.default_rng(0)
    wave = (0.1 * rng.standard_normal(int(args.window * 16000))).astype(np.float32)
    spec = model.config.tasks[args.task]
    with torch.inference_mode():
        asm, _, _ = model.build([wave], [spec.prompt])
    b, length, d = asm.embeds.shape
    c = len(spec.labels)
    embeds = torch.cat([asm.embeds, torch.randn(1, c, d)], 1)  # (1, S, D): prefix + one step per candidate
    mask = tree_mask(asm.attention_mask, c, 1)  # (1, 1, S, S)
    pos = torch.cat([asm.positions, asm.lengths[:, None].expand(1, c)], 1)  # (1, S)
    path = Path(tempfile.mkdtemp()) / "decoder.onnx"
    batch, seq = torch.export.Dim("batch", min=1), torch.export.Dim("seq", min=2, max=8192)
    t = time.perf_counter()
    save_onnx(dec, (embeds, mask, pos), path, input_names=["embeds", "mask", "positions"], output_names=["hidden"],
              dynamic_shapes={"embeds": {0: batch, 1: seq}, "mask": {0: batch, 2: seq, 3: seq},
                              "positions": {0: batch, 1: seq}})
    export_s = time.perf_counter() - t
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = args.threads, 1
    sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    rows = []
    for bs in args.batches:
        e, m, ps = embeds.repeat(bs, 1, 1), mask.repeat(bs, 1, 1, 1), pos.repeat(bs, 1)
        feeds = {"embeds": e.numpy(), "mask": m.numpy(), "positions": ps.numpy()}
        with torch.inference_mode():
            ref = dec(e, m, ps).numpy()
        diff = float(np.abs(sess.run(None, feeds)[0] - ref).max())
        t_torch, t_ort = [], []
        for _ in range(args.repeats):
            with torch.inference_mode():
                t = time.perf_counter()
                dec(e, m, ps)
                t_torch.append(time.perf_counter() - t)
            t = time.perf_counter()
            sess.run(None, feeds)
            t_ort.append(time.perf_counter() - t)
        rows.append({"batch": bs, "seq": int(e.shape[1]), "torch_ms": summary([x * 1e3 for x in t_torch]),
                     "ort_ms": summary([x * 1e3 for x in t_ort]),
                     "ratio_ort_over_torch": summary([a / b for a, b in zip(t_ort, t_torch)]), "max_abs_diff": diff})
    print(f"\nDecoder call (fused prefill + scoring) of a {args.window:g} s window, {args.threads} thread; "
          f"export {export_s:.0f} s; median [min..max] of {args.repeats}")
    print(f"{'B':>3} {'seq':>5} {'torch ms':>22} {'ort ms':>22} {'ort/torch':>18} {'max diff':>9}")
    for r in rows:
        print(f"{r['batch']:>3} {r['seq']:>5} {fmt(r['torch_ms'], 1):>22} {fmt(r['ort_ms'], 1):>22} "
              f"{fmt(r['ratio_ort_over_torch']):>18} {r['max_abs_diff']:9.2g}")
    result = {"benchmark": "decoder_onnx", "model": what, "window_s": args.window, "threads": args.threads,
              "export_s": export_s, "rows": rows, "machine_start": at_start, "machine_end": machine()}
    return finish(args.out, result)


if __name__ == "__main__":
    sys.exit(main())
