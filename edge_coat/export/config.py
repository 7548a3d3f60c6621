"""Site-config section for how the thinking block runs (``model.thinking`` in the site config)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ThinkingRuntimeConfig(BaseModel):
    """Where and how the thinking block runs at serving time."""

    model_config = ConfigDict(extra="forbid")

    backend: Literal["onnx", "torch"] = Field(
        default="onnx",
        description="onnx: the bundle's thinking.onnx in onnxruntime (production); torch: the torch module (debugging)",
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
    verify_bundle: bool = Field(
        default=True, description="check every file against manifest.json at load (refuse modified/truncated files)"
    )
