"""Configuration of the CoAT model stage.

``CoatConfig`` describes the CoAT additions that sit on top of an unmodified base checkpoint (thinking
block, expert heads, tasks, calibration); it is saved next to the CoAT weights as
``coat_config.json``. ``ModelStageConfig`` is the site-config section the worker uses to load a model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

FAMILIES = ("qwen2_audio", "qwen2_5_omni", "audioflamingo3")
Family = Literal["qwen2_audio", "qwen2_5_omni", "audioflamingo3"]
Quantization = Literal["fp32", "int8", "nf4"]


class ExpertSpec(BaseModel):
    """One audio expert whose readings the thinking positions are distilled toward."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="expert name, the key of its targets in a training batch")
    dim: int = Field(ge=1, le=65536, description="width of the expert's feature vector (bins for kl, tags for bce)")
    loss: Literal["cosine", "mse", "kl", "bce"] = Field(
        description="cosine/mse for embeddings and readings, kl for a distribution over bins, bce for multi-label tags"
    )
    weight: float = Field(default=1.0, ge=0.0, le=1000.0, description="weight of this loss in the total")
    pooled: bool = Field(
        default=True,
        description="True: one target vector per window (B, dim); False: time-resolved targets (B, frames, dim) "
        "pooled into K slot segments, slot k reading the k-th stretch of the window",
    )


class TaskSpec(BaseModel):
    """A task the model answers by scoring candidate labels after a prompt."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: str = Field(min_length=1, description="the task prompt placed after the thinking block")
    labels: list[str] = Field(min_length=2, description="candidate answers, scored by their log-likelihood")


class CoatConfig(BaseModel):
    """The CoAT part of a model: saved as ``coat_config.json``."""

    model_config = ConfigDict(extra="forbid")

    family: Family = Field(description="base model family the CoAT weights attach to")
    num_thinking: int = Field(default=16, ge=1, le=256, description="K, the number of continuous thinking vectors")
    thinking_layers: int = Field(default=2, ge=1, le=12, description="L, layers of the thinking block")
    thinking_heads: int = Field(default=4, ge=1, le=64, description="attention heads in the thinking block")
    thinking_dim: int = Field(
        default=256, ge=8, le=8192, description="inner width of the thinking block (a multiple of thinking_heads)"
    )
    supervised_layer: int = Field(
        default=-1,
        ge=-1,
        le=256,
        description="LLM hidden-state index read by the expert heads at the thinking positions "
        "(0 = input embeddings, i = after decoder layer i, -1 = the last layer)",
    )
    experts: list[ExpertSpec] = Field(default_factory=list, description="experts distilled into the thinking slots")
    answer_weight: float = Field(default=1.0, ge=0.0, le=1000.0, description="weight of the answer cross-entropy")
    temperature: float = Field(
        default=1.0, gt=0.0, le=100.0, description="softmax temperature over candidate log-likelihoods (calibrated)"
    )
    use_thinking: bool = Field(default=True, description="False removes the thinking block from the sequence (ablation)")
    prefix: str = Field(default="", description="text placed before the audio (e.g. a system/user turn opener)")
    answer_prefix: str = Field(
        default=" ", description="prepended to each answer before tokenizing (BPE vocabularies mark word starts)"
    )
    append_eos: bool = Field(default=True, description="score and train answers with the end-of-sequence token")
    tasks: dict[str, TaskSpec] = Field(default_factory=dict, description="task name -> prompt and candidate labels")
    chunk_features: Literal["window", "chunk"] = Field(
        default="window",
        description="log-mel of a window longer than the encoder input: over the whole window then cut ('window'), "
                    "or per encoder chunk ('chunk': a chunk encodes alike in every window, so streams can cache it)",
    )
    storage_dtype: Literal["float32", "float16"] = Field(
        default="float32",
        description="dtype the base weights are written in (float16 halves the bundle; they load as float32 on CPU)",
    )
    clip_seconds: float | None = Field(
        default=None, gt=0.0, le=30.0,
        description="longest clip scored as one window in evaluation, calibration and probes (centre-cropped); "
                    "None = the encoder's input length",
    )

    @model_validator(mode="after")
    def _check(self) -> "CoatConfig":
        if self.thinking_dim % self.thinking_heads:
            raise ValueError(
                f"thinking_dim ({self.thinking_dim}) must be a multiple of thinking_heads ({self.thinking_heads}): "
                "change one of them"
            )
        names = [e.name for e in self.experts]
        if len(set(names)) != len(names):
            raise ValueError(f"expert names must be unique, got {names}")
        return self

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / "coat_config.json"
        path.write_text(json.dumps(self.model_dump(mode="json"), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, directory: str | Path) -> "CoatConfig":
        path = Path(directory) / "coat_config.json"
        if not path.is_file():
            raise FileNotFoundError(f"no coat_config.json in {directory}")
        return cls.model_validate_json(path.read_text())


class ModelStageConfig(BaseModel):
    """Site-config section ``model``: which model the worker loads and how."""

    model_config = ConfigDict(extra="forbid")

    path: Path = Field(description="local model directory (base weights, tokenizer, coat_config.json)")
    coat_path: Path | None = Field(
        default=None, description="directory with coat.safetensors + coat_config.json when separate from `path`"
    )
    quantization: Quantization = Field(
        default="fp32", description="fp32 or int8 (CPU dynamic) or nf4 (bitsandbytes 4-bit, CUDA only)"
    )
    device: str = Field(default="cpu", description="torch device, e.g. cpu or cuda:0")
    max_new_tokens: int = Field(default=16, ge=1, le=512, description="bound on free-text captions")
