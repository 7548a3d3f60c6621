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


class ThinkingBlock(nn.Module):
    """``forward(audio_embeds (B, T, Da), audio_mask (B, T) bool) -> (B, K, D)``.

    ``audio_mask`` is True at valid audio frames; every window must have at least one.
    """

    def __init__(self, audio_dim: int, out_dim: int, num_queries: int, dim: int, layers: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"thinking dim {dim} must be a multiple of heads {heads}")
        self.num_queries = num_queries
        self.queries = nn.Parameter(torch.randn(num_queries, dim) * 0.02)  # (K, d)
        self.in_proj = nn.Linear(audio_dim, dim)
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
        for layer in self.layers:
            x = layer(x, m, audio_mask)
        return self.out_proj(self.out_norm(x))  # (B, K, D)
