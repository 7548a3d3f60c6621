"""A pretrained tower's output standardised per channel, folded into the tower's final LayerNorm.

Whisper's hidden states have a few channels whose scale is far above the rest. A linear probe sees
them standardised (``StandardScaler``); the model's projector and thinking block, trained with AdamW
from random initialisation, see them raw, and on the RAVDESS development speakers (01-13, four
speaker folds, the summary path alone trained on the cached tower output) that cost 5-7 points of UA
(0.606 -> 0.658 with the per-frame MLP, 0.642 -> 0.673 without it; the probe: 0.68). So a new model
may measure each channel's mean and standard deviation over its training clips (the clean variant;
never validation or held-out clips) and fold them into the tower's final LayerNorm:

    (gamma * n + beta - mean) / std  =  (gamma / std) * n + (beta - mean) / std

which is exact and costs nothing at serving time: the tower, its ONNX export and the stream cache are
unchanged in shape, only two of its vectors change. The frozen tower's training cache (``towercache``)
is keyed by the unfolded tower (``source_fingerprint``) and read through the same affine map, so a run
never encodes its clips twice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch

from edge_coat.model.config import TowerStandardization

log = logging.getLogger(__name__)

#: floor of a channel's standard deviation (a constant channel is centred, not blown up)
MIN_STD = 1e-3


def tower_stats(clips: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation over all frames of ``clips`` ((T_i, Da) each) -> (Da,), (Da,)."""
    if not clips:
        raise ValueError("no training clips to measure the tower's output on")
    total = np.zeros(clips[0].shape[1], np.float64)
    square = np.zeros_like(total)
    n = 0
    for h in clips:
        h = h.astype(np.float64)
        total += h.sum(axis=0)
        square += (h * h).sum(axis=0)
        n += h.shape[0]
    mean = total / n
    std = np.sqrt(np.maximum(square / n - mean * mean, 0.0))
    return mean.astype(np.float32), np.maximum(std, MIN_STD).astype(np.float32)


def _final_norm(model) -> torch.nn.LayerNorm:
    norm = getattr(model.base.model.audio_tower, "layer_norm", None)
    if not isinstance(norm, torch.nn.LayerNorm):
        raise ValueError("tower standardisation needs an audio tower with a final LayerNorm (the Qwen2-Audio family)")
    return norm


def fold_into_tower(model, mean: np.ndarray, std: np.ndarray, source_fingerprint: str, clips: int) -> None:
    """Fold the standardisation into the tower's final LayerNorm and record it in ``model.config``.
    The folded vectors are rounded through the model's storage dtype, so the live model equals the
    model it saves."""
    if model.config.tower_standardized is not None:
        raise ValueError("this model's tower is standardised already")
    norm = _final_norm(model)
    storage = torch.float16 if model.config.storage_dtype == "float16" else torch.float32
    with torch.no_grad():
        m = torch.as_tensor(mean, dtype=torch.float32)
        s = torch.as_tensor(std, dtype=torch.float32)
        weight = (norm.weight.float() / s).to(storage).to(norm.weight.dtype)
        bias = ((norm.bias.float() - m) / s).to(storage).to(norm.bias.dtype)
        norm.weight.copy_(weight)
        norm.bias.copy_(bias)
    model.config = model.config.model_copy(update={"tower_standardized": TowerStandardization(
        source_fingerprint=source_fingerprint, mean=[float(v) for v in mean], std=[float(v) for v in std],
        clips=clips)})
    log.info("tower output standardised per channel (%d channels, %d training clips; std %.3g..%.3g)",
             len(mean), clips, float(std.min()), float(std.max()))


def standardize(h: np.ndarray, st: TowerStandardization) -> np.ndarray:
    """Unfolded tower output (T, Da) -> what the folded tower gives, float16 like the cache."""
    return ((h.astype(np.float32) - np.asarray(st.mean, np.float32)) / np.asarray(st.std, np.float32)).astype(np.float16)


def unstandardize(h: np.ndarray, st: TowerStandardization) -> np.ndarray:
    """Folded tower output (T, Da) -> the unfolded tower's, float16 (what the cache stores)."""
    return (h.astype(np.float32) * np.asarray(st.std, np.float32) + np.asarray(st.mean, np.float32)).astype(np.float16)
