"""The continuous thinking block: K learnable queries that read the audio in one pass.

Written with ``torch.nn.functional.scaled_dot_product_attention`` and plain reshapes so that
``torch.onnx.export(..., dynamo=True)`` keeps batch and time dynamic (``nn.MultiheadAttention``
bakes the traced length into a Reshape; see FACTS.md).
"""

from __future__ import annotations

import math

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
        return self.attend(x, self.kv(m), key_mask)  # x (B, K, d); m (B, T, d) -> (B, K, d)

    def attend(self, x: torch.Tensor, kv: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``forward`` with the memory's keys and values already projected: kv = ``self.kv(m)`` (B, T, 2d),
        a function of each memory frame alone (what ``ThinkingBlock.frame_features`` caches). key_mask: (B, T)
        bool (True = attend) or a float additive bias per query (B, K, T) (``slot_time_bias``)."""
        b, k, d = x.shape  # x (B, K, d); kv (B, T, 2d); key_mask (B, T) bool, True = attend
        h = self.heads
        q = self.q(x).reshape(b, k, h, d // h).transpose(1, 2)  # (B, h, K, d/h)
        kv = kv.reshape(b, kv.shape[1], 2, h, d // h).permute(2, 0, 3, 1, 4)  # (2, B, h, T, d/h)
        if key_mask is None or key_mask.dtype == torch.bool:
            bias = None if key_mask is None else key_mask[:, None, None, :]  # (B, 1, 1, T) bool
            y = F.scaled_dot_product_attention(q, kv[0], kv[1], attn_mask=bias)  # (B, h, K, d/h)
        else:  # a float bias per query (B, K, T), -inf where masked; written out: the ONNX exporter's
            # decomposition of SDPA with a float mask builds a layout its own reshape cannot view (torch 2.13)
            scores = q @ kv[0].transpose(-1, -2) / math.sqrt(d // h) + key_mask[:, None].to(q.dtype)  # (B, h, K, T)
            y = torch.softmax(scores, -1) @ kv[1]  # (B, h, K, d/h)
        return self.out(y.transpose(1, 2).reshape(b, k, d))  # (B, K, d)


def slot_time_bias(audio_mask: torch.Tensor, num_queries: int, sharpness: torch.Tensor) -> torch.Tensor:
    """Where in the window each thinking slot listens: (B, T) bool valid-frame mask (valid frames first) ->
    (B, K, T) float additive cross-attention bias, ``-sharpness * d**2`` with d the distance, in slot widths,
    between a frame's relative time in the window and the centre of slot k's stretch (the window cut into K
    equal stretches, as the experts' targets are pooled onto the slots: ``edge_coat.experts.base.pool_segments``),
    and -inf at padded frames. Without it the K learned queries start from the same summary vector and read the
    same frames, and the block's K outputs come out nearly identical (docs/coat-tiny-slot-time)."""
    b, t = audio_mask.shape
    n = audio_mask.sum(1).clamp_min(1).to(sharpness.dtype)  # (B,)
    rel = (torch.arange(t, device=audio_mask.device, dtype=sharpness.dtype)[None, :] + 0.5) / n[:, None]  # (B, T)
    centre = (torch.arange(num_queries, device=audio_mask.device, dtype=sharpness.dtype) + 0.5) / num_queries
    d = (rel[:, None, :] - centre[None, :, None]) * num_queries  # (B, K, T)
    bias = -sharpness * d * d
    return bias.masked_fill(~audio_mask[:, None, :], float("-inf"))


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
        return self.forward_kv(x, self.memory_kv(m), mask)  # (B, K, d)

    def memory_kv(self, m: torch.Tensor) -> torch.Tensor:
        """The cross-attention keys and values of memory frames m (B, T, d) -> (B, T, 2d): per frame
        (LayerNorm, then a linear map), so a frame's are the same in every window that holds it."""
        return self.cross.kv(self.norm_m(m))

    def forward_kv(self, x: torch.Tensor, kv: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``forward`` from the memory's ``memory_kv`` (B, T, 2d) instead of the memory itself."""
        x = x + self.cross.attend(self.norm_x(x), kv, mask)  # (B, K, d)
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
        m = self.frames(m)  # (B, T, d)
        return m, self.pool(m, mask)

    def frames(self, m: torch.Tensor) -> torch.Tensor:
        """The per-frame part: m (B, T, d) -> m + MLP(norm(m)) (B, T, d), or m itself without the MLP."""
        if self.frame is None:
            return m
        return m + self.frame(self.norm(m))  # (B, T, d)

    def pool(self, m: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The per-window part: ``frames`` output (B, T, d), mask (B, T) bool -> summary (B, d)."""
        w = mask.to(m.dtype)[..., None]  # (B, T, 1)
        count = w.sum(1).clamp_min(1.0)  # (B, 1)
        mean = (m * w).sum(1) / count  # (B, d)
        var = (((m - mean[:, None]) ** 2) * w).sum(1) / count  # (B, d)
        std = torch.sqrt(var + 1e-5)
        return self.out(torch.cat([mean, std], -1))  # (B, d)


class ThinkingBlock(nn.Module):
    """``forward(audio_embeds (B, T, Da), audio_mask (B, T) bool) -> (B, K, D)``.

    ``audio_mask`` is True at valid audio frames; every window must have at least one. ``summary``: the
    queries start from, and the memory also holds, a statistics-pooled summary of the window (``_Summary``).

    The same computation in two parts, for a server that keeps what it computed for a stream's earlier
    windows: ``frame_features(audio_embeds) -> (B, T, F)`` is everything computed from one audio frame alone
    (``in_proj``, the summary's per-frame MLP, each layer's LayerNorm + key/value projection of the memory
    frames: almost all the FLOPs), so a frame's are the same in every window that holds it;
    ``from_frames(frames, audio_mask) -> (B, K, D)`` is the rest (masked mean/std -> summary vector, the
    summary slot's keys/values, the K queries' layers). ``from_frames(frame_features(x), m)`` equals
    ``forward(x, m)`` up to float noise (tests/model/test_thinking_split.py). Training runs ``forward``.
    """

    #: ``frame_features`` / ``from_frames`` are available (as on ``OnnxThinkingBlock`` with its part graphs)
    can_split = True

    def __init__(self, audio_dim: int, out_dim: int, num_queries: int, dim: int, layers: int, heads: int,
                 summary: bool = False, summary_frame_mlp: bool = True, slot_time: bool = False):
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
        #: slot k's cross-attention leans to the k-th of K equal stretches of the window (``slot_time_bias``);
        #: the sharpness is learned (log scale, starting at 2: a neighbouring stretch's centre weighs e^-2)
        self.slot_time_log_sharpness = nn.Parameter(torch.tensor(math.log(2.0))) if slot_time else None

    def _memory_mask(self, audio_mask: torch.Tensor, summary: bool) -> torch.Tensor:
        """The cross-attention mask over the memory: (B, [1 +] T) bool, or with slot time a (B, K, [1 +] T) bias;
        the summary slot (first, when there is one) is open to every query."""
        if self.slot_time_log_sharpness is None:
            if summary:
                return torch.cat([torch.ones_like(audio_mask[:, :1]), audio_mask], 1)  # (B, 1 + T)
            return audio_mask
        bias = slot_time_bias(audio_mask, self.num_queries, self.slot_time_log_sharpness.float().exp())  # (B, K, T)
        if summary:
            bias = torch.cat([torch.zeros_like(bias[..., :1]), bias], -1)  # (B, K, 1 + T)
        return bias

    @property
    def dtype(self) -> torch.dtype:
        """The dtype the block computes in (what callers cast the audio embeddings to)."""
        return self.queries.dtype

    @property
    def frame_dim(self) -> int:
        """F, the width of ``frame_features``: [summary frames (d, with a summary)] + [K | V (2d)] per layer."""
        d = self.in_proj.out_features
        return (d if self.summary is not None else 0) + 2 * d * len(self.layers)

    def frame_features(self, audio_embeds: torch.Tensor) -> torch.Tensor:
        """The per-frame part: audio_embeds (B, T, Da) -> (B, T, F), F = ``frame_dim``; each output frame
        depends on its input frame only."""
        m = self.in_proj(audio_embeds)  # (B, T, d)
        parts = []
        if self.summary is not None:
            m = self.summary.frames(m)  # (B, T, d)
            parts.append(m)
        parts.extend(layer.memory_kv(m) for layer in self.layers)  # L x (B, T, 2d)
        return torch.cat(parts, -1)  # (B, T, F)

    def from_frames(self, frames: torch.Tensor, audio_mask: torch.Tensor) -> torch.Tensor:
        """The per-window part: ``frame_features`` output (B, T, F), audio_mask (B, T) bool -> (B, K, D)."""
        if frames.ndim != 3 or frames.shape[2] != self.frame_dim:
            raise ValueError(f"frames: expected shape (B, T, {self.frame_dim}), got {tuple(frames.shape)}")
        d = self.in_proj.out_features
        x = self.queries[None].expand(frames.shape[0], -1, -1)  # (B, K, d)
        off, s = 0, None
        memory_mask = self._memory_mask(audio_mask, self.summary is not None)
        if self.summary is not None:
            s = self.summary.pool(frames[..., :d], audio_mask)  # (B, d)
            x = x + s[:, None]  # (B, K, d)
            off = d
        for i, layer in enumerate(self.layers):
            kv = frames[..., off + 2 * d * i: off + 2 * d * (i + 1)]  # (B, T, 2d)
            if s is not None:  # the summary slot's keys/values first, as forward's memory holds it
                kv = torch.cat([layer.memory_kv(s[:, None]), kv], 1)  # (B, 1 + T, 2d)
            x = layer.forward_kv(x, kv, memory_mask)
        return self.out_proj(self.out_norm(x))  # (B, K, D)

    def forward(self, audio_embeds: torch.Tensor, audio_mask: torch.Tensor) -> torch.Tensor:
        m = self.in_proj(audio_embeds)  # (B, T, d)
        x = self.queries[None].expand(audio_embeds.shape[0], -1, -1)  # (B, K, d)
        memory_mask = self._memory_mask(audio_mask, self.summary is not None)
        if self.summary is not None:
            m, s = self.summary(m, audio_mask)  # (B, T, d), (B, d)
            x = x + s[:, None]  # (B, K, d)
            m = torch.cat([s[:, None], m], 1)  # (B, 1 + T, d): the summary is one more memory slot
        for layer in self.layers:
            x = layer(x, m, memory_mask)
        return self.out_proj(self.out_norm(x))  # (B, K, D)
