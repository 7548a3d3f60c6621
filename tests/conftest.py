"""Shared test fixtures and helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real recorded audio in ../shared/data; tests that need it skip when it is absent."""
    if not (SHARED_DATA / "ravdess" / "labels.csv").exists():
        pytest.skip(f"real audio not present at {SHARED_DATA} (a fresh clone has no ../shared)")
    return SHARED_DATA
