"""Tiny random configs of the three families, for tests, benchmarks and the embedded coat-tiny model.

The encoders keep their real structure (Whisper-like conv front end, fixed frame count), scaled down:
``max_seconds`` sets ``max_source_positions`` so the encoder takes ``100 * max_seconds`` mel frames.
"""

from __future__ import annotations

from edge_coat.model.config import FAMILIES, CoatConfig, ExpertSpec, TaskSpec


def tiny_base_config(
    family: str,
    vocab_size: int,
    *,
    hidden_size: int = 64,
    num_layers: int = 3,
    heads: int = 4,
    audio_dim: int = 32,
    audio_layers: int = 1,
    n_mels: int = 32,
    max_seconds: int = 5,
    pad_token_id: int = 0,
    bos_token_id: int = 2,
    eos_token_id: int = 3,
):
    """A transformers config object for ``family`` with a few hundred thousand parameters."""
    import transformers as tf

    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; expected one of {FAMILIES}")
    if hidden_size % heads:
        raise ValueError(f"hidden_size {hidden_size} must be a multiple of heads {heads}")
    text = dict(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=heads,
        num_key_value_heads=max(1, heads // 2),
        max_position_embeddings=4096,
        pad_token_id=pad_token_id,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
    )
    positions = 50 * int(max_seconds)  # encoder positions after the stride-2 conv: 2 * positions mel frames
    if family == "qwen2_audio":
        audio = dict(num_mel_bins=n_mels, encoder_layers=audio_layers, encoder_attention_heads=2,
                     encoder_ffn_dim=2 * audio_dim, d_model=audio_dim, max_source_positions=positions)
        return tf.Qwen2AudioConfig(audio_config=audio, text_config=dict(model_type="qwen2", **text))
    if family == "audioflamingo3":
        audio = dict(num_mel_bins=n_mels, num_hidden_layers=audio_layers, num_attention_heads=2,
                     intermediate_size=2 * audio_dim, hidden_size=audio_dim, max_source_positions=positions)
        return tf.AudioFlamingo3Config(audio_config=audio, text_config=dict(model_type="qwen2", **text))
    head_dim = hidden_size // heads
    # mrope_section splits head_dim/2 rotary frequencies over (temporal, height, width).
    third = head_dim // 2 // 3
    mrope = [head_dim // 2 - 2 * third, third, third]
    text["rope_parameters"] = dict(rope_type="default", rope_theta=10000.0, mrope_section=mrope)
    audio = dict(num_mel_bins=n_mels, encoder_layers=audio_layers, encoder_attention_heads=2,
                 encoder_ffn_dim=2 * audio_dim, d_model=audio_dim, max_source_positions=positions,
                 output_dim=hidden_size, n_window=50)
    vision = dict(depth=1, hidden_size=16, intermediate_size=32, num_heads=2, out_hidden_size=hidden_size,
                  fullatt_block_indexes=[0])
    return tf.Qwen2_5OmniThinkerConfig(audio_config=audio, text_config=text, vision_config=vision)


def tiny_coat_config(family: str, **overrides) -> CoatConfig:
    """A small CoatConfig with one pooled and one time-resolved expert and two tasks."""
    base = dict(
        family=family,
        num_thinking=4,
        thinking_layers=1,
        thinking_heads=2,
        thinking_dim=32,
        supervised_layer=2,
        experts=[
            ExpertSpec(name="voice", dim=8, loss="cosine", weight=1.0, pooled=True),
            ExpertSpec(name="pitch", dim=1, loss="mse", weight=0.5, pooled=False),
            ExpertSpec(name="tags", dim=5, loss="bce", weight=0.5, pooled=True),
        ],
        prefix="audio :",
        tasks={
            "emotion": TaskSpec(prompt="what is the emotion of the speaker ?",
                                labels=["neutral", "happy", "sad", "angry"]),
            "anomaly": TaskSpec(prompt="is this machine sound normal or abnormal ?", labels=["normal", "abnormal"]),
        },
    )
    base.update(overrides)
    return CoatConfig(**base)


def tiny_coat_model(family: str, *, seed: int = 0, max_seconds: int = 5, **coat_overrides):
    """A random tiny ``CoatModel`` with the project's word tokenizer (tests, benchmarks)."""
    import torch

    from edge_coat.model.coat import CoatModel
    from edge_coat.model.tokenizer import build_word_tokenizer

    coat = tiny_coat_config(family, **coat_overrides)
    texts = [coat.prefix] + [t.prompt for t in coat.tasks.values()] + [l for t in coat.tasks.values() for l in t.labels]
    tokenizer = build_word_tokenizer(texts)
    torch.manual_seed(seed)
    base = tiny_base_config(family, vocab_size=len(tokenizer), max_seconds=max_seconds,
                            pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                            eos_token_id=tokenizer.eos_token_id)
    return CoatModel.from_config(family, base, coat, tokenizer)
