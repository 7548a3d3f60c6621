"""The experts on generated signals (real models and DSP, no mocks)."""

from __future__ import annotations

import numpy as np
import pytest

from edge_coat.experts import (
    DEFAULT_EXPERTS,
    LOSS_TYPES,
    available_experts,
    create_expert,
    get_expert,
    pool_segments,
)
from edge_coat.experts.dsp import PitchProsodyExpert
from edge_coat.experts.tags import N_FFT, WIN_LENGTH, log_mel_frames, mel_filterbank

from .signals import SR, harmonic, silence, tone, white_noise


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_registry_lists_five_experts_with_complete_metadata():
    assert set(DEFAULT_EXPERTS) <= set(available_experts())
    assert len(DEFAULT_EXPERTS) >= 5
    for name in DEFAULT_EXPERTS:
        e = get_expert(name)
        assert e is get_expert(name)  # shared instance
        assert e.name == name and e.dim >= 1 and e.loss in LOSS_TYPES and e.license
        assert e.frame_rate is None or e.frame_rate > 0
    with pytest.raises(ValueError, match="unknown expert 'nope'"):
        create_expert("nope")


@pytest.mark.parametrize("name", DEFAULT_EXPERTS)
def test_output_shape_dtype_and_frame_count(name):
    e = get_expert(name)
    wave = white_noise(2.5, amp=0.05) + tone(300.0, 2.5)
    out = e(wave)
    assert out.dtype == np.float32 and np.isfinite(out).all()
    if e.pooled:
        assert out.shape == (e.dim,)
    else:
        assert out.shape == (e.num_frames(len(wave)), e.dim)
        # frame_rate says how many frames a second of audio gives (within one frame of rounding)
        assert abs(out.shape[0] - 2.5 * e.frame_rate) <= 1.5
    assert e.version and e.version == get_expert(name).version


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((2, 16000), np.float32), "shape"),
        (np.zeros(16000, np.int16), "dtype"),
        (np.full(16000, np.nan, np.float32), "NaN"),
        (np.zeros(10, np.float32), "at least"),
        ([0.0] * 16000, "numpy array"),
    ],
)
def test_bad_input_is_a_clear_value_error(bad, match):
    with pytest.raises(ValueError, match=match):
        get_expert("pitch_prosody")(bad)


def test_pitch_of_a_220_hz_tone_and_a_buzzy_110_hz_source():
    e = get_expert("pitch_prosody")
    out = e(tone(220.0))
    assert e.readings(out)["pitch_hz"] == pytest.approx(220.0, abs=2.0)
    assert e.readings(out)["voiced_ratio"] > 0.95
    f0 = PitchProsodyExpert.f0_hz(out)
    assert np.nanmedian(f0) == pytest.approx(220.0, abs=2.0)
    # a harmonic-rich source: F0, not an octave above
    assert e.readings(e(harmonic(110.0)))["pitch_hz"] == pytest.approx(110.0, abs=2.0)


def test_pitch_follows_a_rising_glide_and_energy_contour():
    t = np.arange(2 * SR) / SR
    freq = 150.0 + 100.0 * t  # 150 -> 350 Hz
    amp = np.where(t < 1.0, 0.05, 0.5)  # 20 dB louder in the second half
    wave = (amp * np.sin(2 * np.pi * np.cumsum(freq) / SR)).astype(np.float32)
    out = get_expert("pitch_prosody")(wave)
    f0 = PitchProsodyExpert.f0_hz(out)
    idx = np.arange(len(f0)) / 100.0  # frame times, s
    for at in (0.5, 1.5):
        k = int(at * 100)
        assert f0[k] == pytest.approx(150.0 + 100.0 * idx[k], rel=0.03)
    energy_db = out[:, 2] * 100.0
    assert energy_db[150] - energy_db[50] == pytest.approx(20.0, abs=1.0)


def test_unvoiced_inputs_give_no_pitch():
    e = get_expert("pitch_prosody")
    assert e.readings(e(silence()))["voiced_ratio"] == 0.0
    assert e.readings(e(white_noise(amp=0.3)))["voiced_ratio"] < 0.05


def test_silence_and_noise_give_no_speech():
    e = get_expert("speech_vad")
    for wave in (silence(), white_noise(amp=0.05), tone(440.0)):
        out = e(wave)
        assert out.max() < 0.5
        assert e.readings(out)["speech_ratio"] == 0.0


def test_loudness_and_spectral_shape():
    e = get_expert("loudness_spectral")
    ch = {c: i for i, c in enumerate(e.channels)}
    t_out = e(tone(1500.0, amp=0.5))
    n_out = e(white_noise(amp=0.3))
    r_t, r_n = e.readings(t_out), e.readings(n_out)
    assert r_t["loudness_dbfs"] == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.5)
    assert r_n["loudness_dbfs"] == pytest.approx(20 * np.log10(0.3), abs=0.5)
    assert r_t["centroid_hz"] == pytest.approx(1500.0, rel=0.05)
    assert r_n["centroid_hz"] == pytest.approx(4000.0, rel=0.1)
    assert r_t["flatness"] < 0.01 < 0.3 < r_n["flatness"]
    # the tone's energy sits in the 1-2 kHz band, 20+ dB above every other band
    bands = [c for c in e.channels if c.startswith("band_")]
    mid = t_out[10:-10]
    loudest = max(bands, key=lambda b: mid[:, ch[b]].mean())
    assert loudest == "band_1000_2000"
    others = [mid[:, ch[b]].mean() for b in bands if b != loudest]
    assert (mid[:, ch[loudest]].mean() - max(others)) * 100 > 20
    assert e.readings(e(silence()))["loudness_dbfs"] == -120.0


def test_voice_embedding_same_signal_same_vector_different_signals_differ():
    e = get_expert("voice_embedding")
    a = harmonic(120.0, seconds=3.0, tilt=1.0)
    b = harmonic(240.0, seconds=3.0, tilt=2.0) + white_noise(3.0, amp=0.02, seed=1)
    ea, ea2, eb = e(a), e(a.copy()), e(b)
    assert ea.shape == (256,)
    assert np.linalg.norm(ea) == pytest.approx(1.0, abs=1e-4)
    assert cosine(ea, ea2) > 0.9999
    assert cosine(ea, eb) < 0.98
    assert not e(silence()).any()  # no energy at all: the zero vector, not NaN


def test_noise_and_tone_get_different_tags():
    e = get_expert("sound_tags")
    assert len(e.class_names) == 521 and e.class_names[0] == "Speech"
    tone_tags = e.top_tags(e(tone(220.0)), k=5)
    noise_tags = e.top_tags(e(white_noise(amp=0.3)), k=5)
    assert tone_tags[0][0] != noise_tags[0][0]
    assert "Sine wave" in [name for name, _ in tone_tags]
    assert "noise" in noise_tags[0][0].lower()
    assert tone_tags[0][1] > 0.5
    assert e.top_tags(e(silence()), k=1)[0][0] == "Silence"


def test_yamnet_front_end_matches_its_definition():
    """torch.stft path == a plain numpy STFT: Hann(400) centred in 512 points, hop 160, no centring."""
    wave = white_noise(1.2, amp=0.2, seed=3) + tone(700.0, 1.2)
    fb = mel_filterbank()
    got = log_mel_frames(wave, fb)  # (T, 64)
    n_frames = 1 + (len(wave) - N_FFT) // 160
    window = np.zeros(N_FFT)
    left = (N_FFT - WIN_LENGTH) // 2
    window[left : left + WIN_LENGTH] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(WIN_LENGTH) / WIN_LENGTH)
    frames = np.stack([wave[i * 160 : i * 160 + N_FFT] for i in range(n_frames)]).astype(np.float64)
    mag = np.abs(np.fft.rfft(frames * window, axis=1))  # (T, 257)
    want = np.log(mag @ fb.T.astype(np.float64) + 1e-6)
    assert got.shape == want.shape == (n_frames, 64)
    assert np.max(np.abs(got - want)) < 1e-3
    # the filterbank: 64 HTK triangles within 125-7500 Hz, peak 1 (no area normalisation)
    freqs = np.fft.rfftfreq(N_FFT, 1 / SR)
    assert fb.shape == (64, 257) and ((fb.max(axis=1) > 0.5) & (fb.max(axis=1) <= 1.0)).all()
    assert not fb[:, (freqs < 125) | (freqs > 7500)].any()


def test_pool_segments():
    frames = np.arange(12, dtype=np.float32).reshape(6, 2)  # (T=6, D=2)
    pooled = pool_segments(frames, 3)
    np.testing.assert_allclose(pooled, [[1, 2], [5, 6], [9, 10]])
    short = pool_segments(frames[:2], 4)  # T < k: every slot still gets a frame
    assert short.shape == (4, 2) and np.isfinite(short).all()
    with pytest.raises(ValueError, match=r"\(T, D\)"):
        pool_segments(np.zeros(5), 2)
