"""``CoatModel``: a base LALM plus the CoAT thinking block, expert heads and think markers.

Named parts: ``base`` (the unmodified transformers model, reached through ``adapter``), ``thinking``
(ThinkingBlock), ``heads`` (ExpertHeads), ``think_open`` / ``think_close`` (learned embeddings, so
no vocabulary resize is needed), ``frontend`` (log-mel features).
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edge_coat.messages import SAMPLE_RATE
from edge_coat.model import quant
from edge_coat.model.adapters import FamilyAdapter, build_adapter, load_adapter
from edge_coat.model.audio import MAX_WINDOW_SECONDS, MelFrontend, join_chunks, validate_waves
from edge_coat.model.config import CoatConfig
from edge_coat.model.decoding import greedy_generate, prefill, score_candidates, score_fused, score_prompts_fused
from edge_coat.model.heads import ExpertHeads, slot_pool
from edge_coat.model.readout import AnswerReadout, window_statistics
from edge_coat.model.sequence import IGNORE, Assembled, assemble, gather_positions, pool_positions
from edge_coat.model.thinking import ThinkingBlock

log = logging.getLogger(__name__)

COAT_WEIGHTS = "coat.safetensors"


@dataclass(frozen=True)
class ScoreResult:
    """Label scores for a batch of windows.

    logprobs: (B, C) float32, summed token log-likelihood of each candidate after the prefix.
    probs: (B, C) float32, softmax(logprobs / temperature) over the candidates.
    thinking: (B, K, D) float32, hidden states at the thinking positions at the supervised layer (with
        thinking off: the audio positions' states at that layer averaged into K stretches).
    labels: the candidates, in column order.
    readout: (B, C) float32 log-probabilities of the answer readout over the candidates, or None when it did
        not score them (no readout for the task, or ``use_readout`` off); ``probs`` then fuses both.
    features: (B, 2F) float32, the window statistics the readout read (absolute, before any baseline), or None
        when it scored nothing: what a stream keeps as the context of its later windows' baselines.
    """

    logprobs: np.ndarray
    probs: np.ndarray
    thinking: np.ndarray
    labels: tuple[str, ...]
    readout: np.ndarray | None = None
    features: np.ndarray | None = None


@dataclass(frozen=True)
class ProbeStates:
    """Hidden states for probes, all layers (index 0 = input embeddings).

    thinking: (layers+1, B, K, D) float32 or None when thinking is off; audio: (layers+1, B, T, D)
    float32; audio_mask: (B, T) bool, True at real audio frames.
    """

    thinking: np.ndarray | None
    audio: np.ndarray
    audio_mask: np.ndarray


@dataclass(frozen=True)
class CoatBatch:
    """A training batch. waves: B mono 16 kHz float32 arrays; prompts/answers: B strings.

    expert_targets: name -> (B, dim) for pooled experts or (B, F, dim) time-resolved;
    expert_masks: name -> (B,) bool (window has a reading) or (B, F) bool (valid frames).
    """

    waves: list[np.ndarray]
    prompts: list[str]
    answers: list[str]
    expert_targets: dict[str, torch.Tensor] = field(default_factory=dict)
    expert_masks: dict[str, torch.Tensor] = field(default_factory=dict)
    #: the audio tower's output instead of ``waves`` (frozen tower, cached): (hidden (B, T, Da), mask (B, T) bool)
    tower: tuple[torch.Tensor, torch.Tensor] | None = None
    #: the input of the tower's top block instead (its LoRA trains; ``CoatModel.tower_from_top``): (hidden
    #: (N, T', Da) of N encoder chunks, frames after the conv (N,), valid output positions (N,), chunks per window (B,))
    tower_top: tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[int]] | None = None


class CoatModel(nn.Module):
    def __init__(self, adapter: FamilyAdapter, coat_config: CoatConfig, tokenizer, quantization: str = "fp32"):
        super().__init__()
        if adapter.family != coat_config.family:
            raise ValueError(f"CoAT config is for {coat_config.family!r} but the base model is {adapter.family!r}")
        self.adapter = adapter
        self.base = adapter.model
        self.config = coat_config
        self.tokenizer = tokenizer
        self.quantization = quantization
        d = adapter.hidden_size
        self.thinking = ThinkingBlock(
            audio_dim=adapter.audio_dim,
            out_dim=d,
            num_queries=coat_config.num_thinking,
            dim=coat_config.thinking_dim,
            layers=coat_config.thinking_layers,
            heads=coat_config.thinking_heads,
            summary=coat_config.thinking_summary,
            summary_frame_mlp=coat_config.summary_frame_mlp,
            slot_time=coat_config.thinking_slot_time,
        )
        scale = float(adapter.model.get_input_embeddings().weight.detach().float().std())
        self.think_open = nn.Parameter(torch.randn(d) * scale)  # (D,)
        self.think_close = nn.Parameter(torch.randn(d) * scale)  # (D,)
        self.heads = ExpertHeads(coat_config.experts, d)
        #: the linear answer readout beside the LLM's answer (tasks in ``coat_config.readout``; none by default)
        #: its input (``coat_config.readout_input``): the projected audio embeds or the tower's output
        self.readout = AnswerReadout(coat_config.readout, 2 * (
            adapter.tower_dim if coat_config.readout_input == "tower" else adapter.audio_dim),
            relative=coat_config.readout_relative, with_absolute=coat_config.readout_with_absolute)
        #: False scores with the LLM alone even where a readout exists (its ablation)
        self.use_readout = True
        #: the tasks whose answers the readout may join (None: every task it has; the site config's
        #: ``model.readout`` as a list), e.g. events only where callers speak a language the model never heard
        self.readout_tasks: frozenset[str] | None = None
        self.frontend = MelFrontend(adapter.n_mels, adapter.max_frames, per_chunk=coat_config.chunk_features == "chunk")
        #: what runs the audio encoder: None = the base model in torch (``adapter.encode_audio``), or an
        #: object with the same call, e.g. ``edge_coat.export.encoder_runtime.OnnxAudioEncoder``
        self.audio_encoder = None
        #: "int8" once ``quantize_encoder_int8`` ran on the torch encoder
        self.encoder_quantization = "fp32"
        #: how ``score_labels`` runs the decoder: "fused" = prefix + candidate branches in one call
        #: (``score_fused``); "cached" = a prefill, then the candidates over the expanded KV cache
        self.scoring = "fused"
        self._token_ids: dict[str, list[int]] = {}  # text -> ids; prompts and labels repeat every window
        layer = coat_config.supervised_layer
        self.supervised_layer = adapter.num_layers if layer == -1 else layer
        if not 0 <= self.supervised_layer <= adapter.num_layers:
            raise ValueError(
                f"supervised_layer {layer} is out of range for a base model with {adapter.num_layers} layers "
                f"(expected 0..{adapter.num_layers} or -1)"
            )
        self.coat_modules_to(adapter.device)

    def coat_modules_to(self, device) -> None:
        for m in (self.thinking, self.heads, self.readout):
            m.to(device)
        self.think_open.data = self.think_open.data.to(device)
        self.think_close.data = self.think_close.data.to(device)

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def from_config(cls, family: str, base_config, coat_config: CoatConfig, tokenizer,
                    quantization: str = "fp32") -> "CoatModel":
        """A randomly initialised base model from a transformers config (tests, tiny models)."""
        quant.check_mode(quantization)
        if quantization == "nf4":
            raise ValueError("quantization 'nf4' loads from a checkpoint directory: use CoatModel.from_pretrained")
        if len(tokenizer) > int(base_config.get_text_config().vocab_size):
            raise ValueError(
                f"tokenizer has {len(tokenizer)} tokens but the base vocabulary is "
                f"{base_config.get_text_config().vocab_size}: enlarge vocab_size"
            )
        model = cls(build_adapter(family, base_config), coat_config, tokenizer)
        model.eval()
        if quantization == "int8":
            model._quantize_int8()
        return model

    @classmethod
    def from_pretrained(cls, directory: str | Path, quantization: str = "fp32",
                        coat_dir: str | Path | None = None, device: str | None = None) -> "CoatModel":
        """Load base weights + tokenizer from ``directory`` and the CoAT part from ``coat_dir``
        (default: the same directory). Local files only; the network is never used."""
        from safetensors.torch import load_file
        from transformers import AutoTokenizer

        quant.check_mode(quantization)
        directory = Path(directory)
        coat_dir = Path(coat_dir) if coat_dir is not None else directory
        coat_config = CoatConfig.load(coat_dir)
        qconf = quant.nf4_config() if quantization == "nf4" else None
        # Weights stored in float16 (``storage_dtype``) compute in float32 unless the LLM is 4-bit.
        dtype = None if quantization == "nf4" else torch.float32
        adapter = load_adapter(coat_config.family, directory, quantization_config=qconf, dtype=dtype)
        tok_dir = directory if (directory / "tokenizer_config.json").is_file() else coat_dir
        tokenizer = AutoTokenizer.from_pretrained(str(tok_dir), local_files_only=True)
        model = cls(adapter, coat_config, tokenizer, quantization="fp32")
        weights = coat_dir / COAT_WEIGHTS
        if weights.is_file():
            state = load_file(str(weights), device=str(adapter.device))
            missing, unexpected = model.load_state_dict(state, strict=False)
            missing = [k for k in missing if not k.startswith("base.")]
            if missing or unexpected:
                raise ValueError(f"{weights}: missing CoAT weights {missing}, unexpected {unexpected}")
        else:
            log.warning("no %s in %s: the thinking block and heads are randomly initialised", COAT_WEIGHTS, coat_dir)
        if device is not None and quantization != "nf4":
            model.to(device)
        model.eval()
        if quantization == "int8":
            model._quantize_int8()
        model.quantization = quantization
        return model

    def quantize_encoder_int8(self) -> None:
        """Dynamic int8 for the torch audio encoder and projector (``model.encoder.quantization`` int8 when
        the encoder runs in torch; an ONNX encoder is quantized by its runtime instead). CPU only."""
        if self.adapter.device.type != "cpu":
            raise ValueError(f"int8 dynamic quantization runs on CPU; the model is on {self.adapter.device}")
        for name in ("audio_tower", "multi_modal_projector"):
            part = getattr(self.base.model, name, None)
            if part is not None:
                quant.quantize_int8(part)
        self.encoder_quantization = "int8"

    def _quantize_int8(self) -> None:
        if self.adapter.device.type != "cpu":
            raise ValueError(f"int8 dynamic quantization runs on CPU; the model is on {self.adapter.device}")
        quant.quantize_int8(self.adapter.llm)
        self.base.lm_head = quant.quantize_int8(nn.Sequential(self.base.lm_head))[0]
        self.quantization = "int8"

    def coat_state_dict(self) -> dict[str, torch.Tensor]:
        """The CoAT weights only (thinking block, heads, think markers)."""
        return {k: v.detach().contiguous() for k, v in self.state_dict().items() if not k.startswith("base.")}

    def save_pretrained(self, directory: str | Path, base: bool = True) -> Path:
        """Write base weights + tokenizer (``base=True``) and coat.safetensors + coat_config.json."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if base:
            if self.quantization != "fp32":
                raise ValueError(f"cannot save a {self.quantization} base model; save the fp32 model or base=False")
            state = None
            if self.config.storage_dtype == "float16":
                state = {k: v.detach().half() if v.is_floating_point() else v for k, v in self.base.state_dict().items()}
            self.base.save_pretrained(str(directory), state_dict=state)
            self.tokenizer.save_pretrained(str(directory))
        coat = self.coat_state_dict()
        if self.config.storage_dtype == "float16":  # loads back into the float32 modules (load_state_dict casts)
            # the readout stays float32: its folded bias cancels large products (edge_coat.model.readout)
            coat = {k: v.half() if v.is_floating_point() and not k.startswith("readout.") else v
                    for k, v in coat.items()}
        save_file(coat, str(directory / COAT_WEIGHTS))
        self.config.save(directory)
        return directory

    # -- building blocks -------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.adapter.device

    @property
    def max_seconds(self) -> float:
        """The audio encoder's input length (training crops and eval clips are cut to it)."""
        return self.frontend.max_seconds

    @property
    def clip_seconds(self) -> float:
        """Longest clip evaluation, calibration and probes score as one window (centre-cropped)."""
        return min(self.config.clip_seconds or self.max_seconds, self.max_window_seconds)

    @property
    def max_window_seconds(self) -> float:
        """The longest window ``encode`` takes: longer than ``max_seconds`` windows are encoded in chunks."""
        return max(self.max_seconds, MAX_WINDOW_SECONDS)

    def encode_mel(self, mel: torch.Tensor, mel_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """mel (B, n_mels, F) + mel_mask (B, F) -> (embeds (B, T, D), mask (B, T) bool), in torch or the
        runtime in ``self.audio_encoder``."""
        if self.audio_encoder is not None:
            return self.audio_encoder(mel, mel_mask)
        return self.adapter.encode_audio(mel, mel_mask)

    def encode(self, waves, sample_rate: int = SAMPLE_RATE) -> tuple[torch.Tensor, torch.Tensor]:
        """Waveforms -> (audio embeds (B, T, D), audio_mask (B, T) bool). Validates the input first.

        Windows up to ``max_seconds`` go through the encoder as they are; a batch with a longer window
        is encoded as one batch of encoder-length chunks whose valid positions are concatenated per
        window (``MelFrontend.chunks``, ``join_chunks``), up to ``max_window_seconds``.
        """
        return self._encode_with(self.encode_mel, waves, sample_rate)

    def set_readout_input(self, source: str) -> None:
        """Make the answer readout read ``source`` ('audio': the projected embeds; 'tower': the tower's output).
        Switching drops the readouts fitted on the other input (they do not fit the new features): refit them."""
        if source not in ("audio", "tower"):
            raise ValueError(f"readout input must be 'audio' or 'tower', got {source!r}")
        if source == "tower" and not self.adapter.supports_tower:
            raise ValueError(f"the {self.config.family} family does not expose its tower's output: fit the readout "
                             "on the audio embeds (readout input 'audio')")
        if source == self.config.readout_input:
            return
        dim = self.adapter.tower_dim if source == "tower" else self.adapter.audio_dim
        self.readout = AnswerReadout({}, 2 * dim, with_absolute=self.config.readout_with_absolute).to(
            self.readout_device)
        self.config.readout = {}
        self.config.readout_relative = []
        self.config.readout_input = source

    @property
    def readout_device(self) -> torch.device:
        return self.think_open.device

    @property
    def needs_readout_frames(self) -> bool:
        """Whether scoring needs the tower's output beside the audio embeds: a readout in use that reads the tower
        (``coat_config.readout_input`` 'tower'). ``encode_full`` and ``encode_chunks(..., packed=True)`` give it."""
        return self.use_readout and bool(self.config.readout) and self.config.readout_input == "tower"

    def encode_mel_full(self, mel: torch.Tensor, mel_mask: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``encode_mel`` with the tower's output before the projector: (embeds (B, T, D), mask (B, T) bool,
        tower (B, T, Da)), in torch or the runtime in ``self.audio_encoder`` (a graph that outputs the tower too)."""
        if self.audio_encoder is not None:
            return self.audio_encoder.encode_with_tower(mel, mel_mask)
        hidden, mask = self.adapter.encode_tower(mel, mel_mask)  # (B, T, Da), (B, T)
        return self.adapter.project(hidden), mask, hidden  # the projector is what encode_audio applies after it

    def encode_full(self, waves, sample_rate: int = SAMPLE_RATE
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``encode`` plus what the answer readout reads beside the embeds: (embeds (B, T, D), mask (B, T) bool,
        the tower's output (B, T, Da) when ``needs_readout_frames``, else None)."""
        packed, mask = self._encode_with(self.encode_mel_packed, waves, sample_rate)
        embeds, tower = self.unpack_readout_frames(packed)
        return embeds, mask, tower

    def encode_mel_packed(self, mel: torch.Tensor, mel_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``encode_mel`` with, when ``needs_readout_frames``, each position's tower output beside its embedding in
        one tensor (B, T, D + Da): what a per-position store (``join_chunks``, the model stage's encoder cache)
        keeps and joins like the embeds alone. ``unpack_readout_frames`` parts it."""
        if not self.needs_readout_frames:
            return self.encode_mel(mel, mel_mask)
        embeds, mask, hidden = self.encode_mel_full(mel, mel_mask)
        return torch.cat([embeds, hidden.to(embeds.dtype)], -1), mask  # (B, T, D + Da)

    def unpack_readout_frames(self, packed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``encode_mel_packed``'s output (B, T, D [+ Da]) -> (embeds (B, T, D), the tower's output or None)."""
        if not self.needs_readout_frames:
            return packed, None
        d = self.adapter.audio_dim
        return packed[..., :d], packed[..., d:]

    def encode_tower(self, waves, sample_rate: int = SAMPLE_RATE) -> tuple[torch.Tensor, torch.Tensor]:
        """Waveforms -> (audio-tower output before the projector (B, T, Da), mask (B, T) bool), chunked
        exactly as ``encode`` chunks them: a frozen tower's output cached for training is what serving
        computes (``edge_coat.train.towercache``)."""
        return self._encode_with(self.adapter.encode_tower, waves, sample_rate)

    def top_inputs(self, wave: np.ndarray, sample_rate: int = SAMPLE_RATE
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One window -> the input of the tower's top block for each of its encoder chunks: (hidden (n, T', Da),
        frames after the conv (n,), valid output positions (n,)). ``tower_from_top`` of them is ``encode_tower``
        of the window; a training run whose top block learns (a LoRA) caches these instead of the tower output."""
        waves = validate_waves([wave], sample_rate=sample_rate, max_seconds=self.max_window_seconds)
        mel, mel_mask, _ = self.frontend.chunks(waves)  # (n, n_mels, F), (n, F)
        return self.adapter.top_inputs(mel, mel_mask)

    def tower_from_top(self, hidden: torch.Tensor, conv_len: torch.Tensor, out_len: torch.Tensor,
                       counts: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """``top_inputs`` of windows' chunks (N, T', Da), (N,), (N,) and chunks per window (B,) -> the tower's output
        (B, T, Da) and mask (B, T) bool, joined per window as ``encode_tower`` joins them."""
        out = self.adapter.tower_top(hidden, conv_len)  # (N, Tc, Da)
        mask = torch.arange(out.shape[1], device=out.device)[None, :] < out_len.to(out.device)[:, None]  # (N, Tc)
        return join_chunks(out, mask, counts)

    def _encode_with(self, encoder, waves, sample_rate: int) -> tuple[torch.Tensor, torch.Tensor]:
        waves = validate_waves(waves, sample_rate=sample_rate, max_seconds=self.max_window_seconds)
        if all(w.size <= self.frontend.max_samples for w in waves):
            mel, mel_mask = self.frontend(waves)  # (B, n_mels, F), (B, F)
            return encoder(mel, mel_mask)
        mel, mel_mask, counts = self.frontend.chunks(waves)  # (N, n_mels, F), (N, F), (B,)
        embeds, mask = encoder(mel, mel_mask)  # (N, Tc, D), (N, Tc)
        return join_chunks(embeds, mask, counts)  # (B, max(counts) * Tc, D), (B, ...)

    @property
    def chunk_samples(self) -> int:
        """Samples in one encoder-length chunk (a window longer than this is encoded chunk by chunk)."""
        return self.frontend.max_samples

    @property
    def chunks_encode_alike(self) -> bool:
        """Whether a chunk encodes the same whichever window it is in (``chunk_features`` 'chunk'), so a
        stream may encode each chunk once and build its windows from the encoded chunks
        (``edge_coat.worker.encoder_cache``); with window-level features it may not."""
        return self.frontend.per_chunk

    def encode_chunks(self, chunks: list[np.ndarray], packed: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Chunks of at most ``chunk_samples`` (float32 16 kHz mono, already validated as parts of windows)
        -> (embeds (N, Tc, D), mask (N, Tc) bool), each chunk with its own features, exactly as
        ``encode`` encodes the chunks of a window when ``chunks_encode_alike``. ``packed``: the embeds with the
        tower's output beside them where the readout reads it (``encode_mel_packed``; the stage's encoder cache
        keeps that, ``unpack_readout_frames`` parts it)."""
        if not self.chunks_encode_alike:
            raise ValueError("this model computes features over the whole window (chunk_features 'window'): "
                             "its chunks cannot be encoded on their own; use encode(waves)")
        too_long = [i for i, c in enumerate(chunks) if not 0 < c.size <= self.chunk_samples]
        if too_long:
            raise ValueError(f"chunks {too_long}: expected 1..{self.chunk_samples} samples each, got "
                             f"{[chunks[i].size for i in too_long]}")
        mel, mel_mask = self.frontend(chunks)  # (N, n_mels, F), (N, F)
        if packed:
            return self.encode_mel_packed(mel, mel_mask)  # (N, Tc, D [+ Da]), (N, Tc)
        return self.encode_mel(mel, mel_mask)  # (N, Tc, D), (N, Tc)

    def think(self, audio: torch.Tensor, audio_mask: torch.Tensor) -> torch.Tensor:
        """(B, T, D) audio embeds + (B, T) mask -> (B, K, D) thinking vectors in the LLM dtype."""
        return self.thinking(audio.to(self.thinking.dtype), audio_mask).to(audio.dtype)

    def _ids(self, text: str) -> list[int]:
        if not text:
            return []
        ids = self._token_ids.get(text)
        if ids is None:
            ids = self.tokenizer(text, add_special_tokens=False).input_ids
            if len(self._token_ids) < 4096:  # bounded: free-form prompts must not grow it without end
                self._token_ids[text] = ids
        return list(ids)

    def prefix_ids(self) -> list[int]:
        bos = [self.tokenizer.bos_token_id] if self.tokenizer.bos_token_id is not None else []
        return bos + self._ids(self.config.prefix)

    def answer_ids(self, answer: str) -> list[int]:
        ids = self._ids(self.config.answer_prefix + answer)
        if not ids:
            raise ValueError(f"answer {answer!r} tokenizes to nothing")
        if self.config.append_eos and self.tokenizer.eos_token_id is not None:
            ids = ids + [self.tokenizer.eos_token_id]
        return ids

    def build(self, waves, prompts: list[str], answers: list[str] | None = None,
              padding_side: str = "left", sample_rate: int = SAMPLE_RATE,
              use_thinking: bool | None = None, tower: tuple[torch.Tensor, torch.Tensor] | None = None,
              audio: tuple[torch.Tensor, torch.Tensor] | None = None, thinking: torch.Tensor | None = None,
              ) -> tuple[Assembled, torch.Tensor, torch.Tensor]:
        """Assemble the decoder input. Returns (assembled, audio embeds (B, T, D), audio_mask (B, T)); the audio
        as encoded, before ``llm_audio_stride`` pools it for the LLM (``assembled.audio_index`` is the pooled one).

        ``tower``: (hidden (B, T, Da), mask (B, T) bool), the audio tower's output computed before
        (``encode_tower``, a training cache); ``waves`` is then not used. ``audio``: (embeds (B, T, D),
        mask (B, T) bool), the projected audio computed before (the model stage's per-stream encoder
        cache; ``encode`` of the same waves gives it up to float noise); ``waves`` is then not used.
        ``thinking``: (B, K, D) thinking vectors of that audio computed before (``think``; the stage
        computes them once for all the tasks of a window), used when thinking is on."""
        if tower is not None and audio is not None:
            raise ValueError("pass the audio tower's output (tower=) or the projected audio (audio=), not both")
        if tower is not None:
            hidden, audio_mask = tower
            audio, audio_mask = self.adapter.project(hidden.to(self.device)), audio_mask.to(self.device)
        elif audio is not None:
            audio, audio_mask = audio[0].to(self.device), audio[1].to(self.device)
        else:
            audio, audio_mask = self.encode(waves, sample_rate)
        if len(prompts) != audio.shape[0]:
            raise ValueError(f"expected {audio.shape[0]} prompts (one per window), got {len(prompts)}")
        use = self.config.use_thinking if use_thinking is None else use_thinking
        if not use:
            thinking = None
        elif thinking is None:
            thinking = self.think(audio, audio_mask)
        elif tuple(thinking.shape[:2]) != (audio.shape[0], self.config.num_thinking):
            raise ValueError(f"thinking: expected shape ({audio.shape[0]}, {self.config.num_thinking}, D), "
                             f"got {tuple(thinking.shape)}")
        # The thinking block read every audio position; the LLM gets them averaged in groups (llm_audio_stride).
        llm_audio, llm_mask = pool_positions(audio, audio_mask, self.config.llm_audio_stride)
        asm = assemble(
            self.adapter.embed_tokens,
            self.prefix_ids(),
            llm_audio,
            llm_mask,
            [self._ids(p) for p in prompts],
            thinking=thinking,
            think_open=self.think_open if use else None,
            think_close=self.think_close if use else None,
            answer_ids=[self.answer_ids(a) for a in answers] if answers is not None else None,
            padding_side=padding_side,
        )
        return asm, audio, audio_mask

    def _latents(self, asm: Assembled, hidden: tuple) -> torch.Tensor:
        """(B, K, D) supervised-layer states at the thinking positions (audio stretches without thinking)."""
        h = hidden[self.supervised_layer]  # (B, L, D)
        if asm.think_index is not None:
            return gather_positions(h, asm.think_index)
        audio_h = gather_positions(h, asm.audio_index)  # (B, T, D)
        pooled, _ = slot_pool(audio_h, asm.audio_mask, self.config.num_thinking)
        return pooled

    # -- inference -------------------------------------------------------------------------------
    @torch.inference_mode()
    def score_labels(self, waves, prompt: str, candidates: list[str], sample_rate: int = SAMPLE_RATE,
                     use_thinking: bool | None = None, audio: tuple[torch.Tensor, torch.Tensor] | None = None,
                     thinking: torch.Tensor | None = None, task: str | None = None,
                     readout_frames: torch.Tensor | None = None, readout_context=None) -> ScoreResult:
        """Log-likelihood of each candidate answer after the shared prefix, one prefill per batch.

        ``audio`` / ``thinking``: computed before, as ``build`` takes them (``waves`` is then not used).
        ``readout_frames``: with ``audio``, the tower's output at the same positions (B, T, Da) when the readout
        reads it (``needs_readout_frames``; ``encode_full`` gives both).
        ``readout_context``: per window, the statistics (k, 2F) of its stream's earlier windows (``features`` of
        their results), the baseline of a relative readout task (``AnswerReadout.baselines``); None: none heard.
        ``task``: the configured task asked (default: the one whose prompt is ``prompt``), whose answer readout,
        if it has one covering the candidates, is fused into ``probs``."""
        if len(candidates) < 2:
            raise ValueError(f"expected at least 2 candidates, got {candidates!r}")
        waves = list(waves) if waves is not None and not isinstance(waves, np.ndarray) else waves
        if audio is None and self.needs_readout_frames:
            embeds, mask, readout_frames = self.encode_full(waves, sample_rate)
            audio = (embeds, mask)
        n = audio[0].shape[0] if audio is not None else len(waves)
        asm, embeds, embeds_mask = self.build(waves, [prompt] * n, sample_rate=sample_rate,
                                              use_thinking=use_thinking, audio=audio, thinking=thinking)
        if task is None:
            task = next((t for t, spec in self.config.tasks.items() if spec.prompt == prompt), None)
        cand_ids = [self.answer_ids(c) for c in candidates]
        if self.scoring == "fused":
            lp, hidden = score_fused(self.adapter, asm, cand_ids, output_hidden_states=True)
        elif self.scoring == "cached":
            pre = prefill(self.adapter, asm, output_hidden_states=True)
            lp, _ = score_candidates(self.adapter, asm, cand_ids, pre)
            hidden = pre.hidden_states
        else:
            raise ValueError(f"model.scoring must be 'fused' or 'cached', got {self.scoring!r}")
        latents = self._latents(asm, hidden)
        stats = self._readout_stats([(task, candidates)], embeds, embeds_mask, readout_frames)
        probs, ro = self._probs(task, lp, candidates, stats, readout_context)
        return ScoreResult(
            logprobs=lp.float().cpu().numpy(),
            probs=probs,
            thinking=latents.float().cpu().numpy(),
            labels=tuple(candidates),
            readout=ro,
            features=stats.float().cpu().numpy() if stats is not None else None,
        )

    def _readout_stats(self, asked, audio: torch.Tensor, audio_mask: torch.Tensor,
                       readout_frames: torch.Tensor | None = None) -> torch.Tensor | None:
        """The windows' ``window_statistics`` (B, 2F) of what the readout reads (the audio embeds, or
        ``readout_frames``: the tower's output), computed once for all the (task, candidates) ``asked`` of a
        batch, or None when the readout scores none of them."""
        if not any(self.reads(t, c) for t, c in asked):
            return None
        return self.readout_statistics(audio, audio_mask, readout_frames)

    def reads(self, task: str | None, candidates) -> bool:
        """Whether the answer readout joins ``task``'s scores over ``candidates``: it is on (``use_readout``), the
        task is among ``readout_tasks`` (None: any) and the readout knows the candidates."""
        return (self.use_readout and (self.readout_tasks is None or task in self.readout_tasks)
                and self.readout.knows(task, candidates))

    def readout_statistics(self, audio: torch.Tensor, audio_mask: torch.Tensor,
                           readout_frames: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 2F) the window statistics the answer readout reads (``ScoreResult.features``) of windows encoded
        before: the audio embeds (B, T, D) or, with a tower readout, ``readout_frames`` (B, T, Da). They do not
        depend on any baseline, so a stream's baseline can take a window in before it is scored."""
        if self.config.readout_input == "tower":
            if readout_frames is None:
                raise ValueError("this model's answer readout reads the audio tower's output: pass readout_frames "
                                 "with audio= (encode_full gives both), or waves")
            if tuple(readout_frames.shape[:2]) != tuple(audio_mask.shape):
                raise ValueError(f"readout_frames: expected shape {tuple(audio_mask.shape)} + (Da,), got "
                                 f"{tuple(readout_frames.shape)}")
            return window_statistics(readout_frames.to(audio_mask.device), audio_mask)
        return window_statistics(audio, audio_mask)

    def _probs(self, task: str | None, lp: torch.Tensor, candidates, stats: torch.Tensor | None,
               readout_context=None) -> tuple[np.ndarray, np.ndarray | None]:
        """Candidate probabilities from the LLM's log-likelihoods lp (B, C) at the calibrated temperature, fused
        with the answer readout of ``task`` on the windows' statistics (``_readout_stats``) when it knows the
        candidates; a relative task's statistics less each window's baseline (``readout_context``).
        Returns (probs (B, C), the readout's log-probabilities (B, C) or None)."""
        z = lp.float() / self.config.temperature  # (B, C)
        ro = None
        if stats is not None and self.reads(task, candidates):
            base = None
            if self.readout.is_relative(task):
                base = self.readout.baselines(task, readout_context, self.config.readout_baseline_windows,
                                              stats.shape[0])  # (B, 2F)
            ro = self.readout.log_probs(task, stats, candidates, base)  # (B, C)
            z = (z + ro.to(z.device)) / self.config.readout_temperature
            ro = ro.cpu().numpy()
        return torch.softmax(z, -1).cpu().numpy(), ro

    def score_task(self, waves, task: str, **kwargs) -> ScoreResult:
        """``score_labels`` with the prompt and labels of a configured task."""
        if task not in self.config.tasks:
            raise ValueError(f"unknown task {task!r}; this model knows {sorted(self.config.tasks)}")
        spec = self.config.tasks[task]
        return self.score_labels(waves, spec.prompt, list(spec.labels), task=task, **kwargs)

    @torch.inference_mode()
    def score_tasks(self, waves, tasks: list[str], *, audio: tuple[torch.Tensor, torch.Tensor] | None = None,
                    thinking: torch.Tensor | None = None, use_thinking: bool | None = None,
                    sample_rate: int = SAMPLE_RATE, readout_frames: torch.Tensor | None = None,
                    readout_context=None) -> dict[str, ScoreResult]:
        """``score_task`` for several tasks of the same windows, their shared prefix (prefix text, audio,
        thinking block) run once: one decoder call with each task's prompt and candidates as branches after
        it (``score_prompts_fused``). Same scores as one ``score_task`` per task up to float noise; the
        latents (thinking positions, before any prompt) are the same for every task. With
        ``scoring`` 'cached': one ``score_task`` per task on the same audio and thinking vectors.
        ``readout_context``: as ``score_labels`` takes it, per window."""
        unknown = [t for t in tasks if t not in self.config.tasks]
        if unknown or not tasks:
            raise ValueError(f"expected tasks this model knows ({sorted(self.config.tasks)}), got {list(tasks)}")
        if audio is None and self.needs_readout_frames:
            embeds, mask, readout_frames = self.encode_full(waves, sample_rate)
            audio = (embeds, mask)
        if self.scoring != "fused":
            if audio is None:
                audio = self.encode(waves, sample_rate)
            use = self.config.use_thinking if use_thinking is None else use_thinking
            if use and thinking is None:
                thinking = self.think(*audio)
            return {t: self.score_task(None, t, audio=audio, thinking=thinking, use_thinking=use_thinking,
                                       readout_frames=readout_frames, readout_context=readout_context)
                    for t in tasks}
        n = audio[0].shape[0] if audio is not None else len(waves)
        asm, embeds, embeds_mask = self.build(waves, [""] * n, sample_rate=sample_rate, use_thinking=use_thinking,
                                              audio=audio, thinking=thinking)
        specs = [self.config.tasks[t] for t in tasks]
        prompts = [(self._ids(spec.prompt), [self.answer_ids(c) for c in spec.labels]) for spec in specs]
        lps, hidden = score_prompts_fused(self.adapter, asm, prompts, output_hidden_states=True)
        latents = self._latents(asm, hidden).float().cpu().numpy()
        stats = self._readout_stats([(t, spec.labels) for t, spec in zip(tasks, specs)], embeds, embeds_mask,
                                    readout_frames)
        out = {}
        features = stats.float().cpu().numpy() if stats is not None else None
        for task, spec, lp in zip(tasks, specs, lps):
            probs, ro = self._probs(task, lp, spec.labels, stats, readout_context)
            out[task] = ScoreResult(logprobs=lp.float().cpu().numpy(), probs=probs, thinking=latents,
                                    labels=tuple(spec.labels), readout=ro, features=features)
        return out

    @torch.inference_mode()
    def generate(self, waves, prompt: str, max_new_tokens: int = 16, sample_rate: int = SAMPLE_RATE,
                 stop_at_eos: bool = True, use_thinking: bool | None = None) -> list[str]:
        """Greedy text after the prompt, at most ``max_new_tokens`` tokens per window."""
        asm, _, _ = self.build(waves, [prompt] * len(waves), sample_rate=sample_rate, use_thinking=use_thinking)
        ids = greedy_generate(self.adapter, asm, max_new_tokens, eos_token_id=self.tokenizer.eos_token_id,
                              stop_at_eos=stop_at_eos, pad_token_id=self.tokenizer.pad_token_id or 0)
        return [self.tokenizer.decode(row, skip_special_tokens=True).strip() for row in ids]

    @torch.inference_mode()
    def probe_states(self, waves, prompt: str, sample_rate: int = SAMPLE_RATE,
                     use_thinking: bool | None = None) -> ProbeStates:
        """Hidden states of every layer at the thinking and audio positions (for linear probes)."""
        asm, _, _ = self.build(waves, [prompt] * len(waves), sample_rate=sample_rate, use_thinking=use_thinking)
        out = self.adapter.decode(asm.embeds, asm.attention_mask, asm.positions, output_hidden_states=True)
        hs = out.hidden_states
        think = (
            np.stack([gather_positions(h, asm.think_index).float().cpu().numpy() for h in hs])
            if asm.think_index is not None else None
        )
        audio = np.stack([gather_positions(h, asm.audio_index).float().cpu().numpy() for h in hs])
        return ProbeStates(thinking=think, audio=audio, audio_mask=asm.audio_mask.cpu().numpy())

    # -- training --------------------------------------------------------------------------------
    def training_losses(self, batch: CoatBatch, use_thinking: bool | None = None,
                        label_smoothing: float = 0.0, expert_scale: float = 1.0,
                        tower_anchor: float = 0.0) -> dict[str, torch.Tensor]:
        """Teacher-forced answer cross-entropy (``label_smoothing`` over the vocabulary) + weighted expert losses,
        their sum scaled by ``expert_scale`` (a schedule's factor; 1 = the experts' own weights), + ``tower_anchor``
        times the mean squared difference between the tower's output and the pretrained tower's (a batch of the
        top block's input whose block carries a LoRA: the same block with its adapters off).

        Returns ``{"answer": ..., "expert/<name>": ... (unweighted), "experts": weighted sum,
        "tower_anchor": ... (unweighted, when asked), "total": ...}``.
        Expert losses need the thinking positions; with thinking off only the answer loss is returned.
        """
        tower = batch.tower
        anchor = None
        if batch.tower_top is not None:
            if tower is not None:
                raise ValueError("a batch carries the tower's output (tower) or its top block's input (tower_top), not both")
            if tower_anchor:
                with torch.no_grad(), adapters_off(self.base.model.audio_tower.layers[-1]):
                    reference, _ = self.tower_from_top(*batch.tower_top)
            tower = self.tower_from_top(*batch.tower_top)
            if tower_anchor:
                valid = tower[1]  # (B, T) the positions both outputs share
                anchor = (tower[0][valid].float() - reference[valid].float()).pow(2).mean()
        elif tower_anchor:
            raise ValueError("the tower anchor compares the top block with and without its LoRA: the batch must carry "
                             "the top block's input (tower_top)")
        n_audio = tower[0].shape[0] if tower is not None else len(batch.waves)
        if not (n_audio == len(batch.prompts) == len(batch.answers)):
            raise ValueError(
                f"batch sizes differ: {n_audio} windows of audio, {len(batch.prompts)} prompts, "
                f"{len(batch.answers)} answers"
            )
        if self.quantization != "fp32":
            raise ValueError(f"training needs the fp32 model, this one is {self.quantization}")
        asm, _, _ = self.build(batch.waves, batch.prompts, answers=batch.answers, use_thinking=use_thinking,
                               tower=tower)
        out = self.adapter.decode(asm.embeds, asm.attention_mask, asm.positions, output_hidden_states=True)
        logits = self.adapter.lm_head(out.last_hidden_state[:, :-1])  # (B, L-1, V) predicts tokens 1..L-1
        answer = F.cross_entropy(logits.float().flatten(0, 1), asm.labels[:, 1:].flatten(), ignore_index=IGNORE,
                                 label_smoothing=label_smoothing)
        losses = {"answer": answer}
        total = self.config.answer_weight * answer
        if asm.think_index is not None and batch.expert_targets:
            latents = gather_positions(out.hidden_states[self.supervised_layer], asm.think_index)  # (B, K, D)
            per = self.heads.losses(latents.float(), batch.expert_targets, batch.expert_masks)
            weighted = expert_scale * sum(self.heads.specs[n].weight * v for n, v in per.items())
            for name, value in per.items():
                losses[f"expert/{name}"] = value
            losses["experts"] = weighted
            total = total + weighted
        if anchor is not None:
            losses["tower_anchor"] = anchor
            total = total + tower_anchor * anchor
        losses["total"] = total
        return losses


@contextmanager
def adapters_off(module: nn.Module):
    """Run ``module`` without its LoRA adapters (peft's own switch, ``BaseTunerLayer.enable_adapters``), so the
    same weights give the pretrained block's output. Afterwards each adapter is as it was: switched on or off, and
    trainable or frozen (peft's switch also sets ``requires_grad``, so that is put back too)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    layers = [m for m in module.modules() if isinstance(m, BaseTunerLayer)]
    if not layers:
        raise ValueError("this block carries no LoRA adapters to switch off")
    was_on = [not layer.disable_adapters for layer in layers]
    trains = {p: p.requires_grad for layer in layers for p in layer.parameters()}
    for layer in layers:
        layer.enable_adapters(False)
    try:
        yield
    finally:
        for layer, on in zip(layers, was_on):
            if on:
                layer.enable_adapters(True)
        for p, flag in trains.items():
            p.requires_grad_(flag)
