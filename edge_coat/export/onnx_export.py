"""Export of the thinking block to ONNX with dynamic batch and time axes.

``torch.onnx.export(..., dynamo=True)`` traces the block with ``torch.export``; batch and time are
declared as symbolic dims so one graph serves any batch size and any window length (FACTS.md: the
SDPA form keeps them symbolic; the legacy exporter bakes the traced length in).
"""

from __future__ import annotations

import copy
import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from edge_coat.model.runtime import INPUT_EMBEDS, INPUT_MASK, OUTPUT, THINKING_ONNX

log = logging.getLogger(__name__)



def block_dims(block: nn.Module) -> tuple[int, int, int]:
    """(audio_dim Da, num_queries K, out_dim D) of a torch ThinkingBlock."""
    return int(block.in_proj.in_features), int(block.num_queries), int(block.out_proj.out_features)


def export_thinking(block: nn.Module, path: str | Path, *, example_frames: int = 37) -> Path:
    """Write ``block`` as ONNX to ``path``: inputs audio_embeds (B, T, Da) float32, audio_mask (B, T)
    bool; output thinking (B, K, D) float32; B and T dynamic. The caller's block is not modified."""
    path = Path(path)
    audio_dim, _, _ = block_dims(block)
    # Export a float32 CPU copy: the served block may live on a GPU or in bf16.
    cpu_block = copy.deepcopy(block).to("cpu", torch.float32).eval()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, example_frames, audio_dim, generator=gen)  # (2, T, Da)
    m = torch.ones(2, example_frames, dtype=torch.bool)  # (2, T)
    m[1, example_frames // 2 :] = False
    batch = torch.export.Dim("batch", min=1)
    time = torch.export.Dim("time", min=1)
    save_onnx(cpu_block, (x, m), path, input_names=[INPUT_EMBEDS, INPUT_MASK], output_names=[OUTPUT],
              dynamic_shapes={"audio_embeds": {0: batch, 1: time}, "audio_mask": {0: batch, 1: time}})
    log.info("exported thinking block to %s (%d bytes)", path, path.stat().st_size)
    return path


def save_onnx(module: nn.Module, args: tuple, path: Path, *, input_names: list[str], output_names: list[str],
              dynamic_shapes: dict) -> Path:
    """``torch.onnx.export(dynamo=True)`` of ``module`` on ``args`` into one self-contained, checked file."""
    import onnx

    # The exporter warns about torchvision ops it cannot register; our graphs use none of them.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.export's deprecation chatter, not ours to fix
        program = torch.onnx.export(module, args, dynamo=True, input_names=input_names, output_names=output_names,
                                    dynamic_shapes=dynamic_shapes, optimize=True, verbose=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    program.save(str(path), external_data=False)  # the graphs are small (MBs): one self-contained file
    onnx.checker.check_model(str(path))
    return path
