"""The audio encoder + projector in ONNX, for the Qwen2-Audio family.

Why one family only: each family treats padded mel frames differently. Qwen2-Audio masks them inside
its encoder (an attention mask over the conv frames, built from the mel mask), which a fixed-length
graph with the mask as an input reproduces exactly; Qwen2.5-Omni drops padded frames before its
encoder and returns a flat ragged sequence, and Audio Flamingo 3 builds its mask inside its own
forward from a different input. Those families keep the encoder in torch (``describe_encoder`` and
the load log say so).

Graph: inputs ``mel`` (B, n_mels, F) float32 and ``mel_mask`` (B, F) int64 (1 = a real frame), F the
encoder's fixed input length; output ``audio_embeds`` (B, T, D) float32, T = F / 4, D the LLM width
(projector included). B is dynamic, so one batch of encoder-length chunks (``MelFrontend.chunks``)
runs as one call. The valid-position mask is computed in Python from ``mel_mask`` exactly as the
torch adapter does (``FamilyAdapter.output_lengths``).

Public API::

    export_encoder(model, path) -> Path                          # model: a CoatModel (qwen2_audio)
    enc = OnnxAudioEncoder(path, adapter, EncoderRuntimeConfig())
    embeds, mask = enc(mel (B, n_mels, F), mel_mask (B, F))      # (B, T, D) float32, (B, T) bool
    attach_onnx_encoder(model, path, runtime) -> OnnxAudioEncoder   # sets model.audio_encoder
    encoder_parity(model, onnx_encoder, waves_by_source, tolerance) -> ParityRecord
    describe_encoder(model) -> "onnxruntime CPU" | "torch cpu"
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edge_coat.export.config import EncoderRuntimeConfig
from edge_coat.export.onnx_export import save_onnx
from edge_coat.export.manifest import ParityCase, ParityRecord
from edge_coat.export.parity import ParityError, parity_record
from edge_coat.export.runtime import import_onnxruntime, open_checked_session

log = logging.getLogger(__name__)

ENCODER_ONNX = "encoder.onnx"
INPUT_MEL = "mel"
INPUT_MEL_MASK = "mel_mask"
OUTPUT_EMBEDS = "audio_embeds"
#: families whose encoder is exported (see the module docstring for why only this one)
ONNX_ENCODER_FAMILIES = ("qwen2_audio",)


class _Qwen2AudioEncoderGraph(nn.Module):
    """Tower + projector with the padding mask as an input: what ``Qwen2AudioAdapter.encode_audio`` computes.

    The 4-D mask is built with plain tensor ops (True = attend to that conv frame), the boolean mask
    ``create_bidirectional_mask`` gives the SDPA encoder, so ``torch.export`` keeps the batch symbolic.
    """

    def __init__(self, base_model: nn.Module):
        super().__init__()
        self.tower = base_model.model.audio_tower
        self.projector = base_model.model.multi_modal_projector

    def forward(self, mel: torch.Tensor, mel_mask: torch.Tensor) -> torch.Tensor:
        t_conv = (mel.shape[-1] - 1) // 2 + 1  # frames after the stride-2 conv
        conv_len = (mel_mask.sum(-1) - 1) // 2 + 1  # (B,)
        conv_mask = torch.arange(t_conv, device=mel.device)[None, :] < conv_len[:, None]  # (B, T')
        enc_mask = conv_mask[:, None, None, :].expand(-1, 1, t_conv, -1)  # (B, 1, T', T') keys masked
        hidden = self.tower(mel, attention_mask=enc_mask).last_hidden_state  # (B, T, Da)
        return self.projector(hidden)  # (B, T, D)


def supports_onnx_encoder(family: str) -> bool:
    return family in ONNX_ENCODER_FAMILIES


def _require_family(family: str) -> None:
    if not supports_onnx_encoder(family):
        raise ValueError(f"the ONNX audio encoder is exported for {ONNX_ENCODER_FAMILIES} only, got family {family!r}")


def export_encoder(model, path: str | Path) -> Path:
    """Write the audio encoder + projector of ``model`` (a qwen2_audio ``CoatModel``) as ONNX to ``path``.

    The model is not modified (a float32 CPU copy of the base model's audio parts is exported)."""
    _require_family(model.config.family)
    path = Path(path)
    adapter = model.adapter
    graph = copy.deepcopy(_Qwen2AudioEncoderGraph(adapter.model)).to("cpu", torch.float32).eval()
    frames = adapter.max_frames
    gen = torch.Generator().manual_seed(0)
    mel = torch.randn(2, adapter.n_mels, frames, generator=gen)  # (2, n_mels, F)
    mel_mask = torch.ones(2, frames, dtype=torch.long)  # (2, F)
    mel_mask[1, frames // 3:] = 0
    batch = torch.export.Dim("batch", min=1)
    save_onnx(graph, (mel, mel_mask), path, input_names=[INPUT_MEL, INPUT_MEL_MASK], output_names=[OUTPUT_EMBEDS],
              dynamic_shapes={"mel": {0: batch}, "mel_mask": {0: batch}})
    log.info("exported audio encoder + projector to %s (%d bytes)", path, path.stat().st_size)
    return path


class OnnxAudioEncoder:
    """``model.encode_mel``'s runtime in onnxruntime: ``(mel (B, n_mels, F), mel_mask (B, F)) ->
    (embeds (B, T, D) float32 on the mel's device, mask (B, T) bool)``.

    A plain object, not a module: it has no weights for ``state_dict`` and sits in
    ``CoatModel.audio_encoder``. Sessions are shared per process (``runtime.get_session``).
    """

    def __init__(self, path: str | Path, adapter, config: EncoderRuntimeConfig | None = None):
        self.config = config or EncoderRuntimeConfig()
        self.path = Path(path)
        self.adapter = adapter
        self._session, inputs, outputs = open_checked_session(
            self.path, self.config, (INPUT_MEL, INPUT_MEL_MASK), OUTPUT_EMBEDS)
        self.n_mels = int(inputs[INPUT_MEL].shape[1])
        self.frames = int(inputs[INPUT_MEL].shape[2])
        self.out_dim = int(outputs[OUTPUT_EMBEDS].shape[2])
        expected = (adapter.n_mels, adapter.max_frames, adapter.hidden_size)
        if (self.n_mels, self.frames, self.out_dim) != expected:
            raise ValueError(
                f"{self.path}: graph has (n_mels, frames, D) = {(self.n_mels, self.frames, self.out_dim)} but the "
                f"model's encoder is {expected}; re-export it from this model"
            )
        self.provider = self._session.get_providers()[0]
        if self.config.warmup:
            self(torch.zeros(1, self.n_mels, self.frames), torch.ones(1, self.frames, dtype=torch.long))
        log.info("audio encoder: onnxruntime on %s (%d mel bins x %d frames -> %d)", self.provider, self.n_mels,
                 self.frames, self.out_dim)

    def __call__(self, mel: torch.Tensor, mel_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        device = mel.device
        if mel.ndim != 3 or tuple(mel.shape[1:]) != (self.n_mels, self.frames):
            raise ValueError(f"mel: expected shape (B, {self.n_mels}, {self.frames}), got {tuple(mel.shape)}")
        if tuple(mel_mask.shape) != (mel.shape[0], self.frames):
            raise ValueError(f"mel_mask: expected shape ({mel.shape[0]}, {self.frames}), got {tuple(mel_mask.shape)}")
        x = np.ascontiguousarray(mel.detach().to("cpu", torch.float32).numpy())  # (B, n_mels, F)
        m = np.ascontiguousarray(mel_mask.detach().to("cpu", torch.int64).numpy())  # (B, F)
        embeds = torch.from_numpy(self._session.run([OUTPUT_EMBEDS], {INPUT_MEL: x, INPUT_MEL_MASK: m})[0])  # (B, T, D)
        lengths = self.adapter.output_lengths(torch.from_numpy(m).sum(-1))  # (B,)
        mask = torch.arange(embeds.shape[1])[None, :] < lengths[:, None]  # (B, T)
        return embeds.to(device), mask.to(device)


def attach_onnx_encoder(model, path: str | Path, runtime: EncoderRuntimeConfig | None = None) -> OnnxAudioEncoder:
    """Run ``model``'s audio encoder from the graph at ``path`` (``model.audio_encoder``); returns it."""
    _require_family(model.config.family)
    encoder = OnnxAudioEncoder(path, model.adapter, runtime)
    model.audio_encoder = encoder
    return encoder


def describe_encoder(model) -> str:
    """Where the audio encoder runs, for logs and status ("onnxruntime CPU", "torch cpu")."""
    enc = getattr(model, "audio_encoder", None)
    if isinstance(enc, OnnxAudioEncoder):
        return f"onnxruntime {enc.provider.removesuffix('ExecutionProvider')}"
    return f"torch {model.device}"


def random_mels(n_mels: int, frames: int, *, batches=(1, 3), seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Random log-mel-like inputs per batch size: the first row full, the others random valid lengths."""
    rng = np.random.default_rng(seed)
    out = []
    for b in batches:
        mel = torch.from_numpy(rng.standard_normal((b, n_mels, frames), dtype=np.float32) * 0.5)  # (B, n_mels, F)
        lengths = np.concatenate([[frames], rng.integers(4, frames + 1, size=b - 1)])  # (B,)
        mask = torch.from_numpy((np.arange(frames)[None, :] < lengths[:, None]).astype(np.int64))  # (B, F)
        out.append((mel, mask))
    return out


def encoder_parity(
    model,
    onnx_encoder: OnnxAudioEncoder,
    waves_by_source: dict[str, list[np.ndarray]],
    *,
    tolerance: float,
) -> ParityRecord:
    """Compare the torch encoder with ``onnx_encoder`` on random mels (batch 1 and 3, ragged masks) and
    on each source's windows cut into encoder chunks (one batch per source). Differences are taken
    over the valid audio positions (the padded ones are dropped before the decoder). Raises
    ParityError over ``tolerance`` (NaN counts as a failure)."""
    import_onnxruntime()
    inputs = [("random", mel, mask) for mel, mask in random_mels(model.adapter.n_mels, model.adapter.max_frames)]
    for source, waves in waves_by_source.items():
        if waves:
            mel, mask, _ = model.frontend.chunks(waves)  # (N, n_mels, F), (N, F)
            inputs.append((source, mel, mask))
    cases = []
    for source, mel, mask in inputs:
        with torch.inference_mode():
            ref, ref_mask = model.adapter.encode_audio(mel, mask)  # (B, T, D), (B, T)
        got, got_mask = onnx_encoder(mel, mask)
        if got.shape != ref.shape or not torch.equal(got_mask.cpu(), ref_mask.cpu()):
            raise ParityError(f"ONNX encoder output shape/mask {tuple(got.shape)} differs from torch {tuple(ref.shape)}")
        valid = ref_mask.cpu()
        diff = float((got.cpu() - ref.float().cpu())[valid].abs().max())
        cases.append(ParityCase(source=source, batch=int(mel.shape[0]), frames=int(ref.shape[1]), max_abs_diff=diff))
        log.info("encoder parity %s B=%d: max abs diff %.3g", source, mel.shape[0], diff)
    return parity_record("encoder", ENCODER_ONNX, "ONNX audio encoder", onnx_encoder.provider, cases, tolerance)
