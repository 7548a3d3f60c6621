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
#: Longest window a model takes when its encoder input is shorter: the window is encoded in
#: encoder-length chunks (``MelFrontend.chunks``), like Qwen2.5-Omni's audio tower. 30 s bounds the
#: decoder sequence (750 audio positions at 25 per second) and matches the real encoders' own input.
MAX_WINDOW_SECONDS = 30.0


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
                f"window {i}: {a.size / SAMPLE_RATE:.2f} s is longer than the model accepts "
                f"({max_seconds:.2f} s = {max_samples} samples); cut it into shorter windows"
            )
        out.append(a.astype(np.float32, copy=False))
    return out


class MelFrontend:
    """Whisper log-mel features padded to the encoder's fixed frame count.

    Uses transformers' ``WhisperFeatureExtractor`` (built offline from parameters, no download) so the
    features match what the real checkpoints were trained on.
    """

    def __init__(self, n_mels: int, max_frames: int, per_chunk: bool = False):
        from transformers import WhisperFeatureExtractor

        if max_frames % 100:
            raise ValueError(f"max_frames must be a whole number of seconds (x100), got {max_frames}")
        self.n_mels = n_mels
        self.max_frames = max_frames
        #: True: each encoder-length chunk of a window gets its own features (own STFT edges, own log-mel
        #: range), so a chunk encodes the same whichever window it is in and a stream can encode each
        #: chunk once (coat-tiny 1.0). False: one STFT and log-mel range over the whole window, then cut.
        self.per_chunk = per_chunk
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

    @property
    def max_samples(self) -> int:
        return self.max_frames * HOP

    def num_chunks(self, num_samples: int) -> int:
        """Encoder-length chunks a window of ``num_samples`` takes (1 up to the encoder's input)."""
        return max(1, -(-int(num_samples) // self.max_samples))

    def chunks(self, waves: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """Windows of any length -> encoder-length chunks of their log-mel features.

        Returns (mel (N, n_mels, F) float32, mel_mask (N, F) long, chunks per window (B,)), F =
        max_frames, N = the sum of the chunk counts, each window's chunks consecutive and in time order.
        A window's features are computed over the whole window (one STFT, one log-mel range, as
        Qwen2.5-Omni does before it chunks), padded to a whole number of chunks and cut at chunk
        boundaries; only its last chunk has padded (masked) frames. A window no longer than the
        encoder's input gives exactly ``self([wave])``.
        """
        mels, masks, counts = [], [], []
        for w in waves:  # one by one: features must not depend on the batch
            n = self.num_chunks(w.size)
            if self.per_chunk:
                feats = [self._features(w[i * self.max_samples:(i + 1) * self.max_samples], 1) for i in range(n)]
                mels += [f[0] for f in feats]
                masks += [f[1] for f in feats]
            else:
                mel, mask = self._features(w, n)  # (n_mels, n * F), (n * F,)
                mels += np.split(mel, n, axis=1)  # n x (n_mels, F)
                masks += np.split(mask, n)  # n x (F,)
            counts.append(n)
        mel_t = torch.from_numpy(np.stack(mels)).float()  # (N, n_mels, F)
        mask_t = torch.from_numpy(np.stack(masks)).long()  # (N, F)
        return mel_t, mask_t, counts

    def _features(self, wave: np.ndarray, chunks: int) -> tuple[np.ndarray, np.ndarray]:
        """One window -> (mel (n_mels, chunks * F), mask (chunks * F,)), padded to ``chunks`` encoder inputs."""
        f = self.extractor(
            wave,
            sampling_rate=SAMPLE_RATE,
            padding="max_length",
            max_length=chunks * self.max_samples,
            return_attention_mask=True,
            return_tensors="np",
        )
        return f["input_features"][0], f["attention_mask"][0]

    def __call__(self, waves: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """Validated waveforms -> (mel (B, n_mels, F) float32, mel_mask (B, F) long), F = max_frames."""
        feats = [self._features(w, 1) for w in waves]  # one by one: features must not depend on the batch
        mel = torch.from_numpy(np.stack([f[0] for f in feats])).float()  # (B, n_mels, F)
        mask = torch.from_numpy(np.stack([f[1] for f in feats])).long()  # (B, F)
        return mel, mask

def join_chunks(embeds: torch.Tensor, mask: torch.Tensor, counts: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-chunk encoder outputs -> per-window audio positions, in time order.

    embeds (N, Tc, D) and mask (N, Tc) bool of the chunks (a window's chunks consecutive, as
    ``MelFrontend.chunks`` orders them); counts (B,) chunks per window. Returns (embeds (B, T, D),
    mask (B, T) bool) with T = max(counts) * Tc: each window's valid positions of all its chunks,
    concatenated, then zero padding (mask False).
    """
    if sum(counts) != embeds.shape[0]:
        raise ValueError(f"expected {sum(counts)} chunks (counts {counts}), got {embeds.shape[0]}")
    n, tc, d = embeds.shape
    t = max(counts) * tc
    out = embeds.new_zeros(len(counts), t, d)  # (B, T, D)
    out_mask = torch.zeros(len(counts), t, dtype=torch.bool, device=mask.device)  # (B, T)
    start = 0
    for i, c in enumerate(counts):
        valid = embeds[start:start + c][mask[start:start + c]]  # (T_i, D), chunks in time order
        out[i, : valid.shape[0]] = valid
        out_mask[i, : valid.shape[0]] = True
        start += c
    return out, out_mask
