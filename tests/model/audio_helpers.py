"""Audio made in the tests (no files)."""

from __future__ import annotations

import numpy as np

SR = 16_000


def tone(seconds: float, freq: float = 220.0, seed: int = 0) -> np.ndarray:
    """A harmonic tone with a little noise: (n,) float32 in [-1, 1]."""
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(seed)
    x = 0.3 * np.sin(2 * np.pi * freq * t) + 0.1 * np.sin(2 * np.pi * 2 * freq * t) + 0.02 * rng.standard_normal(t.size)
    return x.astype(np.float32)
