"""GPU check: a 7B-shaped Qwen2-Audio in 4-bit NF4 with the ONNX thinking block, timed per stage.

Builds Qwen2-Audio-7B's architecture from its config with random weights (speed does not depend on
the weight values), quantizes every linear layer but ``lm_head`` to NF4 with bitsandbytes (what a
site's ``quantization: nf4`` load does), exports a CoAT thinking block to ONNX and runs it in
onnxruntime (CUDA provider when this onnxruntime has one), then times, at batch 1/8/32:

* ``encoder``: mel (B, 128, 3000) -> audio tower + projector -> (B, 750, 4096)
* ``thinking``: the ONNX block (and the torch block on the same device, for comparison)
* ``prefill``: one decoder call over [prefix][audio][think_open][K thinking][think_close][prompt],
  with and without the thinking block
* ``decode``: cached single-token steps after that prefill, with and without the thinking block

and runs the site path once on a tiny model: export a bundle, ``load_bundle(quantization="nf4")`` on
CUDA (fp32 on the CPU) with the ONNX block swapped in, and compare label probabilities with torch fp32.

Every step is caught on its own: a failure (out of memory, a missing provider) is recorded with
its error and the rest still runs; the JSON is rewritten after every step, so a run killed at its
time limit still leaves what it measured. A budget (``--budget-s``) skips what would not fit.

Usage::

    python -m bench.speed.gpu_check                    # the real check, on a CUDA machine (~3-6 min)
    python -m bench.speed.gpu_check --tiny             # tiny config on the CPU (~30 s), what the tests run

Needs on the GPU machine: torch with CUDA, transformers 5.x, bitsandbytes, accelerate, onnx,
onnxscript, onnxruntime (onnxruntime-gpu for the CUDA provider), pydantic, and this repository on
``PYTHONPATH``. Output: ``--out PATH``, else ``$OUT/gpu_check.json`` when ``OUT`` is set, else
``bench/results/gpu_check.json``.

On this project's lent H100/H200 image (torch 2.11 cu130, transformers 5.17, onnxruntime 1.30 CPU-only,
no bitsandbytes, no pydantic) carry these wheels (~59 MB, downloaded for cp312 manylinux x86_64 with
``pip download --no-deps``): bitsandbytes==0.50.2, transformers==5.24.0, pydantic, pydantic-core,
annotated-types, typing-inspection; then run
``pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && PYTHONPATH=/tmp/site:. python3
bench/speed/gpu_check.py``. That image's onnxruntime has no CUDA provider and onnxruntime-gpu's CUDA 12 /
cuDNN libraries are too large to carry: the report then shows the thinking block on the CPU provider
(``thinking_onnx``) next to the torch block on the GPU (``thinking_torch``).
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

from bench.common import REPO

os.environ.setdefault("HF_HUB_OFFLINE", "1")

#: Qwen2-Audio-7B(-Instruct)'s published shape.
QWEN2_AUDIO_7B = dict(
    text=dict(vocab_size=156032, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
              num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=8192, rope_theta=10000.0),
    audio=dict(num_mel_bins=128, d_model=1280, encoder_layers=32, encoder_attention_heads=20, encoder_ffn_dim=5120,
               max_source_positions=1500),
)
#: CoAT thinking block at the CoatConfig defaults (K=16, 2 layers, width 256, 4 heads).
THINKING = dict(num_queries=16, dim=256, layers=2, heads=4)
THINKING_TINY = dict(num_queries=4, dim=32, layers=1, heads=2)


class Report:
    """The JSON report, rewritten after every step; ``step`` runs one measurement and catches its failure."""

    def __init__(self, path: Path, budget_s: float):
        self.path = path
        self.t0 = time.perf_counter()
        self.budget_s = budget_s
        self.data: dict = {"script": "bench/speed/gpu_check.py", "started": dt.datetime.now(dt.timezone.utc).isoformat(),
                           "steps": {}, "results": [], "errors": []}

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def write(self) -> None:
        self.data["elapsed_s"] = round(self.elapsed(), 2)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2, default=str) + "\n")
        os.replace(tmp, self.path)

    def step(self, name: str, fn, *, reserve_s: float = 0.0):
        """Run ``fn()``; record its dict result (or its error) under steps[name]; return the result or None."""
        if self.elapsed() + reserve_s > self.budget_s:
            self.data["steps"][name] = {"ok": False, "skipped": f"time budget {self.budget_s:.0f} s spent"}
            self.write()
            return None
        t = time.perf_counter()
        try:
            result = fn()
        except Exception as exc:  # one failed measurement must not lose the others
            _free_memory()
            err = f"{type(exc).__name__}: {exc}"
            self.data["steps"][name] = {"ok": False, "error": err[:2000], "seconds": round(time.perf_counter() - t, 2)}
            self.data["errors"].append({"step": name, "error": err[:2000], "trace": traceback.format_exc()[-3000:]})
            print(f"[{self.elapsed():7.1f}s] {name}: FAILED {err[:300]}", flush=True)
            self.write()
            return None
        entry = {"ok": True, "seconds": round(time.perf_counter() - t, 2)}
        if isinstance(result, dict):
            entry.update({k: v for k, v in result.items() if not k.startswith("_")})
        self.data["steps"][name] = entry
        print(f"[{self.elapsed():7.1f}s] {name}: ok {json.dumps({k: v for k, v in entry.items()}, default=str)[:300]}",
              flush=True)
        self.write()
        return result


def _free_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, repeats: int) -> dict:
    """Median/min/max milliseconds of ``fn()`` over ``repeats`` runs after one warm-up run."""
    fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - t) * 1000)
    return {"median_ms": round(statistics.median(times), 3), "min_ms": round(min(times), 3),
            "max_ms": round(max(times), 3), "repeats": repeats}


# -- model construction --------------------------------------------------------------------------


def base_config(tiny: bool):
    import transformers as tf

    if tiny:
        from edge_coat.model.tiny import tiny_base_config

        return tiny_base_config("qwen2_audio", vocab_size=512, n_mels=128, max_seconds=5)
    text = dict(model_type="qwen2", **QWEN2_AUDIO_7B["text"])
    return tf.Qwen2AudioConfig(audio_config=dict(QWEN2_AUDIO_7B["audio"]), text_config=text)


def _to_nf4(module, device, compute_dtype) -> int:
    """Replace every nn.Linear below ``module`` (lm_head excepted) by a bitsandbytes NF4 Linear4bit.

    Hand-written: transformers' bitsandbytes path quantizes only while loading a checkpoint from disk,
    and writing then reading a 15 GB random checkpoint would take most of the check's 10 minutes.
    """
    import bitsandbytes as bnb
    from torch import nn

    count = 0
    for name, child in list(module.named_children()):
        if isinstance(child, nn.Linear) and name != "lm_head":
            q = bnb.nn.Linear4bit(child.in_features, child.out_features, bias=child.bias is not None,
                                  compute_dtype=compute_dtype, compress_statistics=True, quant_type="nf4",
                                  device="meta")
            weight = child.weight.data.to(device, compute_dtype)
            q.weight = bnb.nn.Params4bit(weight, requires_grad=False, compress_statistics=True,
                                         quant_type="nf4").to(device)  # quantizes on the move to CUDA
            if child.bias is not None:
                q.bias = nn.Parameter(child.bias.data.to(device, compute_dtype), requires_grad=False)
            setattr(module, name, q)
            count += 1
        else:
            count += _to_nf4(child, device, compute_dtype)
    return count


def build_model(config, device, dtype, quantize: bool):
    """Qwen2-Audio with random weights; decoder layers are built one at a time and quantized at once,
    so the full-precision 7B never exists in memory (peak: the non-decoder parts + one layer)."""
    import torch
    import transformers as tf
    from transformers.models.qwen2.modeling_qwen2 import Qwen2DecoderLayer

    from edge_coat.model.adapters import ADAPTERS

    n_layers = int(config.text_config.num_hidden_layers)
    shell_cfg = copy.deepcopy(config)
    shell_cfg.text_config.num_hidden_layers = 0
    with torch.device(device):
        model = tf.Qwen2AudioForConditionalGeneration(shell_cfg)
    model.to(dtype)
    quantized = _to_nf4(model, device, dtype) if quantize else 0
    llm = model.model.language_model
    llm.config.num_hidden_layers = n_layers
    model.config.text_config.num_hidden_layers = n_layers
    for i in range(n_layers):
        with torch.device(device):
            layer = Qwen2DecoderLayer(llm.config, layer_idx=i)
        layer.to(dtype)
        if quantize:
            quantized += _to_nf4(layer, device, dtype)
        llm.layers.append(layer)
    model.eval()
    return ADAPTERS["qwen2_audio"](model), quantized


# -- measurements --------------------------------------------------------------------------------


def measure_batch(adapter, thinking_onnx, thinking_torch, think_open, think_close, batch: int, args, device):
    import torch

    from edge_coat.model.decoding import prefill
    from edge_coat.model.sequence import assemble

    n_mels, frames = adapter.n_mels, adapter.max_frames
    vocab = adapter.vocab_size
    gen = torch.Generator(device="cpu").manual_seed(batch)
    mel = torch.randn(batch, n_mels, frames, generator=gen).to(device)  # (B, n_mels, F): a full-length window
    mel_mask = torch.ones(batch, frames, dtype=torch.long, device=device)  # (B, F)
    prefix_ids = torch.randint(4, vocab, (8,), generator=gen).tolist()
    prompt_ids = [torch.randint(4, vocab, (16,), generator=gen).tolist()] * batch
    out: dict = {"batch": batch}
    with torch.no_grad():
        enc = timed(lambda: adapter.encode_audio(mel, mel_mask), device, args.repeats)
        audio, audio_mask = adapter.encode_audio(mel, mel_mask)  # (B, T, D), (B, T)
        out["encoder"] = enc
        out["audio_frames"] = int(audio.shape[1])
        if thinking_onnx is not None:
            out["thinking_onnx"] = timed(lambda: thinking_onnx(audio, audio_mask), device, args.repeats)
            thinking = thinking_onnx(audio, audio_mask).to(device, audio.dtype)  # (B, K, D)
        else:
            thinking = thinking_torch(audio.float(), audio_mask).to(audio.dtype)
        out["thinking_torch"] = timed(lambda: thinking_torch(audio.float(), audio_mask), device, args.repeats)
        for label, think in (("with_thinking", thinking), ("without_thinking", None)):
            asm = assemble(adapter.embed_tokens, prefix_ids, audio, audio_mask, prompt_ids, thinking=think,
                           think_open=think_open, think_close=think_close)
            row = {"sequence_length": int(asm.embeds.shape[1])}
            row["prefill"] = timed(lambda asm=asm: prefill(adapter, asm), device, args.repeats)
            row["decode_per_token"] = _decode_timing(adapter, asm, args.decode_tokens, device, args.repeats)
            out[label] = row
            del asm
            _free_memory()
    w, wo = out["with_thinking"], out["without_thinking"]
    out["prefill_ratio_with_vs_without"] = round(w["prefill"]["median_ms"] / wo["prefill"]["median_ms"], 4)
    out["decode_ratio_with_vs_without"] = round(
        w["decode_per_token"]["median_ms"] / wo["decode_per_token"]["median_ms"], 4)
    if torch.cuda.is_available():
        out["gpu_peak_gb"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    return out


def _decode_timing(adapter, asm, tokens: int, device, repeats: int) -> dict:
    """Per-token milliseconds of ``tokens`` cached greedy steps after one prefill (prefill not timed)."""
    import torch

    from edge_coat.model.decoding import prefill

    per_token = []
    for _ in range(repeats + 1):  # the first round warms up
        pre = prefill(adapter, asm)
        cache, attn, nxt = pre.cache, asm.attention_mask, pre.logits_last.argmax(-1)  # nxt (B,)
        b = attn.shape[0]
        _sync(device)
        t = time.perf_counter()
        for step in range(1, tokens + 1):
            attn = torch.cat([attn, torch.ones(b, 1, dtype=attn.dtype, device=attn.device)], 1)  # (B, L+step)
            pos = (asm.lengths + step - 1)[:, None]  # (B, 1)
            o = adapter.decode(adapter.embed_tokens(nxt[:, None]), attn, pos, cache=cache, use_cache=True)
            cache = o.cache
            nxt = adapter.lm_head(o.last_hidden_state[:, -1]).argmax(-1)
        _sync(device)
        per_token.append((time.perf_counter() - t) * 1000 / tokens)
        del pre, cache
    per_token = per_token[1:]
    return {"median_ms": round(statistics.median(per_token), 3), "min_ms": round(min(per_token), 3),
            "max_ms": round(max(per_token), 3), "tokens": tokens, "repeats": repeats}


def environment() -> dict:
    import importlib.metadata as md

    import torch

    env = {"python": sys.version.split()[0], "torch": torch.__version__, "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
        env["gpu_memory_gb"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
    for pkg in ("transformers", "bitsandbytes", "accelerate", "onnx", "onnxscript", "onnxruntime",
                "onnxruntime-gpu"):
        try:
            env[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            env[pkg] = None
    try:
        import onnxruntime

        env["onnxruntime_providers"] = onnxruntime.get_available_providers()
    except ImportError as exc:
        env["onnxruntime_providers"] = f"unavailable: {exc}"
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny config on the CPU (tests); no 4-bit")
    parser.add_argument("--out", type=Path, default=None, help="JSON output path")
    parser.add_argument("--batches", default="1,8,32", help="comma-separated batch sizes (default 1,8,32)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement, after one warm-up")
    parser.add_argument("--decode-tokens", type=int, default=16, help="decode steps timed per prefill")
    parser.add_argument("--budget-s", type=float, default=540.0, help="stop starting new steps after this many s")
    parser.add_argument("--no-quant", action="store_true", help="keep bf16 weights on CUDA (no NF4)")
    args = parser.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",") if b.strip()]
    if not batches or min(batches) < 1 or args.repeats < 1 or args.decode_tokens < 1:
        parser.error("--batches, --repeats and --decode-tokens need positive integers")
    out = args.out or (Path(os.environ["OUT"]) / "gpu_check.json" if os.environ.get("OUT")
                       else REPO / "bench" / "results" / "gpu_check.json")
    report = Report(out, args.budget_s)

    import torch

    cuda = torch.cuda.is_available() and not args.tiny
    device = torch.device("cuda:0" if cuda else "cpu")
    dtype = torch.bfloat16 if cuda else torch.float32
    quantize = cuda and not args.no_quant
    report.data.update(tiny=args.tiny, device=str(device), dtype=str(dtype).removeprefix("torch."),
                       quantization="nf4" if quantize else ("bf16" if cuda else "fp32"), batches=batches,
                       thinking=THINKING_TINY if args.tiny else THINKING)
    report.step("environment", environment)

    state: dict = {}

    def build():
        config = base_config(args.tiny)
        torch.manual_seed(0)
        adapter, n_q = build_model(config, device, dtype, quantize)
        state["adapter"] = adapter
        params = sum(p.numel() for p in adapter.model.parameters())
        info = {"linear_layers_nf4": n_q, "stored_parameters": int(params),
                "text_layers": adapter.num_layers, "hidden": adapter.hidden_size, "vocab": adapter.vocab_size}
        if cuda:
            info["gpu_allocated_gb"] = round(torch.cuda.memory_allocated(device) / 2**30, 2)
        return info

    if report.step("build", build) is None:
        return 1
    adapter = state["adapter"]

    def thinking_export():
        from edge_coat.export.onnx_export import export_thinking
        from edge_coat.model.thinking import ThinkingBlock

        t = THINKING_TINY if args.tiny else THINKING
        d = adapter.hidden_size
        block = ThinkingBlock(audio_dim=adapter.audio_dim, out_dim=d, num_queries=t["num_queries"], dim=t["dim"],
                              layers=t["layers"], heads=t["heads"]).eval()
        state["torch_block"] = block.to(device)
        state["think_open"] = torch.randn(d, device=device, dtype=dtype) * 0.02  # (D,)
        state["think_close"] = torch.randn(d, device=device, dtype=dtype) * 0.02  # (D,)
        path = export_thinking(block, Path(tempfile.mkdtemp(prefix="gpu_check-")) / "thinking.onnx")
        state["onnx_path"] = path
        return {"onnx_bytes": path.stat().st_size}

    report.step("thinking_export", thinking_export)

    def thinking_session():
        from edge_coat.model.config import ThinkingRuntimeConfig
        from edge_coat.model.runtime import OnnxThinkingBlock

        block = OnnxThinkingBlock(state["onnx_path"], ThinkingRuntimeConfig(provider="auto"))
        state["onnx_block"] = block
        # Parity on this device: the ONNX block vs the torch block, fp32, on a 30 s-long random batch.
        x = torch.randn(2, 750, block.audio_dim, device=device)  # (2, T, Da)
        m = torch.ones(2, 750, dtype=torch.bool, device=device)
        m[1, 300:] = False
        with torch.no_grad():
            diff = float((block(x, m).to(device) - state["torch_block"](x, m)).abs().max())
        return {"provider": block.provider, "parity_max_abs_diff": diff}

    if "onnx_path" in state:
        report.step("thinking_session", thinking_session)

    def site_path():
        import numpy as np

        from edge_coat.export.bundle import export_bundle
        from edge_coat.export.parity import synthetic_waves
        from edge_coat.model.config import ThinkingRuntimeConfig
        from edge_coat.model.loading import describe_thinking, load_bundle
        from edge_coat.model.tiny import tiny_coat_model

        root = Path(tempfile.mkdtemp(prefix="gpu_check-site-"))
        reference = tiny_coat_model("qwen2_audio", seed=0)
        export_bundle(reference.save_pretrained(root / "src"), root / "bundle", license="test only")
        loaded = load_bundle(root / "bundle", quantization="nf4" if cuda else "fp32",
                             runtime=ThinkingRuntimeConfig(provider="auto"))
        waves = synthetic_waves((1.0, 4.0))
        want = reference.score_task(waves, "emotion").probs
        got = loaded.score_task(waves, "emotion").probs
        return {"quantization": loaded.quantization, "thinking": describe_thinking(loaded),
                "model_device": str(loaded.device), "max_prob_diff_vs_fp32_torch": float(np.abs(got - want).max())}

    report.step("site_path", site_path, reserve_s=60.0)

    for b in batches:
        def run_batch(b=b):
            row = measure_batch(adapter, state.get("onnx_block"), state["torch_block"], state["think_open"],
                                state["think_close"], b, args, device)
            report.data["results"].append(row)
            return {"_row": row, "encoder_ms": row["encoder"]["median_ms"],
                    "prefill_ratio": row["prefill_ratio_with_vs_without"]}

        if "torch_block" in state:
            report.step(f"batch_{b}", run_batch, reserve_s=15.0)
        _free_memory()

    print_table(report.data["results"])
    report.write()
    print(f"wrote {out}")
    return 1 if report.data["errors"] else 0


def print_table(rows: list[dict]) -> None:
    if not rows:
        print("no batch was measured")
        return
    head = (f"{'B':>3} {'encoder':>9} {'think onnx':>10} {'think torch':>11} {'prefill +T':>10} {'prefill -T':>10}"
            f" {'ratio':>6} {'dec/tok +T':>10} {'dec/tok -T':>10}  (ms, medians)")
    print(head)
    for r in rows:
        onnx = r.get("thinking_onnx", {}).get("median_ms", float("nan"))
        w, wo = r["with_thinking"], r["without_thinking"]
        print(f"{r['batch']:>3} {r['encoder']['median_ms']:9.2f} {onnx:10.2f} {r['thinking_torch']['median_ms']:11.2f}"
              f" {w['prefill']['median_ms']:10.2f} {wo['prefill']['median_ms']:10.2f}"
              f" {r['prefill_ratio_with_vs_without']:6.3f} {w['decode_per_token']['median_ms']:10.2f}"
              f" {wo['decode_per_token']['median_ms']:10.2f}")


if __name__ == "__main__":
    sys.exit(main())
