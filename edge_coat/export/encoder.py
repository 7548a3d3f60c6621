"""The audio encoder + projector in ONNX, for the Qwen2-Audio family.

Why one family only: each family treats padded mel frames differently. Qwen2-Audio masks them inside
its encoder (an attention mask over the conv frames, built from the mel mask), which a fixed-length
graph with the mask as an input reproduces exactly; Qwen2.5-Omni drops padded frames before its
encoder and returns a flat ragged sequence, and Audio Flamingo 3 builds its mask inside its own
forward from a different input. Those families keep the encoder in torch (``describe_encoder`` and
the load log say so). Which families export it is ``FamilySpec.onnx_encoder`` in ``edge_coat.model.config``.

Graph: inputs ``mel`` (B, n_mels, F) float32 and ``mel_mask`` (B, F) int64 (1 = a real frame), F the
encoder's fixed input length; outputs ``audio_embeds`` (B, T, D) float32, T = F / 4, D the LLM width
(projector included), and ``audio_tower`` (B, T, Da), the tower's output before the projector (what a readout
with ``readout_input`` 'tower' reads; an intermediate of the same graph, so it costs nothing to output). B is dynamic, so one batch of encoder-length chunks (``MelFrontend.chunks``)
runs as one call. The valid-position mask is computed in Python from ``mel_mask`` exactly as the
torch adapter does (``FamilyAdapter.output_lengths``).

Public API (writing and checking; the runtime, ``OnnxAudioEncoder``, is in ``edge_coat.model.runtime``)::

    export_encoder(model, path) -> Path                          # model: a CoatModel (qwen2_audio)
    encoder_parity(model, onnx_encoder, waves_by_source, tolerance) -> ParityRecord
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edge_coat.export.onnx_export import save_onnx
from edge_coat.export.parity import ParityError, parity_record
from edge_coat.model.manifest import ParityCase, ParityRecord
from edge_coat.model.runtime import (
    ENCODER_ONNX,
    INPUT_MEL,
    INPUT_MEL_MASK,
    OUTPUT_EMBEDS,
    OUTPUT_TOWER,
    OnnxAudioEncoder,
    import_onnxruntime,
    require_onnx_encoder,
)

log = logging.getLogger(__name__)



class _Qwen2AudioEncoderGraph(nn.Module):
    """Tower + projector with the padding mask as an input: what ``Qwen2AudioAdapter.encode_audio`` computes.

    The 4-D mask is built with plain tensor ops (True = attend to that conv frame), the boolean mask
    ``create_bidirectional_mask`` gives the SDPA encoder, so ``torch.export`` keeps the batch symbolic.
    """

    def __init__(self, base_model: nn.Module):
        super().__init__()
        self.tower = base_model.model.audio_tower
        self.projector = base_model.model.multi_modal_projector

    def forward(self, mel: torch.Tensor, mel_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t_conv = (mel.shape[-1] - 1) // 2 + 1  # frames after the stride-2 conv
        conv_len = (mel_mask.sum(-1) - 1) // 2 + 1  # (B,)
        conv_mask = torch.arange(t_conv, device=mel.device)[None, :] < conv_len[:, None]  # (B, T')
        enc_mask = conv_mask[:, None, None, :].expand(-1, 1, t_conv, -1)  # (B, 1, T', T') keys masked
        hidden = self.tower(mel, attention_mask=enc_mask).last_hidden_state  # (B, T, Da)
        return self.projector(hidden), hidden  # (B, T, D), (B, T, Da)


def export_encoder(model, path: str | Path) -> Path:
    """Write the audio encoder + projector of ``model`` (a qwen2_audio ``CoatModel``) as ONNX to ``path``.

    The model is not modified (a float32 CPU copy of the base model's audio parts is exported)."""
    require_onnx_encoder(model.config.family)
    path = Path(path)
    adapter = model.adapter
    graph = copy.deepcopy(_Qwen2AudioEncoderGraph(adapter.model)).to("cpu", torch.float32).eval()
    frames = adapter.max_frames
    gen = torch.Generator().manual_seed(0)
    mel = torch.randn(2, adapter.n_mels, frames, generator=gen)  # (2, n_mels, F)
    mel_mask = torch.ones(2, frames, dtype=torch.long)  # (2, F)
    mel_mask[1, frames // 3:] = 0
    batch = torch.export.Dim("batch", min=1)
    save_onnx(graph, (mel, mel_mask), path, input_names=[INPUT_MEL, INPUT_MEL_MASK], output_names=[OUTPUT_EMBEDS, OUTPUT_TOWER],
              dynamic_shapes={"mel": {0: batch}, "mel_mask": {0: batch}})
    log.info("exported audio encoder + projector to %s (%d bytes)", path, path.stat().st_size)
    return path


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
    """Compare the torch encoder with ``onnx_encoder`` (both outputs: the embeds and the tower) on random mels (batch 1 and 3, ragged masks) and
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
            hidden, ref_mask = model.adapter.encode_tower(mel, mask)  # (B, T, Da), (B, T)
            ref = model.adapter.project(hidden)  # (B, T, D): encode_audio's output
        got, got_mask, got_tower = onnx_encoder.encode_with_tower(mel, mask)
        if got.shape != ref.shape or got_tower.shape != hidden.shape or not torch.equal(got_mask.cpu(), ref_mask.cpu()):
            raise ParityError(f"ONNX encoder output shapes/mask {tuple(got.shape)}, {tuple(got_tower.shape)} differ "
                              f"from torch {tuple(ref.shape)}, {tuple(hidden.shape)}")
        valid = ref_mask.cpu()
        diff = max(float((got.cpu() - ref.float().cpu())[valid].abs().max()),
                   float((got_tower.cpu() - hidden.float().cpu())[valid].abs().max()))
        cases.append(ParityCase(source=source, batch=int(mel.shape[0]), frames=int(ref.shape[1]), max_abs_diff=diff))
        log.info("encoder parity %s B=%d: max abs diff %.3g", source, mel.shape[0], diff)
    return parity_record("encoder", ENCODER_ONNX, "ONNX audio encoder", onnx_encoder.provider, cases, tolerance)
