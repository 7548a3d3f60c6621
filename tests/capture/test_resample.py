"""Resampling to 16 kHz mono keeps a tone's frequency and level, and streams without clicks."""

from __future__ import annotations

import numpy as np
import pytest

from edge_coat.capture.resample import Resampler


def _tone(rate, secs, freq, amp, channels):
    t = np.arange(int(rate * secs)) / rate
    x = (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.repeat(x[:, None], channels, axis=1)  # (N, C)


def _peak_hz_and_rms(y):
    y = y[1600:-1600]  # away from the filter's start/end transients
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    k = int(np.argmax(spec))
    # parabolic interpolation of the peak bin
    a, b, c = np.log(spec[k - 1:k + 2] + 1e-20)
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * 16000 / len(y), float(np.sqrt(np.mean(y ** 2)))


@pytest.mark.parametrize("rate", [8000, 44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
def test_tone_keeps_frequency_and_level(rate, channels):
    freq, amp = 997.0, 0.4
    x = _tone(rate, 1.5, freq, amp, channels)
    res = Resampler(rate, channels)
    rng = np.random.default_rng(rate)
    parts, pos = [], 0
    while pos < len(x):  # ragged chunk sizes, as from a real device
        n = int(rng.integers(50, 5000))
        parts.append(res(x[pos:pos + n]))
        pos += n
    y = np.concatenate(parts + [res.flush()])
    assert abs(len(y) - 24000) <= 2
    hz, rms = _peak_hz_and_rms(y)
    ref_hz, ref_rms = _peak_hz_and_rms(_tone(16000, 1.5, freq, amp, 1)[:, 0])  # the same tone made at 16 kHz
    assert hz == pytest.approx(ref_hz, abs=0.5)
    assert 20 * np.log10(rms / ref_rms) == pytest.approx(0.0, abs=0.1)


@pytest.mark.parametrize("rate", [8000, 44100, 48000])
def test_chunked_equals_one_shot(rate):
    """No clicks at chunk boundaries: the stateful filter gives the same samples either way."""
    x = np.random.default_rng(1).standard_normal((rate, 1)).astype(np.float32) * 0.1
    one = Resampler(rate, 1)
    whole = np.concatenate([one(x), one.flush()])
    parts = Resampler(rate, 1)
    chunked = np.concatenate([parts(x[i:i + 441]) for i in range(0, len(x), 441)] + [parts.flush()])
    assert len(chunked) == len(whole)
    np.testing.assert_allclose(chunked, whole, atol=1e-5)


def test_anti_aliasing_removes_content_above_8khz():
    x = _tone(48000, 1.0, 12_000.0, 0.5, 1)  # would alias to 4 kHz without a low-pass
    res = Resampler(48000, 1)
    y = np.concatenate([res(x), res.flush()])
    assert np.sqrt(np.mean(y[1600:-1600] ** 2)) < 0.5 / np.sqrt(2) * 10 ** (-60 / 20)


def test_bad_shape_is_a_clear_error():
    with pytest.raises(ValueError, match=r"expected \(N, 2\)"):
        Resampler(48000, 2)(np.zeros((10, 3), np.float32))
