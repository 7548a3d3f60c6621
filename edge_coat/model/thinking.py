"""The continuous thinking block: K learnable queries that read the audio in one pass.

Written with ``torch.nn.functional.scaled_dot_product_attention`` and plain reshapes so that
``torch.onnx.export(..., dynamo=True)`` keeps batch and time dynamic (``nn.MultiheadAttention``
bakes the traced length into a Reshape; see FACTS.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _Attention(nn.Module):
    """Multi-head attention from queries x to memory m, with an optional key padding mask."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, m: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        b, k, d = x.shape  # x (B, K, d); m (B, T, d); key_mask (B, T) bool, True = attend
        h = self.heads
        q = self.q(x).reshape(b, k, h, d // h).transpose(1, 2)  # (B, h, K, d/h)
        kv = self.kv(m).reshape(b, m.shape[1], 2, h, d // h).permute(2, 0, 3, 1, 4)  # (2, B, h, T, d/h)
        bias = None
        if key_mask is not None:
            bias = key_mask[:, None, None, :]  # (B, 1, 1, T) bool
        y = F.scaled_dot_product_attention(q, kv[0], kv[1], attn_mask=bias)  # (B, h, K, d/h)
        return self.out(y.transpose(1, 2).reshape(b, k, d))  # (B, K, d)


class _ThinkingLayer(nn.Module):
    """Pre-norm: cross-attention to the audio, self-attention among the queries, MLP."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm_x = nn.LayerNorm(dim)
        self.norm_m = nn.LayerNorm(dim)
        self.cross = _Attention(dim, heads)
        self.norm_s = nn.LayerNorm(dim)
        self.self_attn = _Attention(dim, heads)
        self.norm_f = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor, m: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.cross(self.norm_x(x), self.norm_m(m), mask)  # (B, K, d)
        s = self.norm_s(x)
        x = x + self.self_attn(s, s)  # (B, K, d)
        return x + self.mlp(self.norm_f(x))  # (B, K, d)


class _Summary(nn.Module):
    """Statistics pooling of the window: a per-frame MLP (``frame_mlp``; without it the statistics are those
    of the block's linear input projection), then the masked mean and standard deviation over time,
    projected to one summary vector. Attention alone takes weighted means of linear maps of the
    frames, so it cannot form second moments; the mean+std of a pretrained tower's frames is what a
    linear probe reads best (x-vector-style statistics pooling)."""

    def __init__(self, dim: int, frame_mlp: bool = True):
        super().__init__()
        if frame_mlp:
            self.norm = nn.LayerNorm(dim)
            self.frame = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        else:  # statistics of the linear input projection: what a linear probe on the tower reads
            self.norm = self.frame = None
        self.out = nn.Sequential(nn.LayerNorm(2 * dim), nn.Linear(2 * dim, dim))

    def forward(self, m: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """m (B, T, d), mask (B, T) bool -> (frames m + MLP(m) (B, T, d), summary (B, d))."""
        if self.frame is not None:
            m = m + self.frame(self.norm(m))  # (B, T, d)
        w = mask.to(m.dtype)[..., None]  # (B, T, 1)
        count = w.sum(1).clamp_min(1.0)  # (B, 1)
        mean = (m * w).sum(1) / count  # (B, d)
        var = (((m - mean[:, None]) ** 2) * w).sum(1) / count  # (B, d)
        std = torch.sqrt(var + 1e-5)
        return m, self.out(torch.cat([mean, std], -1))  # (B, T, d), (B, d)


class ThinkingBlock(nn.Module):
    """``forward(audio_embeds (B, T, Da), audio_mask (B, T) bool) -> (B, K, D)``.

    ``audio_mask`` is True at valid audio frames; every window must have at least one. ``summary``: the
    queries start from, and the memory also holds, a statistics-pooled summary of the window (``_Summary``).
    """

    def __init__(self, audio_dim: int, out_dim: int, num_queries: int, dim: int, layers: int, heads: int,
                 summary: bool = False, summary_frame_mlp: bool = True):
        super().__init__()
        if dim % heads:
            raise ValueError(f"thinking dim {dim} must be a multiple of heads {heads}")
        self.num_queries = num_queries
        self.queries = nn.Parameter(torch.randn(num_queries, dim) * 0.02)  # (K, d)
        self.in_proj = nn.Linear(audio_dim, dim)
        self.summary = _Summary(dim, frame_mlp=summary_frame_mlp) if summary else None
        self.layers = nn.ModuleList([_ThinkingLayer(dim, heads) for _ in range(layers)])
        self.out_norm = nn.LayerNorm(dim)
        self.out_proj = nn.Linear(dim, out_dim)

    @property
    def dtype(self) -> torch.dtype:
        """The dtype the block computes in (what callers cast the audio embeddings to)."""
        return self.queries.dtype

    def forward(self, audio_embeds: torch.Tensor, audio_mask: torch.Tensor) -> torch.Tensor:
        m = self.in_proj(audio_embeds)  # (B, T, d)
        x = self.queries[None].expand(audio_embeds.shape[0], -1, -1)  # (B, K, d)
        if self.summary is not None:
            m, s = self.summary(m, audio_mask)  # (B, T, d), (B, d)
            x = x + s[:, None]  # (B, K, d)
            m = torch.cat([s[:, None], m], 1)  # (B, 1 + T, d): the summary is one more memory slot
            audio_mask = torch.cat([torch.ones_like(audio_mask[:, :1]), audio_mask], 1)
        for layer in self.layers:
            x = layer(x, m, audio_mask)
        return self.out_proj(self.out_norm(x))  # (B, K, D)
