"""Windows longer than the encoder's input: encoded in encoder-length chunks (issue 4, 10 s windows)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import WhisperFeatureExtractor

from edge_coat.model.audio import HOP, MAX_WINDOW_SECONDS, join_chunks

from .audio_helpers import SR, tone

PROMPT = "what is the emotion of the speaker ?"
LABELS = ["neutral", "happy", "sad", "angry"]


def _sweep(seconds: float, seed: int) -> np.ndarray:
    """A rising chirp plus noise, so every chunk of a long window differs from the others."""
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(seed)
    x = 0.3 * np.sin(2 * np.pi * (150.0 + 40.0 * t) * t) + 0.02 * rng.standard_normal(t.size)
    return x.astype(np.float32)


def test_chunk_features_are_the_whole_window_features_cut_at_chunk_boundaries(model):
    front = model.frontend
    wave = _sweep(2 * front.max_seconds, 0)  # exactly two chunks
    mel, mask, counts = front.chunks([wave, tone(1.0)])
    assert counts == [2, 1] and mel.shape == (3, front.n_mels, front.max_frames)
    whole = WhisperFeatureExtractor(feature_size=front.n_mels, sampling_rate=SR, hop_length=HOP,
                                    chunk_length=2 * front.max_frames // 100, n_fft=400)
    ref = whole(wave, sampling_rate=SR, return_tensors="np")["input_features"][0]  # (n_mels, 2F)
    np.testing.assert_allclose(torch.cat([mel[0], mel[1]], -1).numpy(), ref, atol=1e-6)
    assert mask[:2].all() and int(mask[2].sum()) == 100  # 1 s = 100 frames in the last (only) chunk
    # a window no longer than the encoder's input: exactly today's features
    short_mel, short_mask = front([tone(1.0)])
    assert torch.equal(mel[2:], short_mel) and torch.equal(mask[2:], short_mask)


def test_long_window_equals_its_chunks_encoded_alone_in_a_mixed_padded_batch(model):
    """A 2-chunk window, a 1-chunk window and a 1.5-chunk window in one batch: each window's audio
    positions are its chunks' own encoder outputs (each chunk encoded alone), concatenated."""
    enc_s = model.max_seconds
    waves = [_sweep(2 * enc_s, 1), tone(0.6 * enc_s, 330.0, 2), _sweep(1.5 * enc_s, 3)]
    with torch.inference_mode():
        embeds, mask = model.encode(waves)  # (B, T, D), (B, T)
        mel, mel_mask, counts = model.frontend.chunks(waves)
        alone = [model.adapter.encode_audio(mel[i:i + 1], mel_mask[i:i + 1]) for i in range(mel.shape[0])]
    per_chunk = 25 * enc_s  # encoder positions per chunk (100 mel frames/s, /4)
    assert counts == [2, 1, 2] and embeds.shape[1] == 2 * per_chunk
    assert mask.sum(1).tolist() == [2 * per_chunk, int(0.6 * per_chunk), int(1.5 * per_chunk)]
    starts = np.cumsum([0] + counts)
    for i in range(len(waves)):
        expected = torch.cat([e[0][m[0]] for e, m in alone[starts[i]:starts[i + 1]]])  # (T_i, D)
        got = embeds[i][mask[i]]
        assert got.shape == expected.shape
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert not mask[1, mask[1].sum():].any() and float(embeds[1, ~mask[1]].abs().max()) == 0.0


def test_windows_up_to_the_encoder_input_score_the_same_beside_a_long_window(model, waves):
    """The <= max_seconds path is today's path; beside a 10 s window in a batch its scores do not move."""
    alone = model.score_labels(waves, PROMPT, LABELS)
    mixed = model.score_labels(waves + [_sweep(2 * model.max_seconds, 4)], PROMPT, LABELS)
    np.testing.assert_allclose(mixed.logprobs[: len(waves)], alone.logprobs, atol=1e-5)
    np.testing.assert_allclose(mixed.thinking[: len(waves)], alone.thinking, atol=1e-5)
    long_alone = model.score_labels([_sweep(2 * model.max_seconds, 4)], PROMPT, LABELS)
    np.testing.assert_allclose(mixed.logprobs[-1:], long_alone.logprobs, atol=1e-5)
    assert np.isfinite(mixed.probs).all()


def test_window_limit_is_documented_and_enforced(model):
    assert model.max_window_seconds == max(model.max_seconds, MAX_WINDOW_SECONDS) == 30.0
    model.encode([tone(MAX_WINDOW_SECONDS)])  # the limit itself is accepted
    with pytest.raises(ValueError, match=r"window 0: 30\.10 s is longer than the model accepts \(30\.00 s"):
        model.encode([tone(MAX_WINDOW_SECONDS + 0.1)])


def test_join_chunks_checks_the_chunk_count():
    with pytest.raises(ValueError, match="expected 3 chunks"):
        join_chunks(torch.zeros(2, 4, 8), torch.ones(2, 4, dtype=torch.bool), [2, 1])


def test_pooled_llm_audio_with_summary_scores_a_window_alike_alone_and_in_a_batch():
    """llm_audio_stride pools the audio positions before the LLM: the sequence is that many times shorter,
    and a window scores the same alone and beside longer or chunked windows."""
    import numpy as np

    from edge_coat.model.tiny import tiny_coat_model

    from .audio_helpers import tone

    plain = tiny_coat_model("qwen2_audio", max_seconds=1, chunk_features="chunk")
    pooled = tiny_coat_model("qwen2_audio", max_seconds=1, chunk_features="chunk", llm_audio_stride=5,
                             thinking_summary=True)
    waves = [tone(0.7, 220.0, 1), tone(3.0, 330.0, 2), tone(2.4, 440.0, 3)]
    with torch.inference_mode():
        a_plain, _, _ = plain.build(waves, ["x"] * 3)
        a_pooled, audio, mask = pooled.build(waves, ["x"] * 3)
    assert int(a_pooled.audio_mask[1].sum()) * 5 == int(mask[1].sum()) == int(a_plain.audio_mask[1].sum())
    batch = pooled.score_task(waves, "emotion").probs
    for i, w in enumerate(waves):
        np.testing.assert_allclose(pooled.score_task([w], "emotion").probs[0], batch[i], atol=1e-5)
