"""Export of the thinking block to ONNX with dynamic batch and time axes.

``torch.onnx.export(..., dynamo=True)`` traces the block with ``torch.export``; batch and time are
declared as symbolic dims so one graph serves any batch size and any window length (FACTS.md: the
SDPA form keeps them symbolic; the legacy exporter bakes the traced length in).

``export_thinking_parts`` writes the block's two parts as well (``ThinkingBlock.frame_features``:
``thinking_frames.onnx``, audio_embeds (B, T, Da) -> thinking_frames (B, T, F); ``from_frames``:
``thinking_window.onnx``, thinking_frames (B, T, F) + audio_mask (B, T) -> thinking (B, K, D)), so a
server can keep each audio frame's part per stream (``edge_coat.worker.encoder_cache``).

Why a graph of its own for the per-frame part, not outputs folded into ``encoder.onnx``: only the
Qwen2-Audio family exports its encoder (the others encode in torch and still get the split), the encoder
graph's parity stays the encoder's, and the call it would save costs little next to the per-frame work
(one onnxruntime call per batch of new chunks: BENCHMARKS.md section 6, "thinking cache").

``link_to_safetensors`` points a graph's weights at the bundle's own safetensors files instead of copying
them: the exporter writes each weight as a float32 initializer (often transposed, for MatMul), while the
bundle already holds the same numbers in ``model.safetensors`` / ``coat.safetensors`` (float16 for
coat-tiny). An initializer whose values equal a stored tensor (or its transpose) becomes an external
reference into that file plus ``Cast`` (and ``Transpose``) nodes, which onnxruntime folds once when the
session starts, so the computation is the same float32 arithmetic on the same values. coat-tiny 1.3's
encoder graph held its 24 MB of weights a second time; linked, it is 0.3 MB and gives bit-identical
outputs.
``share_weights`` moves what is left (tensors no safetensors file holds) of the three thinking graphs into
one external-data file (``thinking.weights``) holding each distinct tensor once: the two parts hold the
same weights as ``thinking.onnx``.
"""

from __future__ import annotations

import copy
import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from edge_coat.model.runtime import (
    CAST_SUFFIX,
    INPUT_EMBEDS,
    INPUT_FRAMES,
    INPUT_MASK,
    OUTPUT,
    OUTPUT_FRAMES,
    STORED_SUFFIX,
    THINKING_FRAMES_ONNX,
    THINKING_WINDOW_ONNX,
)

log = logging.getLogger(__name__)



def block_dims(block: nn.Module) -> tuple[int, int, int]:
    """(audio_dim Da, num_queries K, out_dim D) of a torch ThinkingBlock."""
    return int(block.in_proj.in_features), int(block.num_queries), int(block.out_proj.out_features)


def _example(block: nn.Module, frames: int):
    """(float32 CPU copy of ``block``, example embeds (2, T, Da), mask (2, T) with a padded row, batch and
    time dims) for tracing: the served block may live on a GPU or in bf16."""
    audio_dim, _, _ = block_dims(block)
    cpu_block = copy.deepcopy(block).to("cpu", torch.float32).eval()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, frames, audio_dim, generator=gen)  # (2, T, Da)
    m = torch.ones(2, frames, dtype=torch.bool)  # (2, T)
    m[1, frames // 2:] = False
    return cpu_block, x, m, torch.export.Dim("batch", min=1), torch.export.Dim("time", min=1)


def export_thinking(block: nn.Module, path: str | Path, *, example_frames: int = 37) -> Path:
    """Write ``block`` as ONNX to ``path``: inputs audio_embeds (B, T, Da) float32, audio_mask (B, T)
    bool; output thinking (B, K, D) float32; B and T dynamic. The caller's block is not modified."""
    path = Path(path)
    cpu_block, x, m, batch, time = _example(block, example_frames)
    save_onnx(cpu_block, (x, m), path, input_names=[INPUT_EMBEDS, INPUT_MASK], output_names=[OUTPUT],
              dynamic_shapes={"audio_embeds": {0: batch, 1: time}, "audio_mask": {0: batch, 1: time}})
    log.info("exported thinking block to %s (%d bytes)", path, path.stat().st_size)
    return path


class _FramesGraph(nn.Module):
    """``ThinkingBlock.frame_features`` as a graph's forward."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.block = block

    def forward(self, audio_embeds: torch.Tensor) -> torch.Tensor:
        return self.block.frame_features(audio_embeds)  # (B, T, F)


class _WindowGraph(nn.Module):
    """``ThinkingBlock.from_frames`` as a graph's forward."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.block = block

    def forward(self, frames: torch.Tensor, audio_mask: torch.Tensor) -> torch.Tensor:
        return self.block.from_frames(frames, audio_mask)  # (B, K, D)


def export_thinking_parts(block: nn.Module, folder: str | Path, *, example_frames: int = 37) -> tuple[Path, Path]:
    """Write ``block``'s per-frame and per-window parts (a torch ThinkingBlock) as ``thinking_frames.onnx``
    and ``thinking_window.onnx`` in ``folder`` (see the module docstring); B and T dynamic. Returns their
    paths. The caller's block is not modified."""
    folder = Path(folder)
    cpu_block, x, m, batch, time = _example(block, example_frames)
    with torch.no_grad():
        frames = cpu_block.frame_features(x)  # (2, T, F)
    frames_path = save_onnx(_FramesGraph(cpu_block), (x,), folder / THINKING_FRAMES_ONNX,
                            input_names=[INPUT_EMBEDS], output_names=[OUTPUT_FRAMES],
                            dynamic_shapes={"audio_embeds": {0: batch, 1: time}})
    window_path = save_onnx(_WindowGraph(cpu_block), (frames, m), folder / THINKING_WINDOW_ONNX,
                            input_names=[INPUT_FRAMES, INPUT_MASK], output_names=[OUTPUT],
                            dynamic_shapes={"frames": {0: batch, 1: time}, "audio_mask": {0: batch, 1: time}})
    log.info("exported the thinking block's parts to %s (%d bytes) and %s (%d bytes)", frames_path,
             frames_path.stat().st_size, window_path, window_path.stat().st_size)
    return frames_path, window_path


#: safetensors dtype -> (numpy dtype, ONNX TensorProto data type) for the dtypes a graph can reference.
_ST_DTYPES = {"F16": ("float16", 10), "F32": ("float32", 1)}


def safetensors_layout(path: Path) -> dict[str, tuple[str, tuple[int, ...], int, int]]:
    """{tensor name: (dtype, shape, byte offset in the file, byte length)} of a safetensors file.

    Read by hand because the ``safetensors`` package gives tensors, not where they lie in the file, and an
    ONNX external reference needs the file offset. The format is fixed and documented: an unsigned 64-bit
    little-endian header length N, N bytes of JSON ({name: {dtype, shape, data_offsets: [begin, end]}}),
    then the data, offsets relative to its start."""
    import json
    import struct

    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    return {name: (info["dtype"], tuple(info["shape"]), 8 + n + info["data_offsets"][0],
                   info["data_offsets"][1] - info["data_offsets"][0])
            for name, info in header.items() if name != "__metadata__"}


def link_to_safetensors(paths: list[Path], stores: list[Path], *, min_bytes: int = 1024) -> int:
    """Rewrite the self-contained graphs at ``paths`` so that each float32 initializer of at least ``min_bytes``
    whose values equal a float16/float32 tensor of one of the safetensors files ``stores`` (same folder as the
    graphs), or that tensor transposed, is read from that file: an external reference to the stored tensor,
    then ``Cast`` to float32 (and ``Transpose``) under the initializer's old name. Other initializers stay as
    they are. Returns how many were linked."""
    import hashlib

    import numpy as np
    import onnx
    from onnx import helper, numpy_helper
    from onnx.external_data_helper import set_external_data

    def key(a: np.ndarray) -> str:
        a = np.ascontiguousarray(a, dtype=np.float32)
        return hashlib.sha256(f"{a.shape}:".encode() + a.tobytes()).hexdigest()

    found: dict[str, tuple[Path, str, tuple[int, ...], int, int, bool]] = {}  # value key -> where, transposed?
    for store in stores:
        blob = np.memmap(store, dtype=np.uint8, mode="r")  # reads only the float16/float32 tensors, on demand
        for name, (dtype, shape, offset, length) in safetensors_layout(store).items():
            if dtype not in _ST_DTYPES or length < min_bytes // 2:
                continue
            arr = np.frombuffer(blob, dtype=_ST_DTYPES[dtype][0], count=int(np.prod(shape)), offset=offset).reshape(shape)
            found.setdefault(key(arr), (store, dtype, shape, offset, length, False))
            if arr.ndim == 2:
                found.setdefault(key(arr.T), (store, dtype, shape, offset, length, True))
    linked = 0
    for path in paths:
        model = onnx.load(str(path), load_external_data=False)
        graph, nodes = model.graph, []
        for tensor in list(graph.initializer):
            if tensor.data_type != onnx.TensorProto.FLOAT or tensor.data_location == onnx.TensorProto.EXTERNAL:
                continue
            value = numpy_helper.to_array(tensor)
            hit = found.get(key(value)) if value.nbytes >= min_bytes else None
            if hit is None:
                continue
            store, dtype, shape, offset, length, transposed = hit
            stored = onnx.TensorProto(name=f"{tensor.name}{STORED_SUFFIX}", data_type=_ST_DTYPES[dtype][1], dims=shape)
            stored.raw_data = b"\0" * length  # set_external_data wants a raw_data field to replace
            set_external_data(stored, location=store.name, offset=offset, length=length)
            stored.data_location = onnx.TensorProto.EXTERNAL
            stored.ClearField("raw_data")
            graph.initializer.remove(tensor)
            graph.initializer.append(stored)
            cast_out = f"{tensor.name}{CAST_SUFFIX}" if transposed else tensor.name
            nodes.append(helper.make_node("Cast", [stored.name], [cast_out], to=onnx.TensorProto.FLOAT))
            if transposed:
                nodes.append(helper.make_node("Transpose", [cast_out], [tensor.name], perm=[1, 0]))
            linked += 1
        if nodes:  # they read only initializers, so they go first and the node order stays topological
            rest = list(graph.node)
            del graph.node[:]
            graph.node.extend(nodes + rest)
            onnx.save(model, str(path))
            onnx.checker.check_model(str(path))
    log.info("%d graph weights read from %s", linked, ", ".join(s.name for s in stores))
    return linked


def share_weights(paths: list[Path], data_name: str, *, min_bytes: int = 1024, align: int = 64) -> Path | None:
    """Rewrite the self-contained graphs at ``paths`` (one folder) so that their weights of at least
    ``min_bytes`` live in one external-data file ``data_name`` beside them, each distinct tensor (same dtype,
    shape and bytes) once, at ``align``-byte offsets. onnxruntime reads it from the graph's folder. Returns the
    data file's path, or None (and no file) when no graph has such a weight left."""
    import hashlib

    import onnx
    from onnx import numpy_helper
    from onnx.external_data_helper import set_external_data

    folder = paths[0].parent
    data_path = folder / data_name
    where: dict[str, tuple[int, int]] = {}  # content key -> (offset, length)
    with open(data_path, "wb") as f:
        for path in paths:
            model = onnx.load(str(path), load_external_data=False)
            for tensor in model.graph.initializer:
                if tensor.data_location == onnx.TensorProto.EXTERNAL:
                    continue  # read from a safetensors file already (link_to_safetensors)
                raw = numpy_helper.to_array(tensor).tobytes()  # little-endian, as ONNX raw_data stores it
                if len(raw) < min_bytes:
                    continue
                key = hashlib.sha256(f"{tensor.data_type}:{list(tensor.dims)}:".encode() + raw).hexdigest()
                if key not in where:
                    offset = -(-f.tell() // align) * align
                    f.write(b"\0" * (offset - f.tell()))
                    f.write(raw)
                    where[key] = (offset, len(raw))
                offset, length = where[key]
                for field in ("float_data", "int32_data", "int64_data", "double_data", "uint64_data"):
                    tensor.ClearField(field)
                tensor.raw_data = raw  # set_external_data wants a raw_data field to replace
                set_external_data(tensor, location=data_name, offset=offset, length=length)
                tensor.data_location = onnx.TensorProto.EXTERNAL
                tensor.ClearField("raw_data")
            onnx.save(model, str(path))
            onnx.checker.check_model(str(path))
    if not where:
        data_path.unlink()
        return None
    log.info("thinking graphs' weights shared in %s (%d bytes, %d tensors)", data_path, data_path.stat().st_size,
             len(where))
    return data_path


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
