"""The cheap per-window pitch reading (``pitch_readings``) against the pitch expert it stands in for."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import lfilter

from edge_coat.experts import get_expert
from edge_coat.experts.dsp import PitchReading, pitch_readings

from .signals import SR, harmonic, silence, tone, white_noise


def expert_reading(wave: np.ndarray) -> PitchReading:
    e = get_expert("pitch_prosody")
    r = e.readings(e(wave))
    return PitchReading(r["pitch_hz"], r["voiced_ratio"])


def speech_like(f0_hz: float, seconds: float = 3.0, seed: int = 0) -> np.ndarray:
    """Syllables of a glottal pulse train (jittered F0 with a slow glide) through two formant
    resonators, separated by noise bursts (fricatives) and pauses: (N,) float32 at 16 kHz."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    f0 = f0_hz * (1.0 + 0.08 * np.sin(2 * np.pi * 0.7 * t)) * (1.0 + 0.005 * rng.standard_normal(n))  # (N,)
    phase = np.cumsum(f0 / SR)
    pulses = np.diff(np.floor(phase), prepend=0.0)  # (N,) one impulse per glottal period
    voiced = pulses
    for formant, bw in ((700.0, 90.0), (1200.0, 110.0)):
        r = np.exp(-np.pi * bw / SR)
        voiced = lfilter([1.0], [1.0, -2 * r * np.cos(2 * np.pi * formant / SR), r * r], voiced)
    voiced /= np.max(np.abs(voiced))
    # 0.4 s syllable, 0.1 s fricative (noise), 0.1 s pause
    cycle = (t % 0.6)
    out = np.where(cycle < 0.4, 0.3 * voiced, 0.0)
    out = np.where((cycle >= 0.4) & (cycle < 0.5), 0.05 * rng.standard_normal(n), out)
    return out.astype(np.float32)


@pytest.mark.parametrize("f0", [110.0, 165.0, 220.0, 330.0, 440.0])
def test_tones_agree_with_the_expert_and_the_true_pitch(f0):
    for wave in (tone(f0, 2.0), harmonic(f0, 2.0)):
        fast, ref = pitch_readings([wave])[0], expert_reading(wave)
        assert fast.pitch_hz == pytest.approx(f0, rel=0.02)
        assert fast.pitch_hz == pytest.approx(ref.pitch_hz, rel=0.02)
        assert fast.voiced_ratio > 0.95 and ref.voiced_ratio > 0.95


@pytest.mark.parametrize("f0, seed", [(120.0, 0), (210.0, 1)])
def test_speech_like_signals_agree_with_the_expert(f0, seed):
    wave = speech_like(f0, seed=seed)
    fast, ref = pitch_readings([wave])[0], expert_reading(wave)
    assert ref.pitch_hz == pytest.approx(f0, rel=0.1)  # the signal is what it claims to be
    assert fast.pitch_hz == pytest.approx(ref.pitch_hz, rel=0.02)
    # about 2/3 of the frames are voiced (syllables), the fricatives and pauses are not
    assert 0.4 < fast.voiced_ratio < 0.8
    assert fast.voiced_ratio == pytest.approx(ref.voiced_ratio, abs=0.05)


def test_unvoiced_and_silent_windows_give_no_pitch():
    quiet_tone = tone(220.0, 2.0, amp=0.0005)  # peak under -60 dBFS: not analysed at all
    out = pitch_readings([silence(), white_noise(amp=0.3), quiet_tone])
    assert out[0] == PitchReading(0.0, 0.0) and out[2] == PitchReading(0.0, 0.0)
    assert out[1].voiced_ratio < 0.05
    assert expert_reading(quiet_tone).voiced_ratio == 0.0  # the expert agrees that it is silence


def test_a_batch_reads_each_window_as_if_alone():
    waves = [tone(440.0, 1.0), silence(1.5), harmonic(130.0, 2.0), speech_like(180.0, 2.5, seed=3)]
    together = pitch_readings(waves)
    alone = [pitch_readings([w])[0] for w in waves]
    assert len(together) == 4
    for a, b in zip(together, alone):
        assert a.pitch_hz == pytest.approx(b.pitch_hz, rel=1e-5) and a.voiced_ratio == b.voiced_ratio
    assert pitch_readings([]) == []


def test_real_speech_agrees_with_the_expert(shared_data):
    """RAVDESS clips (real voices): the reading's median pitch within 2 % of the expert's on most clips,
    and both call the same clips voiced."""
    folder = shared_data / "ravdess"
    files = [row["file"] for row in csv.DictReader(open(folder / "labels.csv"))][::80]  # 12 clips, 12 actors
    errors = []
    for name in files:
        wave, sr = sf.read(folder / name, dtype="float32")
        assert sr == SR
        wave = wave[: 5 * SR]
        fast, ref = pitch_readings([wave])[0], expert_reading(wave)
        assert (fast.pitch_hz > 0) == (ref.pitch_hz > 0)
        assert fast.voiced_ratio == pytest.approx(ref.voiced_ratio, abs=0.05)
        if ref.pitch_hz > 0:
            errors.append(abs(fast.pitch_hz / ref.pitch_hz - 1.0))
    assert len(errors) >= 10
    assert np.median(errors) < 0.01 and np.percentile(errors, 80) < 0.02
