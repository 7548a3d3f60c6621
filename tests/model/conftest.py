"""Fixtures for the model-core tests: one tiny random CoAT model per family, audio made here."""

from __future__ import annotations

import pytest

from edge_coat.model import FAMILIES, tiny_coat_model

from .audio_helpers import tone


@pytest.fixture(scope="module", params=FAMILIES)
def model(request):
    return tiny_coat_model(request.param, seed=0)


@pytest.fixture(scope="module")
def waves():
    """Three windows of different lengths (1.0, 2.5 and 4.2 s); the tiny encoders take 5 s."""
    return [tone(1.0, 220.0, 1), tone(2.5, 330.0, 2), tone(4.2, 440.0, 3)]
