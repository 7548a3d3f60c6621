"""The site path: a base checkpoint copied into its own folder + a small CoAT folder attached to it.

A tiny Qwen2-Audio saved to a temp dir stands in for the real 7B checkpoint (fp32 on CPU here; a site
loads the same folders with quantization nf4 on CUDA).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from edge_coat.cli import main
from edge_coat.model.loading import load_bundle, runtime_status
from edge_coat.model.config import ThinkingRuntimeConfig
from edge_coat.model.lora import save_lora
from edge_coat.model.manifest import BundleError, read_manifest
from edge_coat.model.runtime import OnnxThinkingBlock

COAT_FILES = {"coat_config.json", "coat.safetensors"}


def _with_lora(src):
    """A fresh copy of the saved model with trained-looking (non-zero) LoRA adapters on its LLM."""
    import torch
    from peft import LoraConfig, inject_adapter_in_model

    from edge_coat.model.coat import CoatModel

    model = CoatModel.from_pretrained(src)
    inject_adapter_in_model(LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]), model.adapter.llm)
    torch.manual_seed(5)
    with torch.no_grad():
        for name, p in model.adapter.llm.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    return model.eval()


@pytest.fixture(scope="module")
def site(saved_models, tmp_path_factory):
    """(model with LoRA, plain model, base folder with a role=base manifest, CoAT bundle folder),
    built through the command line as a site would."""
    plain, src = saved_models["qwen2_audio"]
    model = _with_lora(src)
    root = tmp_path_factory.mktemp("site")
    base = shutil.copytree(src, root / "qwen2-audio-local", ignore=lambda d, names: COAT_FILES & set(names))
    trained = model.save_pretrained(root / "train-output", base=False)  # what training leaves: CoAT files ...
    save_lora(model, trained)  # ... and the LoRA adapters, kept apart from the base weights
    assert main(["models", "manifest", str(base), "--name", "qwen2-audio-tiny-standin", "--family", "qwen2_audio",
                 "--license", "Apache-2.0", "--base-model", "Qwen/Qwen2-Audio-7B-Instruct"]) == 0
    coat = root / "coat-qwen2-audio"
    rc = main(["export", "--model", str(base), "--coat", str(trained), "--out", str(coat), "--coat-only",
               "--name", "coat-qwen2-audio", "--license", "Apache-2.0", "--provenance", "generated test tones",
               "--base-model", "Qwen/Qwen2-Audio-7B-Instruct"])
    assert rc == 0
    return model, plain, base, coat


def test_coat_folder_is_small_and_described(site):
    _, _, base, coat = site
    manifest = read_manifest(coat)
    assert manifest.role == "coat" and manifest.family == "qwen2_audio"
    assert {f.path for f in manifest.files} == COAT_FILES | {"thinking.onnx", "thinking_frames.onnx", "thinking_window.onnx",
                                                            "lora/adapter_config.json",
                                                            "lora/adapter_model.safetensors"}
    assert manifest.data_provenance == ["generated test tones"]
    assert read_manifest(base).role == "base"
    assert "model.safetensors" in {f.path for f in read_manifest(base).files}


def test_base_plus_coat_folder_loads_offline_and_matches_torch(site, no_network):
    model, plain, base, coat = site
    loaded = load_bundle(base, coat_dir=coat, runtime=ThinkingRuntimeConfig(provider="cpu"))
    assert isinstance(loaded.thinking, OnnxThinkingBlock)
    assert runtime_status(loaded)["quantization"] == "fp32"
    rng = np.random.default_rng(11)
    waves = [(0.1 * rng.standard_normal(int(s * 16000))).astype(np.float32) for s in (1.0, 4.0)]
    got = loaded.score_task(waves, "emotion").probs
    np.testing.assert_allclose(got, model.score_task(waves, "emotion").probs, atol=1e-5)
    assert np.abs(got - plain.score_task(waves, "emotion").probs).max() > 1e-3  # the LoRA adapters took effect


def test_a_modified_base_checkpoint_is_refused(site, tmp_path):
    _, _, base, coat = site
    copy = shutil.copytree(base, tmp_path / "base")
    (copy / "config.json").write_text((copy / "config.json").read_text().replace("qwen2", "qwen3", 1))
    with pytest.raises(BundleError, match=r"config\.json: (modified|grown)"):
        load_bundle(copy, coat_dir=coat)


def test_lora_does_not_attach_to_int8(site):
    _, _, base, coat = site
    with pytest.raises(ValueError, match="LoRA adapters attach to fp32 or nf4 loads, not int8"):
        load_bundle(base, coat_dir=coat, quantization="int8")


def test_export_refuses_to_overwrite_and_nf4_needs_cuda(site, capsys):
    import torch

    _, _, base, coat = site
    assert main(["export", "--model", str(base), "--coat", str(coat), "--out", str(coat), "--coat-only"]) == 1
    assert "not empty" in capsys.readouterr().err
    if torch.cuda.is_available():
        pytest.skip("CUDA present: nf4 would load")
    with pytest.raises(RuntimeError, match="(CUDA|bitsandbytes)"):
        load_bundle(base, coat_dir=coat, quantization="nf4")
