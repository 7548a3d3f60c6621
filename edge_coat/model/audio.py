"""Waveform validation and the log-mel front end shared by the three families.

Every family's encoder is Whisper-like: 16 kHz audio, 10 ms hop, 25 ms window, ``n_mels`` bins. Each
window is converted on its own and padded to the encoder's fixed frame count, so a window's features
never depend on the other windows in its batch.
"""

from __future__ import annotations

import numpy as np
import torch

from edge_coat.messages import SAMPLE_RATE

HOP = 160  # samples per mel frame (10 ms at 16 kHz)


def validate_waves(
    waves, *, sample_rate: int = SAMPLE_RATE, max_seconds: float, min_samples: int = HOP * 4
) -> list[np.ndarray]:
    """Check a batch of mono 16 kHz windows before any torch code sees them.

    Returns float32 1-D arrays. Raises ``ValueError`` naming what was expected and what arrived.
    """
    if sample_rate != SAMPLE_RATE:
        raise ValueError(f"expected audio at {SAMPLE_RATE} Hz, got sample_rate={sample_rate}; resample first")
    if isinstance(waves, np.ndarray):
        raise ValueError(f"expected a list of 1-D waveforms, got one array of shape {waves.shape}; wrap it in a list")
    waves = list(waves)
    if not waves:
        raise ValueError("expected at least one waveform, got an empty list")
    out = []
    max_samples = int(round(max_seconds * SAMPLE_RATE))
    for i, w in enumerate(waves):
        a = np.asarray(w)
        if a.ndim == 2 and 1 in a.shape:
            a = a.reshape(-1)
        if a.ndim != 1:
            raise ValueError(
                f"window {i}: expected mono audio of shape (num_samples,), got shape {a.shape} "
                "(more than one channel? downmix first)"
            )
        if a.size == 0:
            raise ValueError(f"window {i}: empty audio (0 samples)")
        if not np.issubdtype(a.dtype, np.floating):
            raise ValueError(f"window {i}: expected float samples in [-1, 1], got dtype {a.dtype}")
        if not np.isfinite(a).all():
            bad = int((~np.isfinite(a)).sum())
            raise ValueError(f"window {i}: {bad} NaN or inf samples; expected finite samples in [-1, 1]")
        if a.size < min_samples:
            raise ValueError(f"window {i}: {a.size} samples is too short; expected at least {min_samples}")
        if a.size > max_samples:
            raise ValueError(
                f"window {i}: {a.size / SAMPLE_RATE:.2f} s is longer than the encoder accepts "
                f"({max_seconds:.2f} s = {max_samples} samples); cut it into shorter windows"
            )
        out.append(a.astype(np.float32, copy=False))
    return out


class MelFrontend:
    """Whisper log-mel features padded to the encoder's fixed frame count.

    Uses transformers' ``WhisperFeatureExtractor`` (built offline from parameters, no download) so the
    features match what the real checkpoints were trained on.
    """

    def __init__(self, n_mels: int, max_frames: int):
        from transformers import WhisperFeatureExtractor

        if max_frames % 100:
            raise ValueError(f"max_frames must be a whole number of seconds (x100), got {max_frames}")
        self.n_mels = n_mels
        self.max_frames = max_frames
        self.extractor = WhisperFeatureExtractor(
            feature_size=n_mels,
            sampling_rate=SAMPLE_RATE,
            hop_length=HOP,
            chunk_length=max_frames // 100,
            n_fft=400,
        )

    @property
    def max_seconds(self) -> float:
        return self.max_frames * HOP / SAMPLE_RATE

    def __call__(self, waves: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """Validated waveforms -> (mel (B, n_mels, F) float32, mel_mask (B, F) long), F = max_frames."""
        mels, masks = [], []
        for w in waves:  # one by one: features must not depend on the batch
            f = self.extractor(
                w,
                sampling_rate=SAMPLE_RATE,
                padding="max_length",
                max_length=self.max_frames * HOP,
                return_attention_mask=True,
                return_tensors="np",
            )
            mels.append(f["input_features"][0])  # (n_mels, F)
            masks.append(f["attention_mask"][0])  # (F,)
        mel = torch.from_numpy(np.stack(mels)).float()  # (B, n_mels, F)
        mask = torch.from_numpy(np.stack(masks)).long()  # (B, F)
        return mel, mask
