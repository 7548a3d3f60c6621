"""The thinking block in two parts (issue 14): ``from_frames(frame_features(x), mask)`` is ``forward(x, mask)``,
each frame's features depend on that frame alone (so a chunk's can be kept and reused in every window that
holds it), and training's ``forward`` is untouched."""

from __future__ import annotations

import pytest
import torch

from edge_coat.model.thinking import ThinkingBlock


def block(summary: bool, layers: int = 2, frame_mlp: bool = True, slot_time: bool = False) -> ThinkingBlock:
    torch.manual_seed(3)
    b = ThinkingBlock(audio_dim=48, out_dim=40, num_queries=8, dim=32, layers=layers, heads=4, summary=summary,
                      summary_frame_mlp=frame_mlp, slot_time=slot_time)
    with torch.no_grad():  # the queries start near zero; spread them so every part matters
        b.queries.normal_()
    return b.eval()


def ragged(b: int, t: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(b * 100 + t)
    x = torch.randn(b, t, 48, generator=gen)  # (B, T, Da)
    lengths = torch.tensor([t] + [max(1, t // (i + 2)) for i in range(b - 1)])
    return x, torch.arange(t)[None, :] < lengths[:, None]  # (B, T) bool


@pytest.mark.parametrize("summary,frame_mlp,slot_time", [(True, True, False), (True, False, False),
                                                        (False, True, False), (True, False, True),
                                                        (False, True, True)])
@pytest.mark.parametrize("layers", [1, 2])
def test_parts_compose_to_forward(summary, frame_mlp, slot_time, layers):
    blk = block(summary, layers, frame_mlp, slot_time)
    assert blk.frame_dim == (32 if summary else 0) + layers * 2 * 32
    for b, t in ((1, 1), (3, 25), (4, 250)):
        x, m = ragged(b, t)
        with torch.no_grad():
            ref = blk(x, m)  # (B, K, D)
            frames = blk.frame_features(x)  # (B, T, F)
            got = blk.from_frames(frames, m)
        assert frames.shape == (b, t, blk.frame_dim) and got.shape == ref.shape == (b, 8, 40)
        torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("slot_time", [False, True])
def test_frame_features_are_per_frame_and_padding_never_reaches_a_window(slot_time):
    """A chunk's features computed alone equal its rows in a whole window's, and what padded positions hold
    does not change a window's output (the cache pads windows with zeros, not with encoder output)."""
    blk = block(True, slot_time=slot_time)
    x, m = ragged(3, 75)
    with torch.no_grad():
        whole = blk.frame_features(x)
        parts = torch.cat([blk.frame_features(x[:, k:k + 25]) for k in (0, 25, 50)], 1)
        torch.testing.assert_close(parts, whole, atol=1e-6, rtol=1e-6)
        noisy = whole.clone()
        noisy[~m] = 1e3
        torch.testing.assert_close(blk.from_frames(noisy, m), blk.from_frames(whole, m), atol=1e-5, rtol=1e-5)


def test_from_frames_says_what_it_expected():
    blk = block(True)
    with pytest.raises(ValueError, match=r"frames: expected shape \(B, T, 160\), got \(1, 4, 12\)"):
        blk.from_frames(torch.zeros(1, 4, 12), torch.ones(1, 4, dtype=torch.bool))


def test_training_gradients_flow_through_forward_only():
    """``forward`` is what training runs: its gradients reach every parameter, as before the split."""
    blk = block(True).train()
    x, m = ragged(2, 30)
    blk(x, m).square().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in blk.parameters())


def test_slot_time_bias_places_each_slot_on_its_stretch():
    """Slot k's bias is 0 at the centre of the k-th of K equal stretches of the valid frames, falls off with the
    squared distance in slot widths, and is -inf at padding; the window's length sets the stretches."""
    from edge_coat.model.thinking import slot_time_bias

    mask = torch.tensor([[True] * 8, [True] * 4 + [False] * 4])  # (2, 8): 8 and 4 valid frames
    bias = slot_time_bias(mask, 4, torch.tensor(2.0))  # (2, 4, 8)
    assert bias.shape == (2, 4, 8)
    # 8 frames, 4 slots: slot k's stretch is frames 2k, 2k+1, whose relative times sit a quarter slot off its centre
    torch.testing.assert_close(bias[0].argmax(-1), torch.tensor([0, 2, 4, 6]))
    torch.testing.assert_close(bias[0, 1, 2], torch.tensor(-2.0 * 0.25 ** 2))
    torch.testing.assert_close(bias[0, 0, 7], torch.tensor(-2.0 * 3.25 ** 2))
    # 4 valid frames: one frame per slot, exactly at its centre; the padded frames are closed to every slot
    torch.testing.assert_close(bias[1, :, :4].diagonal(), torch.zeros(4))
    assert torch.isinf(bias[1, :, 4:]).all() and (bias[1, :, 4:] < 0).all()


def test_slot_time_makes_the_slots_differ_where_the_audio_does():
    """With slot time, a change in the window's last stretch moves the last slot's output more than the first's;
    without it the slots read the same frames (the near-identical K outputs of docs/coat-tiny-slot-time)."""
    x, m = ragged(1, 64)
    y = x.clone()
    y[:, 56:] += 3.0  # only the last eighth of the window changes
    moved = {}
    for slot_time in (False, True):
        blk = block(False, slot_time=slot_time)
        with torch.no_grad():
            d = (blk(y, m) - blk(x, m)).norm(dim=-1)[0]  # (K,)
        moved[slot_time] = (float(d[-1]), float(d[0]))
    last, first = moved[True]
    assert last > 3 * first
    last0, first0 = moved[False]
    assert last0 < 2 * first0  # all slots attend everywhere: the change reaches them alike


def test_slot_time_sharpness_learns():
    blk = block(True, slot_time=True).train()
    x, m = ragged(2, 30)
    blk(x, m).square().mean().backward()
    assert blk.slot_time_log_sharpness.grad is not None and blk.slot_time_log_sharpness.grad.abs() > 0
    assert block(True).slot_time_log_sharpness is None  # off by default: older models load unchanged
