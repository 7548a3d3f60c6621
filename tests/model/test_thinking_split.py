"""The thinking block in two parts (issue 14): ``from_frames(frame_features(x), mask)`` is ``forward(x, mask)``,
each frame's features depend on that frame alone (so a chunk's can be kept and reused in every window that
holds it), and training's ``forward`` is untouched."""

from __future__ import annotations

import pytest
import torch

from edge_coat.model.thinking import ThinkingBlock


def block(summary: bool, layers: int = 2, frame_mlp: bool = True) -> ThinkingBlock:
    torch.manual_seed(3)
    b = ThinkingBlock(audio_dim=48, out_dim=40, num_queries=8, dim=32, layers=layers, heads=4, summary=summary,
                      summary_frame_mlp=frame_mlp)
    with torch.no_grad():  # the queries start near zero; spread them so every part matters
        b.queries.normal_()
    return b.eval()


def ragged(b: int, t: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(b * 100 + t)
    x = torch.randn(b, t, 48, generator=gen)  # (B, T, Da)
    lengths = torch.tensor([t] + [max(1, t // (i + 2)) for i in range(b - 1)])
    return x, torch.arange(t)[None, :] < lengths[:, None]  # (B, T) bool


@pytest.mark.parametrize("summary,frame_mlp", [(True, True), (True, False), (False, True)])
@pytest.mark.parametrize("layers", [1, 2])
def test_parts_compose_to_forward(summary, frame_mlp, layers):
    blk = block(summary, layers, frame_mlp)
    assert blk.frame_dim == (32 if summary else 0) + layers * 2 * 32
    for b, t in ((1, 1), (3, 25), (4, 250)):
        x, m = ragged(b, t)
        with torch.no_grad():
            ref = blk(x, m)  # (B, K, D)
            frames = blk.frame_features(x)  # (B, T, F)
            got = blk.from_frames(frames, m)
        assert frames.shape == (b, t, blk.frame_dim) and got.shape == ref.shape == (b, 8, 40)
        torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)


def test_frame_features_are_per_frame_and_padding_never_reaches_a_window():
    """A chunk's features computed alone equal its rows in a whole window's, and what padded positions hold
    does not change a window's output (the cache pads windows with zeros, not with encoder output)."""
    blk = block(True)
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
