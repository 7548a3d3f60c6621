"""Waveform augmentation for training: random crop, gain and additive noise.

Teacher targets are computed once on the whole clip (that is what the cache is for); a crop keeps
the frames of time-resolved targets that fall inside it (see ``crop_frames``), while pooled targets
(voice embedding) stay those of the whole clip. Gain shifts the loudness expert's dBFS target by the
gain, so the default gain range is small; noise at a high SNR barely moves any target.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edge_coat.messages import SAMPLE_RATE


class AugmentConfig(BaseModel):
    """Section ``train.augment``."""

    model_config = ConfigDict(extra="forbid")

    crop_seconds: float = Field(
        default=0.0, ge=0.0, le=30.0,
        description="random crop length in seconds for clips longer than it (0 = whole clip, up to the encoder's limit)",
    )
    gain_db: float = Field(default=0.0, ge=0.0, le=30.0, description="random gain drawn uniformly in +-gain_db (0 = off)")
    noise_snr_db: float | None = Field(
        default=None, ge=-10.0, le=80.0,
        description="add white noise at an SNR drawn uniformly in [noise_snr_db, noise_snr_db + 20] dB (None = off)",
    )
    noise_prob: float = Field(default=0.5, ge=0.0, le=1.0, description="probability of adding noise to a clip")


def random_crop(wave: np.ndarray, seconds: float, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """A random ``seconds``-long stretch of ``wave`` (N,), or the whole wave when shorter. Returns (crop, start)."""
    n = int(round(seconds * SAMPLE_RATE))
    if seconds <= 0 or wave.shape[0] <= n:
        return wave, 0
    start = int(rng.integers(0, wave.shape[0] - n + 1))
    return wave[start:start + n], start


def crop_frames(frames: np.ndarray, frame_rate: float, start: int, length: int) -> np.ndarray:
    """The rows of a time-resolved target (F, D) at ``frame_rate`` Hz covering samples [start, start+length)."""
    lo = int(math.floor(start / SAMPLE_RATE * frame_rate))
    hi = int(math.ceil((start + length) / SAMPLE_RATE * frame_rate))
    lo = min(lo, frames.shape[0] - 1)
    return frames[lo:max(hi, lo + 1)]  # (F', D)


def augment(wave: np.ndarray, config: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Gain and noise on a (N,) float32 wave (crop is done separately, it moves the targets)."""
    out = wave.astype(np.float32, copy=True)  # (N,)
    if config.gain_db > 0:
        out *= np.float32(10 ** (rng.uniform(-config.gain_db, config.gain_db) / 20))
    if config.noise_snr_db is not None and rng.random() < config.noise_prob:
        power = float(np.mean(out.astype(np.float64) ** 2))
        if power > 0:
            snr = rng.uniform(config.noise_snr_db, config.noise_snr_db + 20.0)
            noise = rng.standard_normal(out.shape[0]).astype(np.float32) * np.float32(math.sqrt(power / 10 ** (snr / 10)))
            out += noise
    return np.clip(out, -1.0, 1.0)
