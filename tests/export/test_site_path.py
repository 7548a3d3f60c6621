"""The site path: a base checkpoint copied into its own folder + a small CoAT folder attached to it.

A tiny Qwen2-Audio saved to a temp dir stands in for the real 7B checkpoint (fp32 on CPU here; a site
loads the same folders with quantization nf4 on CUDA).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from edge_coat.cli import main
from edge_coat.export.bundle import load_bundle, runtime_status
from edge_coat.export.config import ThinkingRuntimeConfig
from edge_coat.export.manifest import BundleError, read_manifest
from edge_coat.export.runtime import OnnxThinkingBlock

COAT_FILES = {"coat_config.json", "coat.safetensors"}


@pytest.fixture(scope="module")
def site(saved_models, tmp_path_factory):
    """(torch model, base folder with a role=base manifest, CoAT bundle folder) built through the CLI."""
    model, src = saved_models["qwen2_audio"]
    root = tmp_path_factory.mktemp("site")
    base = shutil.copytree(src, root / "qwen2-audio-local", ignore=lambda d, names: COAT_FILES & set(names))
    trained = model.save_pretrained(root / "train-output", base=False)  # what training leaves: CoAT files only
    assert main(["models", "manifest", str(base), "--name", "qwen2-audio-tiny-standin", "--family", "qwen2_audio",
                 "--license", "Apache-2.0", "--base-model", "Qwen/Qwen2-Audio-7B-Instruct"]) == 0
    coat = root / "coat-qwen2-audio"
    rc = main(["export", "--model", str(base), "--coat", str(trained), "--out", str(coat), "--coat-only",
               "--name", "coat-qwen2-audio", "--license", "Apache-2.0", "--provenance", "generated test tones",
               "--base-model", "Qwen/Qwen2-Audio-7B-Instruct"])
    assert rc == 0
    return model, base, coat


def test_coat_folder_is_small_and_described(site):
    _, base, coat = site
    manifest = read_manifest(coat)
    assert manifest.role == "coat" and manifest.family == "qwen2_audio"
    assert {f.path for f in manifest.files} == COAT_FILES | {"thinking.onnx"}
    assert manifest.data_provenance == ["generated test tones"]
    assert read_manifest(base).role == "base"
    assert "model.safetensors" in {f.path for f in read_manifest(base).files}


def test_base_plus_coat_folder_loads_offline_and_matches_torch(site, no_network):
    model, base, coat = site
    loaded = load_bundle(base, coat_dir=coat, runtime=ThinkingRuntimeConfig(provider="cpu"))
    assert isinstance(loaded.thinking, OnnxThinkingBlock)
    assert runtime_status(loaded)["quantization"] == "fp32"
    rng = np.random.default_rng(11)
    waves = [(0.1 * rng.standard_normal(int(s * 16000))).astype(np.float32) for s in (1.0, 4.0)]
    np.testing.assert_allclose(loaded.score_task(waves, "anomaly").probs, model.score_task(waves, "anomaly").probs,
                               atol=1e-5)


def test_a_modified_base_checkpoint_is_refused(site, tmp_path):
    _, base, coat = site
    copy = shutil.copytree(base, tmp_path / "base")
    (copy / "config.json").write_text((copy / "config.json").read_text().replace("qwen2", "qwen3", 1))
    with pytest.raises(BundleError, match=r"config\.json: (modified|grown)"):
        load_bundle(copy, coat_dir=coat)


def test_export_refuses_to_overwrite_and_nf4_needs_cuda(site, capsys):
    import torch

    _, base, coat = site
    assert main(["export", "--model", str(base), "--coat", str(coat), "--out", str(coat), "--coat-only"]) == 1
    assert "not empty" in capsys.readouterr().err
    if torch.cuda.is_available():
        pytest.skip("CUDA present: nf4 would load")
    with pytest.raises(RuntimeError, match="(CUDA|bitsandbytes)"):
        load_bundle(base, coat_dir=coat, quantization="nf4")
