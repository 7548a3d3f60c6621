"""Configuration of a training run: what ``edge-coat train`` records as ``run_config.json``.

Everything that decides what a run learns (data, split, model, losses, optimisation, seed) is here,
so a run directory says exactly how its weights were made and ``--resume`` can refuse to continue a
run with different settings.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge_coat.model.config import Family
from edge_coat.train.augment import AugmentConfig

#: Tasks a training folder can answer. ``fault`` reads an anomaly folder's ``fault`` column (the
#: fault type, ``none`` when normal): an auxiliary task for factory data.
TASKS = ("emotion", "anomaly", "events", "fault")

#: Size presets for a new model (``--init FAMILY --size PRESET``): keyword arguments of
#: ``edge_coat.model.tiny.tiny_base_config`` plus the thinking block's width and depth.
SIZE_PRESETS: dict[str, dict] = {
    # ~0.2 M parameters: tests.
    "test": dict(hidden_size=64, num_layers=3, heads=4, audio_dim=32, audio_layers=1, n_mels=32,
                 thinking_dim=32, thinking_layers=1, thinking_heads=2),
    # a few million parameters: the embedded coat-tiny.
    "tiny": dict(hidden_size=256, num_layers=4, heads=4, audio_dim=192, audio_layers=3, n_mels=80,
                 thinking_dim=256, thinking_layers=2, thinking_heads=4),
    # ~15 M parameters.
    "small": dict(hidden_size=384, num_layers=6, heads=6, audio_dim=256, audio_layers=4, n_mels=80,
                  thinking_dim=384, thinking_layers=2, thinking_heads=6),
}


class DataSource(BaseModel):
    """One dataset folder and the task its labels answer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(min_length=1, description="dataset folder (labels.csv with file,label + audio)")
    task: Literal["emotion", "anomaly", "events", "fault"] = Field(description="the task the folder's labels answer")


class TrainConfig(BaseModel):
    """A training run."""

    model_config = ConfigDict(extra="forbid")

    data: list[DataSource] = Field(min_length=1, description="training folders, each with its task")
    init_family: Family | None = Field(default=None, description="build a new model of this family (with init_size)")
    init_size: Literal["test", "tiny", "small"] = Field(default="tiny", description="size preset of a new model")
    init_model: str | None = Field(default=None, description="continue from this model directory instead")
    max_seconds: int = Field(default=5, ge=1, le=30, description="encoder window of a new model, seconds")
    num_thinking: int = Field(default=8, ge=1, le=256, description="K thinking vectors of a new model")
    thinking_summary: bool = Field(
        default=False, description="a new model's thinking block reads a statistics-pooled summary (CoatConfig)"
    )
    summary_frame_mlp: bool = Field(
        default=True, description="a new model's summary has its per-frame MLP (CoatConfig.summary_frame_mlp)"
    )
    thinking_slot_time: bool = Field(
        default=False, description="a new model's thinking slots each lean to their stretch of the window "
                                   "(CoatConfig.thinking_slot_time)"
    )
    standardize_tower: bool = Field(
        default=False,
        description="a new model with a pretrained tower folds the per-channel standardisation of the tower's output "
                    "on its training clips into the tower's final LayerNorm (edge_coat.train.standardize)",
    )
    llm_audio_stride: int = Field(
        default=1, ge=1, le=50, description="a new model averages audio positions in groups of N before the LLM"
    )
    steps: int = Field(default=1000, ge=1, le=10_000_000, description="optimizer steps to reach")
    batch_size: int = Field(default=8, ge=1, le=4096, description="clips per step")
    lr: float = Field(default=1e-3, gt=0.0, le=1.0, description="peak AdamW learning rate")
    weight_decay: float = Field(default=0.01, ge=0.0, le=1.0, description="AdamW weight decay")
    warmup_steps: int = Field(default=50, ge=0, le=1_000_000, description="linear warm-up, then cosine decay to 10%")
    grad_clip: float = Field(default=1.0, gt=0.0, le=1000.0, description="gradient norm clip")
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="seed of python, numpy, torch and the batch sampler")
    checkpoint_every: int = Field(default=200, ge=1, le=10_000_000, description="checkpoint every N steps (and at the end)")
    keep_checkpoints: int = Field(default=3, ge=1, le=1000, description="newest checkpoints kept")
    log_every: int = Field(default=10, ge=1, le=100_000, description="steps per metrics.jsonl line")
    progress: bool = Field(default=True, description="show a tqdm progress bar")
    train_encoder: bool = Field(default=False, description="also train the audio encoder (default: frozen)")
    init_encoder: str | None = Field(
        default=None,
        description="a new model's audio tower from this pretrained encoder folder (edge-coat models import-whisper)",
    )
    encoder_layers: int | None = Field(
        default=None, ge=1, le=64, description="keep the first N blocks of the pretrained encoder (default all)",
    )
    tower_variants: list[Literal["clean", "telephone", "room", "slow", "fast", "excerpt", "noisy"]] = Field(
        default_factory=list,
        description="frozen tower: cache its output once per clip and per channel variant and train on the cache "
                    "(e.g. clean telephone room; slow and fast are 0.9x and 1.1x speed perturbations: see speed_tasks and "
                    "speed_experts; excerpt is the clip's loudest 0.6-1.6 s: see excerpt_tasks; noisy adds coloured "
                    "noise at 0-10 dB SNR); empty = run the tower on augmented waves every step",
    )
    clip_seconds: float | None = Field(
        default=None, gt=0.0, le=30.0,
        description="a new model's evaluation window (CoatConfig.clip_seconds; default: its encoder input)",
    )
    tower_cache: str = Field(default=".cache/tower", description="tower-output cache directory")
    tower_lora_rank: int = Field(
        default=0, ge=0, le=256,
        description="train a LoRA of this rank (peft; q, k, v, out, fc1, fc2) on the pretrained tower's top block; "
                    "the block's input is cached per clip and variant instead of the tower's output, and the LoRA is "
                    "merged into the block when training ends. 0 = the whole tower frozen",
    )
    tower_lora_alpha: float = Field(default=16.0, gt=0.0, le=4096.0, description="the tower LoRA's alpha")
    tower_anchor_weight: float = Field(
        default=0.0, ge=0.0, le=100.0,
        description="weight of a loss that keeps the adapted tower's output near the pretrained one (mean squared "
                    "difference per output value, the same batch run through the block without its LoRA): the "
                    "L2 feature-preservation regulariser against forgetting what the pretrained tower knew. "
                    "0 = none; needs --tower-lora-rank",
    )
    answer_weight: float = Field(
        default=1.0, ge=0.0, le=100.0,
        description="weight of the answer loss (0 = stage 1: align the thinking block to the experts only)",
    )
    freeze_llm: bool = Field(default=False, description="keep the LLM frozen (only thinking block, heads, LoRA train)")
    lora: bool = Field(default=False, description="train LoRA adapters (peft) on the LLM instead of all its weights")
    lora_r: int = Field(default=8, ge=1, le=512, description="LoRA rank")
    lora_alpha: float = Field(default=16.0, gt=0.0, le=4096.0, description="LoRA alpha")
    expert_losses: bool = Field(default=True, description="False: the ablation, every expert weight 0")
    experts: list[str] = Field(
        default_factory=lambda: ["speech_vad", "pitch_prosody", "loudness_spectral", "voice_embedding", "sound_tags"],
        description="experts distilled into the thinking slots (registry names)",
    )
    expert_weights: dict[str, float] = Field(default_factory=dict, description="expert name -> loss weight (default 1)")
    expert_scale_end: float = Field(
        default=1.0, ge=0.0, le=1.0,
        description="scale of the expert losses at this run's last step; it falls linearly from 1 at step 0 "
                    "(0 = fade the experts out over the run, 1 = constant)",
    )
    expert_strides: dict[str, int] = Field(
        default_factory=dict,
        description="expert name -> N: an expensive teacher reads one training clip in N (picked by content hash); "
                    "the rest are masked out for that expert",
    )
    holdout_speakers: list[str] = Field(default_factory=list, description="speakers never used (reported held-out split)")
    holdout_sources: list[str] = Field(
        default_factory=list, description="source recordings never used (UrbanSound8K fsIDs; reported held-out split)"
    )
    val_speakers: list[str] = Field(default_factory=list, description="speakers kept for temperature calibration")
    val_fraction: float = Field(
        default=0.0, ge=0.0, lt=0.5,
        description="share of the remaining groups (speaker, source recording, clip) kept per folder for calibration",
    )
    augment: AugmentConfig = Field(default_factory=AugmentConfig, description="waveform augmentation")
    time_mask: float = Field(
        default=0.0, ge=0.0, le=0.5,
        description="frozen-tower training: mask up to this share of a clip's audio positions (two stretches, "
                    "filled with the clip's mean; SpecAugment on the tower output). 0 = off",
    )
    channel_mask: float = Field(
        default=0.0, ge=0.0, le=0.5,
        description="frozen-tower training: flatten up to this share of the tower's channels to their clip mean "
                    "(two bands). 0 = off",
    )
    speed_tasks: list[Literal["emotion", "anomaly", "events", "fault"]] = Field(
        default_factory=lambda: ["emotion"],
        description="tasks whose clips draw the speed-perturbed tower variants (slow, fast), when cached",
    )
    excerpt_tasks: list[Literal["emotion", "anomaly", "events", "fault"]] = Field(
        default_factory=lambda: ["emotion"],
        description="tasks whose clips draw the short-excerpt tower variant (excerpt), when cached; no expert "
                    "trains on those rows (the teachers heard the whole clip)",
    )
    speed_experts: list[str] = Field(
        default_factory=list,
        description="experts still trained on speed-perturbed rows (their targets survive a 10 % speed change, "
                    "e.g. speech_content, sound_tags); the others are masked there. Empty = answers only",
    )
    speed_teachers: bool = Field(
        default=False,
        description="run the teachers on the speed-perturbed audio, so that every expert also trains on the "
                    "slow/fast rows (speech_content keeps the clip's own target: a transcript survives a 10 % "
                    "speed change, and that teacher costs seconds per clip on a CPU)",
    )
    label_smoothing: float = Field(default=0.0, ge=0.0, lt=1.0, description="label smoothing of the answer loss")
    readout_c: float = Field(
        default=0.1, ge=0.0, le=1e6,
        description="after training, fit the answer readout of the emotion and events tasks on the training clips "
                    "with this inverse L2 strength (edge_coat.train.readout); 0 = no readout",
    )
    readout_input: Literal["audio", "tower"] = Field(
        default="tower",
        description="what the answer readout reads: 'tower', the statistics of the audio tower's output before the "
                    "projector (chosen by docs/coat-tiny-tower-readout), or 'audio', those of the projected embeds "
                    "(coat-tiny 1.4)",
    )
    readout_relative: list[Literal["emotion", "events"]] = Field(
        default_factory=list,
        description="readout tasks fitted on each clip's statistics less its speaker's baseline (up to 8 other clips "
                    "of the speaker on the same channel), served relative to the stream's baseline "
                    "(docs/coat-tiny-speaker-baseline); [] = absolute",
    )
    readout_with_absolute: bool = Field(
        default=False,
        description="the relative readout tasks read the statistics beside their difference from the baseline, "
                    "fitted on baselines of every size (docs/coat-tiny-speaker-baseline)",
    )
    readout_baseline: Literal["speaker", "desk"] = Field(
        default="speaker",
        description="whose windows make the relative tasks' baseline: 'speaker' (other clips of the speaker) or "
                    "'desk' (the other clips of the corpus folder on the same channel: a desk's long-run mean over "
                    "many callers; docs/coat-tiny-corpus-norm)",
    )
    readout_channels: list[Literal["clean", "telephone", "room", "slow", "fast"]] = Field(
        default_factory=lambda: ["clean", "telephone", "room"], min_length=1,
        description="channel copies of each training clip the readout is fitted on (edge_coat.train.augment)",
    )
    val_every: int = Field(
        default=0, ge=0, le=10_000_000,
        description="score the validation split every N steps (and at the end) and keep the best weights "
                    "(mean balanced accuracy over the validation folders); 0 = keep the last weights",
    )
    teacher_cache: str = Field(default=".cache/teacher", description="teacher-cache directory")
    device: str = Field(default="auto", description="auto (CUDA when present, else CPU), cpu, cuda, cuda:N")

    @model_validator(mode="after")
    def _check(self) -> "TrainConfig":
        if (self.init_family is None) == (self.init_model is None):
            raise ValueError("give exactly one of --init FAMILY (a new model) or --model DIR (continue a model)")
        if self.tower_variants and self.train_encoder:
            raise ValueError("--tower-variants caches a frozen tower's output; it cannot be combined with --train-encoder")
        if self.init_encoder is not None and self.init_family not in (None, "qwen2_audio"):
            raise ValueError("--init-encoder builds a Qwen2-Audio tower: use --init qwen2_audio")
        if self.lora and self.freeze_llm:
            raise ValueError("--lora trains adapters on the LLM; it cannot be combined with --freeze-llm")
        bad = {k: v for k, v in self.expert_strides.items() if v < 1}
        if bad:
            raise ValueError(f"expert strides must be whole numbers >= 1 (1 = every clip), got {bad}")
        unknown = sorted((set(self.expert_weights) | set(self.expert_strides)) - set(self.experts))
        if unknown:
            raise ValueError(f"expert weights or strides given for {unknown}, which are not among the experts {self.experts}")
        unknown = sorted(set(self.speed_experts) - set(self.experts))
        if unknown:
            raise ValueError(f"--speed-experts names {unknown}, which are not among the experts {self.experts}")
        if self.speed_experts and not {"slow", "fast"} & set(self.tower_variants):
            raise ValueError("--speed-experts acts on speed-perturbed rows: add slow and/or fast to --tower-variants")
        if self.speed_teachers and not {"slow", "fast"} & set(self.tower_variants):
            raise ValueError("--speed-teachers acts on speed-perturbed rows: add slow and/or fast to --tower-variants")
        if self.speed_teachers and self.speed_experts:
            raise ValueError("--speed-teachers trains every expert on the speed-perturbed rows: drop --speed-experts")
        if self.tower_lora_rank and not self.tower_variants:
            raise ValueError("--tower-lora-rank caches the top block's input per channel variant: give --tower-variants")
        if self.tower_lora_rank and (self.time_mask or self.channel_mask):
            raise ValueError("--time-mask / --channel-mask act on the frozen tower's cached output: drop them with "
                             "--tower-lora-rank")
        if self.tower_anchor_weight and not self.tower_lora_rank:
            raise ValueError("--tower-anchor-weight keeps a tower LoRA near the pretrained tower: give --tower-lora-rank")
        if self.tower_lora_rank and self.init_family not in (None, "qwen2_audio"):
            raise ValueError("--tower-lora-rank adapts a Qwen2-Audio tower's top block: use --init qwen2_audio")
        if (self.time_mask or self.channel_mask) and not self.tower_variants:
            raise ValueError("--time-mask / --channel-mask act on the cached tower output: give --tower-variants")
        if self.standardize_tower and not (self.tower_variants and self.init_encoder):
            raise ValueError("--standardize-tower measures a new model's pretrained tower on its cached output: give "
                             "--init-encoder DIR and --tower-variants")
        if self.expert_scale_end < 1.0 and not self.expert_losses:
            raise ValueError("--expert-scale-end fades the expert losses, which --no-expert-losses turns off: drop one")
        if self.val_every and not (self.val_speakers or self.val_fraction):
            raise ValueError("--val-every selects weights on the validation split: give --val-speakers or --val-fraction")
        overlap = sorted(set(self.val_speakers) & set(self.holdout_speakers))
        if overlap:
            raise ValueError(f"speakers {overlap} are both held out and used for calibration: pick disjoint sets")
        return self


def config_defaults() -> dict:
    """Each ``TrainConfig`` option that has a default, as ``model_dump(mode="json")`` writes it: a run recorded before
    an option existed resumes with that option at its default (``rundir.RunDir``)."""
    from pydantic import TypeAdapter

    out = {}
    for name, spec in TrainConfig.model_fields.items():
        if spec.is_required():
            continue
        value = spec.get_default(call_default_factory=True)
        out[name] = TypeAdapter(spec.annotation).dump_python(value, mode="json")
    return out
