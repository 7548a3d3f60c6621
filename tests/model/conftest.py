"""Fixtures for the model-core tests: one tiny random CoAT model per family, audio made here."""

from __future__ import annotations

import numpy as np
import pytest

from edge_coat.model import FAMILIES, tiny_coat_model

SR = 16_000


def tone(seconds: float, freq: float = 220.0, seed: int = 0) -> np.ndarray:
    """A harmonic tone with a little noise: (n,) float32 in [-1, 1]."""
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(seed)
    x = 0.3 * np.sin(2 * np.pi * freq * t) + 0.1 * np.sin(2 * np.pi * 2 * freq * t) + 0.02 * rng.standard_normal(t.size)
    return x.astype(np.float32)


@pytest.fixture(scope="module", params=FAMILIES)
def model(request):
    return tiny_coat_model(request.param, seed=0)


@pytest.fixture(scope="module")
def waves():
    """Three windows of different lengths (1.0, 2.5 and 4.2 s); the tiny encoders take 5 s."""
    return [tone(1.0, 220.0, 1), tone(2.5, 330.0, 2), tone(4.2, 440.0, 3)]
