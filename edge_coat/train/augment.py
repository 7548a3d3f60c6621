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


# -- channels: what a call-centre line and a factory room do to audio ------------------------------
#: The channels ``apply_channel`` knows (the tower cache's variants; ``eval --channel`` offers clean and telephone).
CHANNELS: tuple[str, ...] = ("clean", "telephone", "room", "slow", "fast", "excerpt", "noisy")

#: Speed perturbation (Ko et al., Interspeech 2015): the clip resampled and played at 16 kHz, so tempo,
#: pitch and formants all move by the factor, like another speaker talking a little faster or slower.
#: Used on the tower cache only (a training variant, never an evaluation channel). The teachers' targets
#: describe the clip as recorded, so on these variants only the experts named in ``--speed-experts`` train,
#: unless ``--speed-teachers`` runs the teachers on the perturbed audio as well.
SPEEDS: dict[str, float] = {"slow": 0.9, "fast": 1.1}

#: Short excerpts (docs/coat-tiny-short-windows): a clip cut to its loudest stretch of 0.6-1.6 s, the start moved
#: by up to 0.2 s either way, so that short windows are not a property of one corpus (TurEV's single words) in
#: training. A tower-cache variant only; the teachers' targets describe the whole clip, so no expert trains on it.
EXCERPT_SECONDS: tuple[float, float] = (0.6, 1.6)
EXCERPT_JITTER_SECONDS = 0.2


def telephone(wave: np.ndarray, *, rng: np.random.Generator | None = None) -> np.ndarray:
    """A narrow-band telephone line: 300-3400 Hz band-pass, 8 kHz, G.711 mu-law, back to 16 kHz.

    Deterministic without ``rng``; with it, the level into the codec varies by +-6 dB (line levels
    differ), which changes the mu-law quantisation noise. (N,) float32 in, (N,) float32 out.
    """
    from scipy.signal import butter, resample_poly, sosfilt

    x = wave.astype(np.float64)
    sos = butter(4, [300.0, 3400.0], btype="bandpass", fs=SAMPLE_RATE, output="sos")
    x = sosfilt(sos, x)
    x = resample_poly(x, 1, 2)  # 16 kHz -> 8 kHz (its anti-alias filter cuts at 4 kHz)
    gain = 10 ** (rng.uniform(-6.0, 6.0) / 20) if rng is not None else 1.0
    x = np.clip(x * gain, -1.0, 1.0)
    x = mulaw_decode(mulaw_encode(x)) / gain  # G.711 mu-law, 8 bits per sample
    y = resample_poly(x, 2, 1)[: wave.shape[0]]  # back to 16 kHz
    if y.shape[0] < wave.shape[0]:
        y = np.pad(y, (0, wave.shape[0] - y.shape[0]))
    return np.clip(y, -1.0, 1.0).astype(np.float32)


def mulaw_encode(x: np.ndarray, mu: int = 255) -> np.ndarray:
    """[-1, 1] floats -> 8-bit mu-law codes 0..255 (G.711's companding law, continuous form)."""
    y = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    return np.clip(np.round((y + 1) / 2 * mu), 0, mu).astype(np.uint8)


def mulaw_decode(codes: np.ndarray, mu: int = 255) -> np.ndarray:
    y = codes.astype(np.float64) / mu * 2 - 1
    return np.sign(y) * ((1 + mu) ** np.abs(y) - 1) / mu


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n,) float64 noise with a 1/f spectrum (Kellet's filter on white noise): room and machine-hall hum."""
    from scipy.signal import lfilter

    return lfilter([0.049922035, -0.095993537, 0.050612699, -0.004408786],
                   [1, -2.494956002, 2.017265875, -0.522189400], rng.standard_normal(n))


def _at_snr(x: np.ndarray, noise: np.ndarray, p_sig: float, snr_db: float) -> np.ndarray:
    """``x`` (signal power ``p_sig``) plus ``noise`` scaled to ``snr_db`` dB below that power. float64."""
    return x + noise * np.sqrt(p_sig / 10 ** (snr_db / 10) / max(float(np.mean(noise ** 2)), 1e-12))


def _below_full_scale(x: np.ndarray) -> np.ndarray:
    """``x`` scaled down as a whole if its peak passes full scale (no clipping), as float32."""
    peak = float(np.abs(x).max())
    if peak > 1.0:
        x /= peak
    return x.astype(np.float32)


def add_noise(wave: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """``wave`` plus pink noise at ``snr_db`` dB below its power (clipped to [-1, 1]). (N,) float32."""
    x = wave.astype(np.float64)
    p_sig = float(np.mean(x ** 2))
    if p_sig <= 0:
        return wave
    x = _at_snr(x, pink_noise(x.shape[0], rng), p_sig, snr_db)
    return np.clip(x, -1.0, 1.0).astype(np.float32)


def room(wave: np.ndarray, rng: np.random.Generator, *, snr_db: tuple[float, float] = (10.0, 30.0)) -> np.ndarray:
    """A room: a synthetic reverberant impulse response (RT60 0.15-0.6 s) and pink-ish background
    noise at an SNR drawn from ``snr_db``. (N,) float32 in and out."""
    from scipy.signal import fftconvolve

    n = wave.shape[0]
    rt60 = rng.uniform(0.15, 0.6)
    t = np.arange(int(rt60 * SAMPLE_RATE)) / SAMPLE_RATE
    ir = rng.standard_normal(t.size) * np.exp(-6.9 * t / rt60)  # -60 dB at rt60
    ir[0] = 1.0 / rng.uniform(0.3, 1.0)  # direct path, 0-10 dB above the reverberant tail
    ir /= np.sqrt(np.sum(ir ** 2))
    x = fftconvolve(wave.astype(np.float64), ir)[:n]
    noise = pink_noise(n, rng)
    p_sig = float(np.mean(x ** 2))
    if p_sig > 0:
        x = _at_snr(x, noise, p_sig, rng.uniform(*snr_db))
    return _below_full_scale(x)


def coloured_noise(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """(n,) float64 stationary noise whose power spectrum goes as 1/f^``exponent`` (0 white, 1 pink, 2 brown): white
    noise shaped in the frequency domain, the DC bin left at zero."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n)
    gain = np.zeros_like(f)
    gain[1:] = f[1:] ** (-exponent / 2)
    return np.fft.irfft(spec * gain, n)


def noisy(wave: np.ndarray, rng: np.random.Generator, *, snr_db: tuple[float, float] = (0.0, 10.0),
          exponent: tuple[float, float] = (0.0, 2.0)) -> np.ndarray:
    """Loud stationary background noise: coloured noise (``coloured_noise``, the exponent drawn from ``exponent``) at
    an SNR drawn from ``snr_db`` below the clip's power. The room copy's noise stops at 10 dB; this one reaches 0 dB.
    (N,) float32 in and out."""
    x = wave.astype(np.float64)
    p_sig = float(np.mean(x ** 2))
    if p_sig <= 0:
        return wave
    noise = coloured_noise(x.shape[0], rng.uniform(*exponent), rng)
    return _below_full_scale(_at_snr(x, noise, p_sig, rng.uniform(*snr_db)))


def speed_perturb(wave: np.ndarray, factor: float) -> np.ndarray:
    """``wave`` played ``factor`` times as fast (pitch and tempo together), cut or zero-padded back to its
    own length so that crops and windows stay where they were. (N,) float32 in and out.

    scipy's polyphase resampler rather than a hand-written interpolator: it filters against aliasing."""
    from fractions import Fraction

    from scipy.signal import resample_poly

    ratio = Fraction(factor).limit_denominator(100)  # 0.9 -> 9/10: N samples -> N * 10/9
    y = resample_poly(wave.astype(np.float64), ratio.denominator, ratio.numerator)[: wave.shape[0]]
    if y.shape[0] < wave.shape[0]:
        y = np.pad(y, (0, wave.shape[0] - y.shape[0]))
    return np.clip(y, -1.0, 1.0).astype(np.float32)


def loudest_stretch(wave: np.ndarray, samples: int) -> int:
    """Start of the ``samples``-long stretch of ``wave`` with the most energy (0 when the wave is not longer)."""
    if wave.shape[0] <= samples:
        return 0
    energy = np.concatenate([[0.0], np.cumsum(wave.astype(np.float64) ** 2)])
    return int(np.argmax(energy[samples:] - energy[:-samples]))


def excerpt(wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A short excerpt of ``wave`` (``EXCERPT_SECONDS``) around its loudest stretch; the whole wave when it is
    not longer. (N,) float32 in, (n <= N,) float32 out."""
    n = int(rng.uniform(*EXCERPT_SECONDS) * SAMPLE_RATE)
    if wave.shape[0] <= n:
        return wave
    jitter = int(EXCERPT_JITTER_SECONDS * SAMPLE_RATE)
    start = loudest_stretch(wave, n) + int(rng.integers(-jitter, jitter + 1))
    start = min(max(start, 0), wave.shape[0] - n)
    return wave[start:start + n]


def apply_channel(wave: np.ndarray, channel: str, rng: np.random.Generator | None = None) -> np.ndarray:
    """``clean`` (unchanged), ``telephone``, ``room`` (needs ``rng``), a speed perturbation (``slow``, ``fast``),
    a short ``excerpt`` (needs ``rng``; shorter than the clip), or ``noisy`` (loud coloured noise; needs ``rng``)."""
    if channel == "clean":
        return wave
    if channel in SPEEDS:
        return speed_perturb(wave, SPEEDS[channel])
    if channel == "telephone":
        return telephone(wave, rng=rng)
    if channel == "room":
        return room(wave, rng if rng is not None else np.random.default_rng(0))
    if channel == "excerpt":
        return excerpt(wave, rng if rng is not None else np.random.default_rng(0))
    if channel == "noisy":
        return noisy(wave, rng if rng is not None else np.random.default_rng(0))
    raise ValueError(f"unknown channel {channel!r}; expected one of {CHANNELS}")
