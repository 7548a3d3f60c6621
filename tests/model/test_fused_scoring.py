"""Label scoring in one decoder call (prefix + candidate branches under a tree mask) equals the cached path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edge_coat.model.decoding import prefill, score_candidates, score_fused, tree_mask

from .audio_helpers import tone

PROMPT = "what is the emotion of the speaker ?"
LABELS = ["neutral", "happy", "sad", "angry"]


def test_tree_mask_layout():
    attn = torch.tensor([[0, 1, 1], [1, 1, 1]])  # row 0 left-padded by one
    m = tree_mask(attn, num_candidates=2, steps=2)[:, 0]  # (2, 7, 7)
    assert m.shape == (2, 7, 7) and m.dtype == torch.bool
    # prefix: causal over real tokens; the padded row attends to itself only
    assert m[0, 0].tolist() == [True, False, False, False, False, False, False]
    assert m[0, 2, :3].tolist() == [False, True, True] and m[1, 2, :3].tolist() == [True, True, True]
    assert not m[:, :3, 3:].any()  # the prefix never sees the branches
    # branch 0 = columns 3, 4; branch 1 = columns 5, 6: each sees the real prefix and its own earlier tokens
    assert m[0, 4].tolist() == [False, True, True, True, True, False, False]
    assert m[1, 5].tolist() == [True, True, True, False, False, True, False]
    assert m[1, 6].tolist() == [True, True, True, False, False, True, True]


def test_fused_equals_prefill_plus_cached_candidates(model, waves):
    """Candidates of 1, 2 and 3 tokens in a left-padded batch of three lengths, thinking on and off."""
    candidates = [[5], [6, 7], [8, 9, 3]]
    for use_thinking in (True, False):
        with torch.inference_mode():
            asm, _, _ = model.build(waves, [PROMPT] * len(waves), use_thinking=use_thinking)
            pre = prefill(model.adapter, asm, output_hidden_states=True)
            want, _ = score_candidates(model.adapter, asm, candidates, pre)
            got, hidden = score_fused(model.adapter, asm, candidates, output_hidden_states=True)
        assert got.shape == (3, 3)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
        length = asm.embeds.shape[1]
        for h_fused, h_pre in zip(hidden, pre.hidden_states):  # the prefix states are the prefill's
            real = asm.attention_mask.bool()
            torch.testing.assert_close(h_fused[:, :length][real], h_pre[real], atol=1e-5, rtol=1e-5)


def test_single_token_candidates_need_no_branches(model, waves):
    with torch.inference_mode():
        asm, _, _ = model.build(waves[:2], [PROMPT] * 2)
        want, _ = score_candidates(model.adapter, asm, [[5], [6]])
        got, _ = score_fused(model.adapter, asm, [[5], [6]])
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_score_labels_paths_agree_and_unknown_path_is_refused(model, waves):
    batch = waves + [tone(9.0, 250.0, 4)]  # with a chunked window
    fused = model.score_labels(batch, PROMPT, LABELS)
    model.scoring = "cached"
    try:
        cached = model.score_labels(batch, PROMPT, LABELS)
        model.scoring = "tree"
        with pytest.raises(ValueError, match="'fused' or 'cached', got 'tree'"):
            model.score_labels(batch, PROMPT, LABELS)
    finally:
        model.scoring = "fused"
    np.testing.assert_allclose(fused.logprobs, cached.logprobs, atol=1e-5)
    np.testing.assert_allclose(fused.thinking, cached.thinking, atol=1e-5)
    np.testing.assert_allclose(fused.probs.sum(1), 1.0, atol=1e-5)


def test_token_ids_are_cached_per_text(model):
    first = model._ids(PROMPT)
    first.append(-1)  # callers get a copy: the cache cannot be changed through it
    assert model._ids(PROMPT) == model.tokenizer(PROMPT, add_special_tokens=False).input_ids


def test_several_tasks_after_one_shared_prefix_score_as_each_alone(model, waves):
    """score_tasks: every task's prompt and candidates as branches after one prefix of audio and thinking
    give each task's score_task result; the latents are the same for every task."""
    from edge_coat.model.decoding import forest_mask

    tasks = sorted(model.config.tasks)
    assert len(tasks) >= 2
    batch = waves + [tone(9.0, 250.0, 4)]
    together = model.score_tasks(batch, tasks)
    with torch.inference_mode():
        audio = model.encode(batch)
        think = model.think(*audio)
    shared = model.score_tasks(None, tasks, audio=audio, thinking=think)
    for task in tasks:
        alone = model.score_task(batch, task)
        for got in (together[task], shared[task]):
            assert got.labels == alone.labels
            np.testing.assert_allclose(got.logprobs, alone.logprobs, atol=1e-4, rtol=1e-4)
            np.testing.assert_allclose(got.probs, alone.probs, atol=1e-5)
            np.testing.assert_allclose(got.thinking, alone.thinking, atol=1e-4)
    model.scoring = "cached"
    try:
        cached = model.score_tasks(batch, tasks)
    finally:
        model.scoring = "fused"
    for task in tasks:
        np.testing.assert_allclose(cached[task].logprobs, together[task].logprobs, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="expected tasks this model knows"):
        model.score_tasks(batch, ["no-such-task"])
    # a chain of two and a branch off the prefix: each token sees its ancestors only
    m = forest_mask(torch.ones(1, 2, dtype=torch.long), [-1, 0, -1])[0, 0]  # (5, 5)
    assert m[3].tolist() == [True, True, True, True, False] and m[4].tolist() == [True, True, False, False, True]
