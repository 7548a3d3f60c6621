"""Tiny saved models and their exported bundles, built once per test session (exports take seconds)."""

from __future__ import annotations


import pytest

from edge_coat.model.config import FAMILIES


@pytest.fixture(scope="session")
def saved_models(tmp_path_factory):
    """family -> (torch CoatModel, folder it was saved to)."""
    from edge_coat.model.tiny import tiny_coat_model

    out = {}
    for family in FAMILIES:
        model = tiny_coat_model(family, seed=1)
        out[family] = (model, model.save_pretrained(tmp_path_factory.mktemp(f"src-{family}")))
    return out


@pytest.fixture(scope="session")
def bundles(saved_models, tmp_path_factory):
    """family -> (Manifest, bundle folder) exported from ``saved_models``."""
    from edge_coat.export.bundle import export_bundle

    out = {}
    for family, (_, src) in saved_models.items():
        dst = tmp_path_factory.mktemp("bundles") / f"coat-tiny-{family}"
        manifest = export_bundle(src, dst, name=f"coat-tiny-{family}", license="Apache-2.0",
                                 data_provenance=["generated test tones"])
        out[family] = (manifest, dst)
    return out
