"""Test signals generated in the tests (16 kHz float32)."""

from __future__ import annotations

import numpy as np

SR = 16_000


def tone(freq_hz: float, seconds: float = 2.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def harmonic(f0_hz: float, seconds: float = 2.0, n_harmonics: int = 10, tilt: float = 1.0, amp: float = 0.3) -> np.ndarray:
    """A buzzy voiced-like source: harmonics of f0 with a 1/k**tilt spectrum."""
    t = np.arange(int(seconds * SR)) / SR
    x = sum(np.sin(2 * np.pi * k * f0_hz * t) / k**tilt for k in range(1, n_harmonics + 1))
    return (amp * x / np.max(np.abs(x))).astype(np.float32)


def white_noise(seconds: float = 2.0, amp: float = 0.1, seed: int = 0) -> np.ndarray:
    return (amp * np.random.default_rng(seed).standard_normal(int(seconds * SR))).astype(np.float32)


def silence(seconds: float = 2.0) -> np.ndarray:
    return np.zeros(int(seconds * SR), np.float32)
