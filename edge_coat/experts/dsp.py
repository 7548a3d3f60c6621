"""Signal-processing experts: pitch and prosody (YIN), loudness and spectral shape.

No weights, no license burden beyond this project's own (and librosa's ISC for the spectral
descriptors). Outputs are scaled to roughly [-1, 1] so an MSE head sees comparable magnitudes;
the helpers here convert back to physical units (Hz, dBFS) for event evidence.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from edge_coat.experts.base import Expert, package_version, register_expert
from edge_coat.messages import SAMPLE_RATE

log = logging.getLogger(__name__)

#: Floor for all dB values (a digital silence reads -120 dBFS, never -inf).
DB_FLOOR = -120.0


def _db(power: np.ndarray) -> np.ndarray:
    return np.maximum(10.0 * np.log10(np.maximum(power, 1e-30)), DB_FLOOR)


# ---------------------------------------------------------------------------------------------
# Pitch and prosody


def yin(
    wave: np.ndarray,
    *,
    sr: int = SAMPLE_RATE,
    frame_length: int = 1024,
    hop: int = 160,
    fmin: float = 50.0,
    fmax: float = 1000.0,
    threshold: float = 0.1,
) -> tuple[np.ndarray, np.ndarray]:
    """YIN F0 tracker (de Cheveigné & Kawahara 2002), vectorised over frames with FFTs.

    Written here rather than calling ``librosa.yin``/``librosa.pyin`` because yin does not return
    the aperiodicity we need as a voicing confidence, pyin runs at only ~2x real time on this
    machine, and both JIT-compile through numba on first use (seconds to tens of seconds).

    Frames are centred: frame t covers samples around ``t * hop``.

    Returns:
        f0_hz: (T,) float32, the best period's frequency in every frame (voiced or not).
        aperiodicity: (T,) float32 in [0, 1+]: the cumulative-mean-normalised difference at the
            chosen lag; near 0 for a clean periodic frame, near 1 for noise.
    """
    tau_max = min(int(np.ceil(sr / fmin)), frame_length // 2)
    tau_min = max(int(np.floor(sr / fmax)), 2)
    padded = np.pad(wave, (frame_length // 2, frame_length // 2))
    n_frames = 1 + len(wave) // hop
    frames = np.lib.stride_tricks.sliding_window_view(padded, frame_length)[::hop][:n_frames]  # (T, L) view
    f0, aperiodicity = [], []
    for start in range(0, n_frames, YIN_BLOCK):  # blocks bound the memory of long recordings
        f, a = _yin_block(frames[start : start + YIN_BLOCK], sr, tau_min, tau_max, threshold)
        f0.append(f)
        aperiodicity.append(a)
    return np.concatenate(f0), np.concatenate(aperiodicity)


#: Frames per YIN block (~30 MB of FFT work at 1024-sample frames).
YIN_BLOCK = 1000


def _yin_block(
    frames: np.ndarray, sr: int, tau_min: int, tau_max: int, threshold: float, *, n_fft: int | None = None, fft=np.fft
) -> tuple[np.ndarray, np.ndarray]:
    """YIN on (T, L) frames -> (T,) F0 in Hz and (T,) aperiodicity.

    ``n_fft`` defaults to the power of two >= L + W' (what the expert has always used); any n >= L
    gives the same lags 0..tau_max, since head index j < W' plus lag tau <= tau_max stays below L and
    never wraps. ``fft`` is a module with numpy's rfft/irfft signature (numpy.fft or scipy.fft).
    """
    frame_length = frames.shape[1]
    w = frame_length - tau_max  # integration window W'
    frames = frames - frames.mean(axis=1, keepdims=True)  # (T, L)
    if n_fft is None:
        n_fft = 1 << int(np.ceil(np.log2(frame_length + w)))
    spec_full = fft.rfft(frames, n=n_fft, axis=1)  # (T, F)
    spec_head = fft.rfft(frames[:, :w], n=n_fft, axis=1)  # (T, F)
    r = fft.irfft(np.conj(spec_head) * spec_full, n=n_fft, axis=1)[:, : tau_max + 1]  # (T, tau_max+1)
    sq = np.concatenate([np.zeros((frames.shape[0], 1)), np.cumsum(frames**2, axis=1)], axis=1)  # (T, L+1)
    taus = np.arange(tau_max + 1)
    energy_shift = sq[:, taus + w] - sq[:, taus]  # (T, tau_max+1): sum_{j<W'} x_{j+tau}^2
    diff = energy_shift[:, :1] + energy_shift - 2.0 * r  # (T, tau_max+1)
    diff = np.maximum(diff, 0.0)
    cum = np.cumsum(diff[:, 1:], axis=1)  # (T, tau_max)
    cmnd = np.ones_like(diff)
    cmnd[:, 1:] = diff[:, 1:] * taus[1:] / np.maximum(cum, 1e-12)

    # First local minimum under the threshold in [tau_min, tau_max); else the global minimum.
    seg = cmnd[:, tau_min : tau_max]  # (T, S)
    left = cmnd[:, tau_min - 1 : tau_max - 1]
    right = cmnd[:, tau_min + 1 : tau_max + 1]
    candidates = (seg < threshold) & (seg <= left) & (seg <= right)
    has = candidates.any(axis=1)
    first = np.argmax(candidates, axis=1)
    best = np.where(has, first, np.argmin(seg, axis=1)) + tau_min  # (T,)

    # Parabolic interpolation of the lag around the chosen minimum.
    rows = np.arange(len(best))
    b = np.clip(best, 1, tau_max - 1)
    y0, y1, y2 = cmnd[rows, b - 1], cmnd[rows, b], cmnd[rows, b + 1]
    denom = y0 - 2.0 * y1 + y2
    shift = np.where(np.abs(denom) > 1e-12, 0.5 * (y0 - y2) / np.where(denom == 0, 1, denom), 0.0)
    tau = b + np.clip(shift, -1.0, 1.0)
    f0 = sr / np.maximum(tau, 1.0)
    return f0.astype(np.float32), cmnd[rows, best].astype(np.float32)


class PitchReading(NamedTuple):
    """A window's pitch evidence: median F0 of its voiced frames (0.0 when none) and their share."""

    pitch_hz: float
    voiced_ratio: float


class PitchFrames(NamedTuple):
    """A wave's pitch frames (``pitch_frames``): frame t is centred on 16 kHz sample ``t * hop_samples``."""

    f0_hz: np.ndarray  # (T,) float32: the best period's frequency, voiced or not
    voicing: np.ndarray  # (T,) float32 in [0, 1]: 1 - aperiodicity
    energy_db: np.ndarray  # (T,) float64: RMS in dBFS of the 25 ms around the frame's centre


#: Sample rate of the evidence pitch reading: F0 up to 1 kHz needs nothing above 4 kHz.
READING_SR = 8000
#: YIN frame of the evidence reading at ``READING_SR`` (64 ms, as the expert's 1024 at 16 kHz).
READING_FRAME = 512
#: Decimation filter length (``_halfband``).
HALFBAND_TAPS = 41
#: 16 kHz samples either side of a frame's centre that its values depend on: the YIN frame at 8 kHz
#: (``READING_FRAME // 2`` samples, x2) widened by the decimation filter's half length (the 25 ms energy
#: frame is narrower), rounded up. A frame whose centre is this far inside a stretch of audio reads the
#: same, to the bit, in any stretch that holds it at the same phase (``edge_coat.worker.pitch_cache``).
FRAME_REACH = 2 * (READING_FRAME // 2 + 1) + HALFBAND_TAPS // 2 + 10


@functools.lru_cache(maxsize=1)
def _halfband() -> np.ndarray:
    """(41,) low-pass FIR for the 16 -> 8 kHz decimation: the filter ``resample_poly`` designs by
    default (Kaiser 5.0, cutoff at the new Nyquist), built once instead of on every call."""
    from scipy.signal import firwin

    return firwin(HALFBAND_TAPS, 0.5, window=("kaiser", 5.0))


def reading_hop_samples(hop_s: float = 0.02) -> int:
    """The reading's frame hop in 16 kHz samples (320 for 20 ms): frames sit on this grid."""
    return max(1, int(round(hop_s * READING_SR))) * (SAMPLE_RATE // READING_SR)


def is_silent(wave: np.ndarray, silence_dbfs: float = -60.0) -> bool:
    """A wave whose peak is under ``silence_dbfs`` (so every frame is unvoiced): not analysed."""
    return wave.size == 0 or float(np.max(np.abs(wave))) < 10.0 ** (silence_dbfs / 20.0)


def pitch_frames(waves: Sequence[np.ndarray], *, hop_s: float = 0.02) -> list[PitchFrames]:
    """YIN frames of the evidence reading for a batch of 16 kHz waves, frames of the whole batch in one FFT call.

    Each wave is decimated to 8 kHz (F0 <= 1 kHz) and cut into 512-sample (64 ms) frames ``hop_s`` apart,
    centred, zero-padded at the wave's edges; T = 1 + (N/2) // (hop_s * 8000). Frames within
    ``FRAME_REACH`` samples of an edge see the padding (and the decimation filter's edge), the others
    depend only on the audio around them.

    waves: (N,) float arrays of 16 kHz samples, finite (a window: N >= 1024; the pitch cache also passes shorter
    stretches of one).
    """
    import scipy.fft
    from scipy.signal import resample_poly

    down = SAMPLE_RATE // READING_SR
    hop = max(1, int(round(hop_s * READING_SR)))  # at 8 kHz
    frame_length = READING_FRAME
    frames, energy_db, spans = [], [], []
    for wave in waves:
        x = np.asarray(wave, dtype=np.float32)  # (N,)
        x8 = resample_poly(x, 1, down, window=_halfband()).astype(np.float32)  # (N/2,)
        n = 1 + x8.size // hop
        padded = np.pad(x8, (frame_length // 2, frame_length // 2))
        frames.append(np.lib.stride_tricks.sliding_window_view(padded, frame_length)[::hop][:n])  # (T, 512)
        # frame energy on the 16 kHz signal, 25 ms around the same centres (the expert's energy frames)
        p16 = np.pad(x, (200, 200))
        e_frames = np.lib.stride_tricks.sliding_window_view(p16, 400)[:: hop * down][:n]  # (T, 400)
        energy_db.append(_db(np.mean(e_frames.astype(np.float64) ** 2, axis=1)))  # (T,)
        spans.append(n)
    if not frames:
        return []
    all_frames = np.concatenate(frames)  # (sum T, 512)
    tau_max = min(int(np.ceil(READING_SR / 50.0)), frame_length // 2)
    tau_min = max(int(np.floor(READING_SR / 1000.0)), 2)
    # n_fft = L (no zero padding, see _yin_block) and scipy.fft, which unlike numpy.fft transforms
    # float32 frames in float32 without a padded float64 copy (~10x faster here on 1024-point rows)
    parts = [_yin_block(all_frames[s : s + YIN_BLOCK], READING_SR, tau_min, tau_max, 0.1,
                        n_fft=frame_length, fft=scipy.fft)
             for s in range(0, len(all_frames), YIN_BLOCK)]
    f0 = np.concatenate([p[0] for p in parts])  # (sum T,)
    voicing = np.clip(1.0 - np.concatenate([p[1] for p in parts]), 0.0, 1.0)  # (sum T,)
    out, at = [], 0
    for n, e in zip(spans, energy_db):
        out.append(PitchFrames(f0[at : at + n], voicing[at : at + n], e))
        at += n
    return out


def reduce_pitch(frames: PitchFrames, *, voiced_threshold: float = 0.8, silence_dbfs: float = -60.0) -> PitchReading:
    """A window's reading from its frames: a frame is voiced when its voicing is at least ``voiced_threshold``
    and its energy at least ``silence_dbfs``; the median F0 of the voiced frames (0.0 when none), their share."""
    v = (frames.voicing >= voiced_threshold) & (frames.energy_db >= silence_dbfs)  # (T,)
    return PitchReading(float(np.median(frames.f0_hz[v])) if v.any() else 0.0, float(v.mean()))


def pitch_readings(
    waves: Sequence[np.ndarray], *, hop_s: float = 0.02, voiced_threshold: float = 0.8, silence_dbfs: float = -60.0
) -> list[PitchReading]:
    """Per-window pitch evidence for a batch of 16 kHz windows, ~10x cheaper than the pitch expert.

    The same YIN and the same voicing rule as ``PitchProsodyExpert`` (a frame is voiced when
    1 - aperiodicity >= ``voiced_threshold`` and its RMS is at least ``silence_dbfs``), reduced to what
    an evidence reading needs, one number per window: the signal is decimated to 8 kHz (F0 <= 1 kHz),
    frames are ``hop_s`` apart instead of 10 ms, the frames of the whole batch go through one FFT
    call (``pitch_frames``), and a window whose peak is under ``silence_dbfs`` (so every frame is) is
    not analysed. The expert itself stays as it is: it is the training teacher, and its outputs are cached.
    The model stage reads a stream's overlapping windows through ``edge_coat.worker.pitch_cache``, which
    gives the same readings from the frames each window adds.

    waves: (N,) float arrays of 16 kHz samples, finite, N >= 1024 (checked by the caller).
    """
    waves = [np.asarray(w, dtype=np.float32) for w in waves]
    loud = [i for i, x in enumerate(waves) if not is_silent(x, silence_dbfs)]
    frames = dict(zip(loud, pitch_frames([waves[i] for i in loud], hop_s=hop_s)))
    return [reduce_pitch(frames[i], voiced_threshold=voiced_threshold, silence_dbfs=silence_dbfs)
            if i in frames else PitchReading(0.0, 0.0) for i in range(len(waves))]


@register_expert
class PitchProsodyExpert(Expert):
    """F0 contour, voicing and energy contour every 10 ms (YIN, DSP).

    Output (T, 3), T = 1 + N // 160:
        voicing: 1 - aperiodicity, clipped to [0, 1]; 0 in frames quieter than ``silence_dbfs``.
        log2_f0: log2(F0 / 100 Hz) in voiced frames (voicing >= ``voiced_threshold``), else 0.
        energy: frame RMS in dBFS / 100 (so -0.3 is -30 dBFS; floor -1.2).
    """

    name = "pitch_prosody"
    dim = 3
    frame_rate = SAMPLE_RATE / 160
    loss = "mse"
    license = "Apache-2.0 (edge-coat DSP code, no weights)"
    channels = ("voicing", "log2_f0", "energy")
    min_samples = 160
    hop = 160
    voiced_threshold = 0.8
    silence_dbfs = -60.0

    def _compute(self, wave: np.ndarray) -> np.ndarray:
        f0, aperiodicity = yin(wave, hop=self.hop)  # (T,), (T,)
        padded = np.pad(wave, (200, 200))
        frames = np.lib.stride_tricks.sliding_window_view(padded, 400)[:: self.hop][: len(f0)]  # (T, 400)
        energy_db = _db(np.mean(frames.astype(np.float64) ** 2, axis=1))  # (T,)
        voicing = np.clip(1.0 - aperiodicity, 0.0, 1.0)
        voicing[energy_db < self.silence_dbfs] = 0.0
        voiced = voicing >= self.voiced_threshold
        log2_f0 = np.where(voiced, np.log2(f0 / 100.0), 0.0)
        return np.stack([voicing, log2_f0, energy_db / 100.0], axis=1)  # (T, 3)

    def num_frames(self, num_samples: int) -> int:
        return 1 + num_samples // self.hop

    @classmethod
    def f0_hz(cls, out: np.ndarray) -> np.ndarray:
        """(T,) F0 in Hz from an output, NaN in unvoiced frames."""
        voiced = out[:, 0] >= cls.voiced_threshold
        return np.where(voiced, 100.0 * np.exp2(out[:, 1]), np.nan).astype(np.float32)

    def readings(self, out: np.ndarray) -> dict[str, float]:
        f0 = self.f0_hz(out)
        voiced = ~np.isnan(f0)
        return {
            "pitch_hz": float(np.median(f0[voiced])) if voiced.any() else 0.0,
            "voiced_ratio": float(voiced.mean()),
            "energy_range_db": float(100.0 * (np.percentile(out[:, 2], 95) - np.percentile(out[:, 2], 5))),
        }


# ---------------------------------------------------------------------------------------------
# Loudness and spectral shape

#: Band edges (Hz) of the band-energy channels: roughly octaves up to Nyquist.
BAND_EDGES_HZ: tuple[float, ...] = (0.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0)


@register_expert
class LoudnessSpectralExpert(Expert):
    """Loudness and spectral shape every 20 ms (STFT 512, Hann; librosa's spectral descriptors).

    Output (T, 11), T = 1 + N // 320:
        rms: frame RMS in dBFS / 100 (a full-scale sine reads -0.03).
        centroid, bandwidth, rolloff: in Hz / 8000 (Nyquist = 1).
        flatness: spectral flatness in [0, 1] (1 = white noise).
        band_*: energy in each band of ``BAND_EDGES_HZ``, dBFS / 100.
    """

    name = "loudness_spectral"
    frame_rate = SAMPLE_RATE / 320
    loss = "mse"
    license = "Apache-2.0 (edge-coat DSP code) + librosa (ISC)"
    channels = ("rms", "centroid", "bandwidth", "flatness", "rolloff") + tuple(
        f"band_{int(lo)}_{int(hi)}" for lo, hi in zip(BAND_EDGES_HZ[:-1], BAND_EDGES_HZ[1:])
    )
    dim = len(channels)
    min_samples = 320
    n_fft = 512
    hop = 320

    def _backend_version(self) -> str:
        return f"librosa-{package_version('librosa')}"

    def _load(self) -> None:
        import librosa

        # Warm-up: librosa's first STFT pulls in numba (seconds here); pay it at load, not mid-run.
        librosa.stft(np.zeros(self.n_fft, np.float32), n_fft=self.n_fft, hop_length=self.hop)

        freqs = np.fft.rfftfreq(self.n_fft, 1.0 / SAMPLE_RATE)
        self._bands = np.stack(
            [(freqs >= lo) & (freqs < hi if hi < BAND_EDGES_HZ[-1] else freqs <= hi)
             for lo, hi in zip(BAND_EDGES_HZ[:-1], BAND_EDGES_HZ[1:])]
        ).astype(np.float64)  # (bands, F)
        window = np.hanning(self.n_fft + 1)[:-1]
        # One-sided power -> mean square of the frame (Parseval with the window's energy).
        self._power_scale = 2.0 / (self.n_fft * np.sum(window**2))

    def _compute(self, wave: np.ndarray) -> np.ndarray:
        import librosa

        mag = np.abs(librosa.stft(wave, n_fft=self.n_fft, hop_length=self.hop, center=True))  # (F, T)
        power = mag.astype(np.float64) ** 2 * self._power_scale  # (F, T)
        bands = _db(self._bands @ power) / 100.0  # (bands, T)
        rms = _db(power.sum(axis=0)) / 100.0  # (T,)
        nyq = SAMPLE_RATE / 2
        kw = dict(S=mag, sr=SAMPLE_RATE, n_fft=self.n_fft, hop_length=self.hop)
        centroid = librosa.feature.spectral_centroid(**kw)[0] / nyq  # (T,)
        bandwidth = librosa.feature.spectral_bandwidth(**kw)[0] / nyq
        rolloff = librosa.feature.spectral_rolloff(**kw, roll_percent=0.85)[0] / nyq
        flatness = librosa.feature.spectral_flatness(S=mag)[0]
        silent = power.sum(axis=0) < 1e-12  # descriptors of digital silence are undefined: 0
        feats = np.stack([centroid, bandwidth, flatness, rolloff])  # (4, T)
        feats[:, silent] = 0.0
        return np.concatenate([rms[None], feats, bands], axis=0).T  # (T, 11)

    def num_frames(self, num_samples: int) -> int:
        return 1 + num_samples // self.hop

    def readings(self, out: np.ndarray) -> dict[str, float]:
        mean_power = np.mean(10.0 ** (out[:, 0] * 100.0 / 10.0))
        return {
            "loudness_dbfs": float(_db(np.array(mean_power))),
            "centroid_hz": float(np.median(out[:, 1]) * SAMPLE_RATE / 2),
            "flatness": float(np.median(out[:, 3])),
        }
