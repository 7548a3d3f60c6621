"""Site-config sections for how the exported parts run (``model.thinking`` and ``model.encoder``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class OnnxRuntimeSection(BaseModel):
    """How an exported part runs in onnxruntime (shared by ``model.thinking`` and ``model.encoder``)."""

    model_config = ConfigDict(extra="forbid")

    backend: Literal["onnx", "torch"] = Field(
        default="onnx", description="onnx: the bundle's ONNX graph in onnxruntime; torch: the torch module"
    )
    provider: Literal["auto", "cpu", "cuda"] = Field(
        default="auto",
        description="onnxruntime execution provider: auto = CUDA when onnxruntime offers it, else CPU; "
        "cuda fails at load when CUDA is not available",
    )
    device_id: int = Field(default=0, ge=0, le=63, description="CUDA device index for the CUDA provider")
    intra_op_threads: int = Field(
        default=0, ge=0, le=256, description="threads inside one operator; 0 = onnxruntime's default (physical cores)"
    )
    inter_op_threads: int = Field(default=1, ge=0, le=256, description="threads across operators; 0 = default")
    graph_optimization: Literal["disable", "basic", "extended", "all"] = Field(
        default="all", description="onnxruntime graph optimisation level"
    )
    warmup: bool = Field(default=True, description="run the block once at load so the first window is not slow")


class ThinkingRuntimeConfig(OnnxRuntimeSection):
    """Where and how the thinking block runs at serving time."""

    backend: Literal["onnx", "torch"] = Field(
        default="onnx",
        description="onnx: the bundle's thinking.onnx in onnxruntime (production); torch: the torch module (debugging)",
    )
    verify_bundle: bool = Field(
        default=True, description="check every file against manifest.json at load (refuse modified/truncated files)"
    )


class EncoderRuntimeConfig(OnnxRuntimeSection):
    """Where and how the audio encoder (+ projector) runs at serving time (``model.encoder``)."""

    backend: Literal["onnx", "torch"] = Field(
        default="onnx",
        description="onnx: the bundle's encoder.onnx in onnxruntime when the bundle has one (exported for the "
        "Qwen2-Audio family only; otherwise torch, and the log says why); torch: always the base model's encoder",
    )
