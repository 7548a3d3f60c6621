"""Is the audio encoder + projector faster in onnxruntime than in torch on the CPU?

Exports Qwen2-Audio's audio tower + multi-modal projector (full-length windows, dynamic batch) with
``torch.onnx.export(dynamo=True)`` and times it against torch on the same inputs, in the same run,
for two sizes: the tiny test config and a "small" config (4 layers, width 256, 128 mel bins, 30 s
windows) whose compute is dominated by the matmuls, like the real 32-layer encoder's. Prints a table
and writes JSON (ratios ort/torch: < 1 means onnxruntime is faster).

    python -m bench.speed.bench_encoder_onnx [--out bench/results/encoder_onnx.json] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.common import REPO


SIZES = {
    "tiny": dict(audio_dim=32, audio_layers=1, n_mels=32, max_seconds=5),
    "small": dict(audio_dim=256, audio_layers=4, n_mels=128, max_seconds=30),
}


def _median_ms(fn, repeats: int) -> tuple[float, float, float]:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), min(times), max(times)


def bench_size(name: str, batches: list[int], repeats: int) -> list[dict]:
    import numpy as np
    import onnxruntime as ort
    import torch
    from torch import nn

    from edge_coat.model.adapters import build_adapter
    from edge_coat.model.tiny import tiny_base_config

    torch.manual_seed(0)
    adapter = build_adapter("qwen2_audio", tiny_base_config("qwen2_audio", vocab_size=256, **SIZES[name]))

    class Encoder(nn.Module):
        """Tower + projector on full-length windows: mel (B, n_mels, F) -> (B, T, D)."""

        def __init__(self, model):
            super().__init__()
            self.tower = model.model.audio_tower
            self.proj = model.model.multi_modal_projector

        def forward(self, mel):
            return self.proj(self.tower(mel).last_hidden_state)

    enc = Encoder(adapter.model).eval()
    n_mels, frames = adapter.n_mels, adapter.max_frames
    example = torch.randn(2, n_mels, frames)
    path = Path(tempfile.mkdtemp()) / "encoder.onnx"
    t = time.perf_counter()
    prog = torch.onnx.export(enc, (example,), dynamo=True, input_names=["mel"], output_names=["embeds"],
                             dynamic_shapes={"mel": {0: torch.export.Dim("batch", min=1)}})
    prog.save(str(path))
    export_s = time.perf_counter() - t
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    rows = []
    for b in batches:
        mel = torch.randn(b, n_mels, frames)
        with torch.no_grad():
            ref = enc(mel).numpy()
            t_med, t_min, t_max = _median_ms(lambda: enc(mel), repeats)
        got = sess.run(None, {"mel": mel.numpy()})[0]
        o_med, o_min, o_max = _median_ms(lambda: sess.run(None, {"mel": mel.numpy()}), repeats)
        rows.append(dict(size=name, batch=b, frames=frames, torch_ms=round(t_med, 2), torch_range=[round(t_min, 2), round(t_max, 2)],
                         ort_ms=round(o_med, 2), ort_range=[round(o_min, 2), round(o_max, 2)],
                         ratio_ort_over_torch=round(o_med / t_med, 3), max_abs_diff=float(np.abs(got - ref).max()),
                         export_s=round(export_s, 1), threads=torch.get_num_threads()))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "encoder_onnx.json")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batches", default="1,4")
    args = parser.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",")]
    rows = []
    for name in SIZES:
        rows += bench_size(name, batches, args.repeats)
    print(f"{'size':6} {'B':>3} {'frames':>6} {'torch ms':>9} {'ort ms':>9} {'ort/torch':>9} {'max diff':>9}")
    for r in rows:
        print(f"{r['size']:6} {r['batch']:>3} {r['frames']:>6} {r['torch_ms']:9.1f} {r['ort_ms']:9.1f} "
              f"{r['ratio_ort_over_torch']:9.3f} {r['max_abs_diff']:9.2g}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"bench": "encoder_onnx", "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
