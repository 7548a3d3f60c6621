"""Sequence assembly for a batch of windows of different lengths.

Row i is ``[prefix][audio T_i][think_open][K thinking][think_close][prompt_i][answer_i]`` (the thinking
part is absent when thinking is off; the answer only in training). Rows are padded on one side and
get explicit positions ``0..n_i-1`` on their real tokens, so left and right padding give the same
results, and a window gives the same results alone or in any batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

IGNORE = -100


@dataclass(frozen=True)
class Assembled:
    """A padded batch ready for the decoder.

    embeds: (B, L, D); attention_mask: (B, L) long, 1 = real; positions: (B, L) long (0 at padding).
    audio_index: (B, T) long, sequence positions of the audio frames; audio_mask (B, T) bool.
    think_index: (B, K) long, positions of the thinking vectors, or None when thinking is off.
    labels: (B, L) long, the answer token at its own position and IGNORE elsewhere, or None.
    lengths: (B,) long, real tokens per row.
    """

    embeds: torch.Tensor
    attention_mask: torch.Tensor
    positions: torch.Tensor
    audio_index: torch.Tensor
    audio_mask: torch.Tensor
    think_index: torch.Tensor | None
    labels: torch.Tensor | None
    lengths: torch.Tensor


def assemble(
    embed_tokens,
    prefix_ids: list[int],
    audio: torch.Tensor,
    audio_mask: torch.Tensor,
    prompt_ids: list[list[int]],
    thinking: torch.Tensor | None = None,
    think_open: torch.Tensor | None = None,
    think_close: torch.Tensor | None = None,
    answer_ids: list[list[int]] | None = None,
    padding_side: str = "left",
) -> Assembled:
    """Build the batch. audio (B, T, D) with audio_mask (B, T) bool; thinking (B, K, D) or None.

    ``embed_tokens`` maps a (1, n) id tensor to (1, n, D) embeddings.
    """
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    b, t_max, d = audio.shape
    if len(prompt_ids) != b:
        raise ValueError(f"expected {b} prompts (one per window), got {len(prompt_ids)}")
    if answer_ids is not None and len(answer_ids) != b:
        raise ValueError(f"expected {b} answers (one per window), got {len(answer_ids)}")
    device, dtype = audio.device, audio.dtype

    def emb(ids: list[int]) -> torch.Tensor:
        if not ids:
            return audio.new_zeros(0, d)
        return embed_tokens(torch.tensor([ids], device=device))[0].to(dtype)  # (n, D)

    prefix = emb(prefix_ids)  # (P, D)
    rows, audio_pos, think_pos, label_rows = [], [], [], []
    for i in range(b):
        parts = [prefix]
        start = len(prefix_ids)
        a = audio[i][audio_mask[i]]  # (T_i, D), padded frames dropped
        audio_pos.append(torch.arange(start, start + a.shape[0]))
        parts.append(a)
        start += a.shape[0]
        if thinking is not None:
            k = thinking.shape[1]
            parts += [think_open[None].to(dtype), thinking[i], think_close[None].to(dtype)]
            think_pos.append(torch.arange(start + 1, start + 1 + k))
            start += k + 2
        parts.append(emb(prompt_ids[i]))
        start += len(prompt_ids[i])
        labels = None
        if answer_ids is not None:
            parts.append(emb(answer_ids[i]))
            labels = torch.full((start + len(answer_ids[i]),), IGNORE, dtype=torch.long)
            labels[start:] = torch.tensor(answer_ids[i], dtype=torch.long)
            start += len(answer_ids[i])
        rows.append(torch.cat(parts, 0))  # (n_i, D)
        label_rows.append(labels)

    lengths = torch.tensor([r.shape[0] for r in rows])
    L = int(lengths.max())
    attn = torch.zeros(b, L, dtype=torch.long)
    pos = torch.zeros(b, L, dtype=torch.long)
    labels_out = torch.full((b, L), IGNORE, dtype=torch.long) if answer_ids is not None else None
    offsets = (L - lengths) if padding_side == "left" else torch.zeros_like(lengths)
    rows_padded = []
    for i, r in enumerate(rows):
        o, n = int(offsets[i]), r.shape[0]
        # torch.nn.functional.pad keeps the autograd graph into the thinking vectors.
        rows_padded.append(torch.nn.functional.pad(r, (0, 0, o, L - o - n)))
        attn[i, o:o + n] = 1
        pos[i, o:o + n] = torch.arange(n)
        if labels_out is not None:
            labels_out[i, o:o + n] = label_rows[i]
    embeds = torch.stack(rows_padded)  # (B, L, D)
    audio_index = torch.zeros(b, t_max, dtype=torch.long)
    a_mask = torch.zeros(b, t_max, dtype=torch.bool)
    for i, p in enumerate(audio_pos):
        audio_index[i, : len(p)] = p + offsets[i]
        a_mask[i, : len(p)] = True
    think_index = torch.stack([p + offsets[i] for i, p in enumerate(think_pos)]) if think_pos else None
    return Assembled(
        embeds=embeds,
        attention_mask=attn.to(device),
        positions=pos.to(device),
        audio_index=audio_index.to(device),
        audio_mask=a_mask.to(device),
        think_index=think_index.to(device) if think_index is not None else None,
        labels=labels_out.to(device) if labels_out is not None else None,
        lengths=lengths.to(device),
    )


def gather_positions(hidden: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """hidden (B, L, D), index (B, N) -> (B, N, D)."""
    return torch.gather(hidden, 1, index[..., None].expand(-1, -1, hidden.shape[-1]))


def pool_positions(x: torch.Tensor, mask: torch.Tensor, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Average consecutive groups of ``stride`` positions: x (B, T, D), mask (B, T) bool ->
    (B, ceil(T / stride), D), (B, ceil(T / stride)) bool. A group averages its valid positions and is valid
    when it has one. Groups start at position 0, so with valid positions first (as ``encode`` and the
    encoder cache lay out a window) a window pools alike whatever padding follows it."""
    if stride == 1:
        return x, mask
    b, t, d = x.shape
    n = -(-t // stride)
    pad = n * stride - t
    w = torch.nn.functional.pad(mask.to(x.dtype), (0, pad)).reshape(b, n, stride, 1)  # (B, n, s, 1)
    xs = torch.nn.functional.pad(x, (0, 0, 0, pad)).reshape(b, n, stride, d)  # (B, n, s, D)
    count = w.sum(2)  # (B, n, 1)
    return (xs * w).sum(2) / count.clamp_min(1.0), count[..., 0] > 0
