"""Fixtures: one random tiny model saved to a temp folder for the whole session."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import save_tiny_model

REPO = Path(__file__).resolve().parents[2]
COAT_TINY = REPO / "models" / "coat-tiny"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def coat_tiny_dir() -> Path:
    """The embedded default model; tests that need it skip until it is trained and committed."""
    if not (COAT_TINY / "coat_config.json").is_file():
        pytest.skip(f"the embedded model is not in {COAT_TINY} yet (trained later); this test runs once it is")
    return COAT_TINY
