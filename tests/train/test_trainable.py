"""What trains: frozen encoder by default, LoRA on the LLM, and merging LoRA back for saving."""

from __future__ import annotations

import numpy as np
import torch

from edge_coat.model.tiny import tiny_coat_model
from edge_coat.train.config import DataSource, TrainConfig
from edge_coat.train.trainer import merge_lora, setup_trainable


def _config(**kw):
    return TrainConfig(data=[DataSource(path="x", task="emotion")], init_family="qwen2_audio", **kw)


def test_default_trains_llm_and_coat_not_the_encoder():
    model = tiny_coat_model("qwen2_audio", max_seconds=1)
    names = {n for n, _ in setup_trainable(model, _config())}
    assert any(n.startswith("thinking.") for n in names) and any(n.startswith("heads.") for n in names)
    assert "think_open" in names and any(".language_model." in n for n in names)
    assert not any("audio_tower" in n for n in names)
    names = {n for n, _ in setup_trainable(model, _config(train_encoder=True, freeze_llm=True))}
    assert any("audio_tower" in n for n in names) and not any(".language_model." in n for n in names)


def test_lora_trains_adapters_only_and_merges_to_the_same_function():
    model = tiny_coat_model("qwen2_audio", max_seconds=1)
    names = {n for n, _ in setup_trainable(model, _config(lora=True, lora_r=4))}
    llm = [n for n in names if ".language_model." in n]
    assert llm and all("lora_" in n for n in llm)
    with torch.no_grad():  # make the adapters do something (lora_B starts at zero)
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)
    wave = [np.sin(np.arange(16000) * 0.05).astype(np.float32) * 0.3]
    prompt = model.config.tasks["emotion"].prompt
    before = model.score_labels(wave, prompt, ["happy", "sad"]).logprobs
    assert merge_lora(model) > 0
    assert not any("lora_" in n for n, _ in model.named_parameters())
    after = model.score_labels(wave, prompt, ["happy", "sad"]).logprobs
    np.testing.assert_allclose(before, after, atol=1e-4)
