"""Thinking block, expert heads, slot pooling and losses on hand-built tensors."""

from __future__ import annotations

import pytest
import torch

from edge_coat.model import ExpertHeads, ExpertSpec, ThinkingBlock, expert_loss, slot_pool


def test_slot_pool_averages_consecutive_stretches_of_the_valid_span():
    # window 0: 8 valid frames -> 4 slots of 2; window 1: 4 valid of 8 -> 4 slots of 1
    t = torch.arange(8, dtype=torch.float32)[None, :, None].repeat(2, 1, 1)  # (2, 8, 1)
    mask = torch.tensor([[True] * 8, [True] * 4 + [False] * 4])
    pooled, slot_mask = slot_pool(t, mask, 4)
    assert pooled[0, :, 0].tolist() == [0.5, 2.5, 4.5, 6.5]
    assert pooled[1, :, 0].tolist() == [0.0, 1.0, 2.0, 3.0]
    assert slot_mask.all()


def test_slot_pool_marks_slots_without_readings():
    t = torch.ones(1, 2, 3)  # 2 frames, 4 slots: two slots get nothing
    pooled, slot_mask = slot_pool(t, torch.ones(1, 2, dtype=torch.bool), 4)
    assert slot_mask.tolist() == [[True, False, True, False]]
    assert pooled[0, 1].abs().sum() == 0
    with pytest.raises(ValueError, match=r"\(B, frames, dim\)"):
        slot_pool(torch.ones(2, 3), torch.ones(2, 3, dtype=torch.bool), 4)


@pytest.mark.parametrize("kind", ["cosine", "mse", "kl", "bce"])
def test_expert_loss_is_small_at_the_target_and_ignores_masked_rows(kind):
    g = torch.Generator().manual_seed(0)
    target = torch.rand(4, 6, generator=g)
    good = torch.log(target / target.sum(-1, keepdim=True)) if kind == "kl" else target
    if kind == "bce":
        target = (target > 0.5).float()
        good = (target * 2 - 1) * 20  # confident logits on the right side
    bad = -good
    mask = torch.tensor([True, True, False, False])
    assert expert_loss(kind, good, target, mask) < expert_loss(kind, bad, target, mask)
    assert expert_loss(kind, good, target, mask) < 1e-3
    # rows 2-3 are masked: garbage there changes nothing
    junk = good.clone()
    junk[2:] = 1e3
    assert torch.allclose(expert_loss(kind, junk, target, mask), expert_loss(kind, good, target, mask))
    none = expert_loss(kind, good, target, torch.zeros(4, dtype=torch.bool))
    assert none.item() == 0.0 and none.requires_grad == good.requires_grad


def test_expert_heads_shapes_and_target_checks():
    heads = ExpertHeads([ExpertSpec(name="v", dim=3, loss="cosine"),
                         ExpertSpec(name="f0", dim=1, loss="mse", pooled=False)], hidden_size=16)
    x = torch.randn(2, 5, 16, requires_grad=True)  # (B, K, D)
    out = heads(x)
    assert out["v"].shape == (2, 3) and out["f0"].shape == (2, 5, 1)
    losses = heads.losses(x, {"v": torch.randn(2, 3), "f0": torch.randn(2, 30, 1)},
                          {"f0": torch.ones(2, 30, dtype=torch.bool)})
    sum(losses.values()).backward()
    assert x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="unknown expert 'pitch'"):
        heads.losses(x, {"pitch": torch.randn(2, 1)})
    with pytest.raises(ValueError, match="expected target width 3"):
        heads.losses(x, {"v": torch.randn(2, 4)})


def test_thinking_block_shapes_and_mask():
    block = ThinkingBlock(audio_dim=12, out_dim=20, num_queries=6, dim=16, layers=2, heads=4).eval()
    a = torch.randn(3, 9, 12)  # (B, T, Da)
    mask = torch.ones(3, 9, dtype=torch.bool)
    mask[1, 4:] = False
    y = block(a, mask)
    assert y.shape == (3, 6, 20)
    # frames masked out in window 1 do not matter; the same frames do matter where unmasked
    a2 = a.clone()
    a2[:, 4:] += 10.0
    y2 = block(a2, mask)
    assert torch.allclose(y[1], y2[1], atol=1e-5)
    assert not torch.allclose(y[0], y2[0], atol=1e-3)
    with pytest.raises(ValueError, match="multiple of heads"):
        ThinkingBlock(audio_dim=4, out_dim=4, num_queries=2, dim=10, layers=1, heads=4)


def test_thinking_summary_reads_second_moments_and_respects_the_mask():
    """With the statistics summary the block tells apart windows that differ only in their spread over time
    (same mean), and still ignores masked frames."""
    torch.manual_seed(0)
    block = ThinkingBlock(audio_dim=12, out_dim=20, num_queries=4, dim=16, layers=1, heads=4, summary=True).eval()
    base = torch.randn(1, 1, 12)
    flat = base.expand(1, 8, 12).clone()  # (1, 8, 12): constant frames
    sign = torch.tensor([1.0, -1.0] * 4)[None, :, None]
    spread = flat + 2.0 * sign  # same mean over time, larger variance
    mask = torch.ones(1, 8, dtype=torch.bool)
    with torch.no_grad():
        assert not torch.allclose(block(flat, mask), block(spread, mask), atol=1e-3)
        m = mask.clone()
        m[0, 6:] = False
        noisy = spread.clone()
        noisy[0, 6:] += 50.0
        assert torch.allclose(block(spread, m), block(noisy, m), atol=1e-5)


def test_pool_positions_averages_valid_positions_in_groups():
    from edge_coat.model.sequence import pool_positions

    x = torch.arange(14, dtype=torch.float32).reshape(1, 7, 2).repeat(2, 1, 1)  # (2, 7, 2)
    mask = torch.ones(2, 7, dtype=torch.bool)
    mask[1, 4:] = False
    y, ym = pool_positions(x, mask, 3)
    assert y.shape == (2, 3, 2) and ym.tolist() == [[True, True, True], [True, True, False]]
    assert y[0, :, 0].tolist() == [2.0, 8.0, 12.0]  # (0+2+4)/3, (6+8+10)/3, 12 alone
    assert y[1, 1, 0].item() == 6.0  # only position 3 of the second group is valid
    same, same_mask = pool_positions(x, mask, 1)
    assert same is x and same_mask is mask
