"""CoAT core on tiny random models of all three families (issue 2, section 3)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from edge_coat.model import CoatBatch
from edge_coat.model.sequence import IGNORE, gather_positions

CANDIDATES = ["normal", "abnormal", "not normal sound"]  # includes a multi-token answer
PROMPT = "is this machine sound normal or abnormal ?"


def count_decoder_calls(model):
    """Attach a pre-hook to the LLM decoder; returns the list it appends each call's length to."""
    calls = []

    def hook(module, args, kwargs):
        calls.append(int(kwargs["inputs_embeds"].shape[1]))

    handle = model.adapter.llm.register_forward_pre_hook(hook, with_kwargs=True)
    return calls, handle


@pytest.mark.parametrize("use_thinking", [True, False])
def test_decode_cost_is_one_prefill_then_single_positions(model, waves, use_thinking):
    n = 5
    asm, _, _ = model.build(waves, [PROMPT] * len(waves), use_thinking=use_thinking)
    calls, handle = count_decoder_calls(model)
    try:
        texts = model.generate(waves, PROMPT, max_new_tokens=n, stop_at_eos=False, use_thinking=use_thinking)
    finally:
        handle.remove()
    assert len(texts) == len(waves)
    assert calls == [asm.embeds.shape[1]] + [1] * (n - 1)
    k = model.config.num_thinking
    assert (asm.think_index is not None) == use_thinking
    if use_thinking:  # the prefix grows by K + 2, the call count does not
        plain, _, _ = model.build(waves, [PROMPT] * len(waves), use_thinking=False)
        assert asm.embeds.shape[1] == plain.embeds.shape[1] + k + 2


def _batch(model, waves):
    b = len(waves)
    g = torch.Generator().manual_seed(0)
    return CoatBatch(
        waves=waves,
        prompts=[PROMPT] * b,
        answers=["normal", "abnormal", "not normal sound"][:b],
        expert_targets={
            "voice": torch.randn(b, 8, generator=g),
            "pitch": torch.rand(b, 40, 1, generator=g),
            "tags": torch.rand(b, 5, generator=g),
        },
    )


def _grad_norm(params) -> float:
    return float(sum(p.grad.abs().sum() for p in params if p.grad is not None))


def test_distillation_reaches_thinking_and_layers_up_to_supervised(model, waves):
    model.zero_grad(set_to_none=True)
    losses = model.training_losses(_batch(model, waves))
    assert set(losses) >= {"answer", "experts", "total", "expert/voice", "expert/pitch", "expert/tags"}
    losses["experts"].backward()
    layer = model.supervised_layer
    assert 0 < layer < model.adapter.num_layers  # the tiny config supervises a middle layer
    assert _grad_norm(model.thinking.parameters()) > 0
    for i, block in enumerate(model.adapter.layers):
        g = _grad_norm(block.parameters())
        if i < layer:
            assert g > 0, f"layer {i} below the supervised layer {layer} got no gradient"
        else:
            assert g == 0, f"layer {i} at/above the supervised layer {layer} got gradient {g}"
    model.zero_grad(set_to_none=True)


def test_answer_loss_reaches_thinking_block(model, waves):
    model.zero_grad(set_to_none=True)
    losses = model.training_losses(_batch(model, waves))
    losses["answer"].backward()
    assert _grad_norm(model.thinking.parameters()) > 0
    assert model.think_open.grad is not None and float(model.think_open.grad.abs().sum()) > 0
    model.zero_grad(set_to_none=True)


def test_expert_scale_scales_only_the_expert_term(model, waves):
    model.eval()  # no dropout: the two calls see the same network
    with torch.no_grad():
        full = model.training_losses(_batch(model, waves))
        faded = model.training_losses(_batch(model, waves), expert_scale=0.25)
        off = model.training_losses(_batch(model, waves), expert_scale=0.0)
    assert float(full["experts"]) > 0
    torch.testing.assert_close(faded["answer"], full["answer"])
    torch.testing.assert_close(faded["expert/voice"], full["expert/voice"])  # per-expert losses are logged unscaled
    torch.testing.assert_close(faded["experts"], 0.25 * full["experts"])
    torch.testing.assert_close(faded["total"], full["answer"] + 0.25 * full["experts"])
    torch.testing.assert_close(off["total"], full["answer"])


def test_no_thinking_training_has_only_the_answer_loss(model, waves):
    losses = model.training_losses(_batch(model, waves), use_thinking=False)
    assert set(losses) == {"answer", "total"}
    assert torch.isfinite(losses["total"])


def full_recompute_logprobs(model, waves, candidates):
    """Summed token log-probs of each candidate, one uncached forward per candidate, right-padded."""
    out = np.zeros((len(waves), len(candidates)))
    with torch.no_grad():
        for j, cand in enumerate(candidates):
            asm, _, _ = model.build(waves, [PROMPT] * len(waves), answers=[cand] * len(waves), padding_side="right")
            o = model.adapter.decode(asm.embeds, asm.attention_mask, asm.positions)
            logp = F.log_softmax(model.adapter.lm_head(o.last_hidden_state).double(), -1)  # (B, L, V)
            labels = asm.labels[:, 1:]
            tok = torch.gather(logp[:, :-1], 2, labels.clamp(min=0)[..., None])[..., 0]
            out[:, j] = (tok * (labels != IGNORE)).sum(-1).numpy()
    return out


def test_label_scoring_equals_full_recompute_in_padded_batch(model, waves):
    r = model.score_labels(waves, PROMPT, CANDIDATES)
    assert r.logprobs.shape == (3, 3) and r.probs.shape == (3, 3)
    assert len(model.answer_ids(CANDIDATES[2])) > 2  # multi-token (+ EOS)
    np.testing.assert_allclose(r.logprobs, full_recompute_logprobs(model, waves, CANDIDATES), atol=1e-4)
    np.testing.assert_allclose(r.probs.sum(-1), 1.0, atol=1e-5)
    assert r.thinking.shape == (3, model.config.num_thinking, model.adapter.hidden_size)


def test_batch_of_different_lengths_equals_one_by_one(model, waves):
    batch = model.score_labels(waves, PROMPT, CANDIDATES)
    texts = model.generate(waves, PROMPT, max_new_tokens=4, stop_at_eos=False)
    for i, w in enumerate(waves):
        one = model.score_labels([w], PROMPT, CANDIDATES)
        np.testing.assert_allclose(batch.logprobs[i], one.logprobs[0], atol=1e-4)
        np.testing.assert_allclose(batch.thinking[i], one.thinking[0], atol=1e-4)
        assert model.generate([w], PROMPT, max_new_tokens=4, stop_at_eos=False) == [texts[i]]


def test_left_and_right_padding_agree(model, waves):
    with torch.no_grad():
        states = {}
        for side in ("left", "right"):
            asm, _, _ = model.build(waves, [PROMPT] * 3, padding_side=side)
            h = model.adapter.decode(asm.embeds, asm.attention_mask, asm.positions).last_hidden_state
            states[side] = (gather_positions(h, asm.think_index), asm)
    np.testing.assert_allclose(states["left"][0].numpy(), states["right"][0].numpy(), atol=1e-5)


def test_padded_audio_frames_do_not_reach_the_thinking_block(model, waves):
    audio, mask = model.encode(waves)
    assert mask.sum(-1).tolist() == sorted(mask.sum(-1).tolist())  # longer windows, more frames
    with torch.no_grad():
        a = model.think(audio, mask)
        noisy = torch.where(mask[..., None], audio, torch.randn_like(audio) * 100)
        b = model.think(noisy, mask)
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)


def test_probe_states_cover_all_layers(model, waves):
    s = model.probe_states(waves[:2], PROMPT)
    n = model.adapter.num_layers + 1
    assert s.thinking.shape == (n, 2, model.config.num_thinking, model.adapter.hidden_size)
    assert s.audio.shape[:2] == (n, 2) and s.audio_mask.shape == s.audio.shape[1:3]
    # the supervised-layer slice is what score_labels hands to detectors
    r = model.score_labels(waves[:2], PROMPT, CANDIDATES)
    np.testing.assert_allclose(s.thinking[model.supervised_layer], r.thinking, atol=1e-4)


def test_temperature_sharpens_or_flattens_probs(model, waves):
    r1 = model.score_labels(waves[:1], PROMPT, CANDIDATES)
    old = model.config.temperature
    try:
        model.config.temperature = 4.0
        r4 = model.score_labels(waves[:1], PROMPT, CANDIDATES)
    finally:
        model.config.temperature = old
    np.testing.assert_allclose(r1.logprobs, r4.logprobs, atol=1e-5)
    assert r4.probs.max() < r1.probs.max()  # a higher temperature is flatter
