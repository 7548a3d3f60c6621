"""The ``noisy`` channel: loud stationary noise of a drawn colour at a drawn SNR, reproducible from its seed."""

from __future__ import annotations

import numpy as np
import pytest

from edge_coat.train.augment import CHANNELS, apply_channel, coloured_noise, noisy
from edge_coat.train.towercache import variant_wave


def _tone(seconds: float = 2.0) -> np.ndarray:
    t = np.arange(int(seconds * 16_000)) / 16_000
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


@pytest.mark.parametrize("exponent", [0.0, 1.0, 2.0])
def test_coloured_noise_has_the_asked_spectral_slope(exponent):
    x = coloured_noise(1 << 16, exponent, np.random.default_rng(0))
    p = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(x.size)
    band = (f > 1e-3) & (f < 0.4)
    slope = np.polyfit(np.log(f[band]), np.log(p[band]), 1)[0]  # power ~ f^slope
    assert slope == pytest.approx(-exponent, abs=0.1)


def test_noise_lands_at_an_snr_between_0_and_10_db():
    wave = _tone()
    for seed in range(20):
        out = noisy(wave, np.random.default_rng(seed))
        assert out.shape == wave.shape and out.dtype == np.float32 and np.abs(out).max() <= 1.0
        gain = float(np.dot(out, wave) / np.dot(wave, wave))  # the clip's share (a peak rescale keeps the SNR)
        residual = out - gain * wave
        snr = 10 * np.log10(np.mean((gain * wave) ** 2) / np.mean(residual ** 2))
        assert -0.5 <= snr <= 10.5, (seed, snr)


def test_a_channel_of_its_own_reproducible_and_silence_stays_silent():
    assert "noisy" in CHANNELS
    wave = _tone()
    a = variant_wave(wave, "noisy", seed=7, gain_db=6.0)
    b = variant_wave(wave, "noisy", seed=7, gain_db=6.0)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, variant_wave(wave, "noisy", seed=8, gain_db=6.0))
    silent = np.zeros(16_000, np.float32)
    np.testing.assert_array_equal(apply_channel(silent, "noisy", np.random.default_rng(0)), silent)
