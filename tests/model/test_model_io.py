"""Input validation, offline save/load, loading modes, tokenizer, config (issue 2)."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from edge_coat.model import CoatConfig, CoatModel, build_word_tokenizer, tiny_coat_config
from .audio_helpers import tone

PROMPT = "what is the emotion of the speaker ?"
LABELS = ["neutral", "happy", "sad", "angry"]


@pytest.mark.parametrize(
    "make, kwargs, match",
    [
        (lambda: [np.zeros(0, np.float32)], {}, "empty audio"),
        (lambda: [np.where(np.arange(16000) == 5, np.nan, 0.1).astype(np.float32)], {}, "NaN or inf"),
        (lambda: [np.full(16000, np.inf, np.float32)], {}, "NaN or inf"),
        (lambda: [tone(1.0)], {"sample_rate": 8000}, "16000 Hz.*8000"),
        (lambda: [np.stack([tone(1.0), tone(1.0)])], {}, r"mono.*\(2, 16000\)"),
        (lambda: [tone(31.0)], {}, "longer than the model accepts"),
        (lambda: [], {}, "at least one waveform"),
        (lambda: [(tone(1.0) * 32767).astype(np.int16)], {}, "float samples.*int16"),
    ],
    ids=["empty", "nan", "inf", "sample-rate", "stereo", "too-long", "no-windows", "int16"],
)
def test_bad_input_raises_a_clear_value_error_before_torch(model, make, kwargs, match):
    with pytest.raises(ValueError, match=match):
        model.score_labels(make(), PROMPT, LABELS, **kwargs)


def test_bad_window_in_a_batch_is_named_by_index(model):
    with pytest.raises(ValueError, match="window 1"):
        model.generate([tone(1.0), np.zeros(0, np.float32)], PROMPT)


def test_too_few_candidates(model):
    with pytest.raises(ValueError, match="at least 2 candidates"):
        model.score_labels([tone(1.0)], PROMPT, ["angry"])


def test_save_and_load_round_trip_offline(model, tmp_path, no_network):
    waves = [tone(1.5, 200.0), tone(3.0, 300.0)]
    before = model.score_labels(waves, PROMPT, LABELS)
    model.save_pretrained(tmp_path / "m")
    names = {p.name for p in (tmp_path / "m").iterdir()}
    assert {"config.json", "coat.safetensors", "coat_config.json", "tokenizer.json"} <= names
    loaded = CoatModel.from_pretrained(tmp_path / "m")
    assert loaded.quantization == "fp32" and loaded.config == model.config
    after = loaded.score_labels(waves, PROMPT, LABELS)
    np.testing.assert_allclose(after.logprobs, before.logprobs, atol=1e-5)
    np.testing.assert_allclose(after.thinking, before.thinking, atol=1e-5)


def test_coat_weights_attach_to_a_separate_base_checkpoint(model, tmp_path, no_network):
    waves = [tone(2.0)]
    model.save_pretrained(tmp_path / "base")
    model.save_pretrained(tmp_path / "coat", base=False)
    assert not (tmp_path / "coat" / "config.json").exists()
    # the base dir alone carries stale CoAT weights; the coat dir's must win
    with torch.no_grad():
        model.thinking.queries.add_(0.5)
    try:
        model.save_pretrained(tmp_path / "coat", base=False)
        expected = model.score_labels(waves, PROMPT, LABELS)
        loaded = CoatModel.from_pretrained(tmp_path / "base", coat_dir=tmp_path / "coat")
    finally:
        with torch.no_grad():
            model.thinking.queries.sub_(0.5)
    np.testing.assert_allclose(loaded.score_labels(waves, PROMPT, LABELS).logprobs, expected.logprobs, atol=1e-5)


def test_int8_mode_runs_and_stays_close(model, tmp_path):
    waves = [tone(2.0)]
    model.save_pretrained(tmp_path / "m")
    q = CoatModel.from_pretrained(tmp_path / "m", quantization="int8")
    assert q.quantization == "int8"
    assert any(type(m).__name__ == "Linear" and "quantized" in type(m).__module__ for m in q.adapter.llm.modules())
    ref = model.score_labels(waves, PROMPT, LABELS)
    got = q.score_labels(waves, PROMPT, LABELS)
    assert np.abs(got.probs - ref.probs).max() < 0.05
    with pytest.raises(ValueError, match="cannot save a int8"):
        q.save_pretrained(tmp_path / "q")


def test_nf4_mode_names_what_is_missing(tmp_path):
    import importlib.util

    missing = [p for p in ("bitsandbytes", "accelerate") if importlib.util.find_spec(p) is None]
    if not missing and torch.cuda.is_available():
        pytest.skip("nf4 is available here")
    expected = missing[0] if missing else "CUDA is not available"
    with pytest.raises(RuntimeError, match=expected):
        CoatModel.from_pretrained(tmp_path, quantization="nf4")


def test_unknown_mode_and_missing_files(tmp_path):
    with pytest.raises(ValueError, match="unknown quantization 'int4'"):
        CoatModel.from_pretrained(tmp_path, quantization="int4")
    with pytest.raises(FileNotFoundError, match="coat_config.json"):
        CoatModel.from_pretrained(tmp_path)


def test_word_tokenizer_round_trip(tmp_path):
    from transformers import AutoTokenizer

    tok = build_word_tokenizer(["Is the press humming?"])
    ids = tok("is the press humming ?", add_special_tokens=False).input_ids
    assert tok.unk_token_id not in ids
    assert tok.decode(ids) == "is the press humming?"
    assert tok("zebra", add_special_tokens=False).input_ids == [tok.unk_token_id]
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(str(tmp_path), local_files_only=True)
    assert again("is the press humming ?", add_special_tokens=False).input_ids == ids
    assert (again.pad_token_id, again.eos_token_id) == (0, 3)


def test_coat_config_validation_and_file(tmp_path):
    cfg = tiny_coat_config("qwen2_audio")
    cfg.save(tmp_path)
    assert CoatConfig.load(tmp_path) == cfg
    with pytest.raises(ValueError, match="multiple of thinking_heads"):
        tiny_coat_config("qwen2_audio", thinking_dim=30, thinking_heads=4)
    with pytest.raises(ValueError, match="extra"):
        CoatConfig(family="qwen2_audio", bogus=1)
    with pytest.raises(ValueError, match="unique"):
        tiny_coat_config("qwen2_audio", experts=[dict(name="a", dim=1, loss="mse")] * 2)


def test_supervised_layer_out_of_range():
    from edge_coat.model import tiny_coat_model

    with pytest.raises(ValueError, match="supervised_layer 7 is out of range"):
        tiny_coat_model("qwen2_audio", supervised_layer=7)
