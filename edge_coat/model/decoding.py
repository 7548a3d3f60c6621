"""Prefill, cached greedy decoding and label scoring over a shared prefix.

Hand-written rather than ``model.generate``: the three families need the same explicit positions
(left padding, Qwen2.5-Omni's mrope built from them) and our prefix contains embeddings that have
no token ids, which ``generate`` would use to rebuild Omni's rope indices. The loop is short: one
decoder call with the whole prefix, then one call per further token on the KV cache.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from edge_coat.model.adapters import FamilyAdapter
from edge_coat.model.sequence import Assembled


@dataclass(frozen=True)
class Prefill:
    """logits_last: (B, V) next-token logits after the prefix; hidden_states: tuple of (B, L, D) per layer
    (index 0 = embeddings) or None; cache: the decoder's KV cache over the prefix."""

    logits_last: torch.Tensor
    hidden_states: tuple | None
    cache: object


def _require_left(asm: Assembled) -> None:
    if not bool(asm.attention_mask[:, -1].all()):
        raise ValueError("decoding needs a left-padded prefix (every row's last position must be real)")


def prefill(adapter: FamilyAdapter, asm: Assembled, output_hidden_states: bool = False) -> Prefill:
    """One decoder call over the whole left-padded prefix."""
    _require_left(asm)
    out = adapter.decode(
        asm.embeds, asm.attention_mask, asm.positions, use_cache=True, output_hidden_states=output_hidden_states
    )
    logits = adapter.lm_head(out.last_hidden_state[:, -1])  # (B, V)
    return Prefill(logits_last=logits.float(), hidden_states=out.hidden_states, cache=out.cache)


def score_candidates(
    adapter: FamilyAdapter, asm: Assembled, candidates: list[list[int]], pre: Prefill | None = None
) -> tuple[torch.Tensor, Prefill]:
    """Summed log-probability of each candidate token sequence after each row's prefix.

    One prefill (unless ``pre`` is given), then ONE batched decoder call over B*C candidate rows that
    reuses the prefix KV cache expanded C times. Returns (logprobs (B, C), the prefill).
    """
    ids, valid = _candidate_ids(candidates, asm.embeds.device)  # (C, N), right-padded with id 0
    pre = pre or prefill(adapter, asm)
    b, c = asm.embeds.shape[0], len(candidates)
    device = asm.embeds.device
    n = ids.shape[1]
    first = F.log_softmax(pre.logits_last, -1)[:, ids[:, 0]]  # (B, C)
    if n == 1:
        return first, pre
    cache = pre.cache
    cache.batch_repeat_interleave(c)  # prefix cache (B, ...) -> (B*C, ...), row b*C+j = (window b, cand j)
    tok = ids[:, :-1].repeat(b, 1)  # (B*C, N-1) inputs: candidate tokens except the last
    embeds = adapter.embed_tokens(tok)  # (B*C, N-1, D)
    attn = torch.cat(
        [asm.attention_mask.repeat_interleave(c, 0), valid[:, :-1].long().repeat(b, 1)], 1
    )  # (B*C, L+N-1)
    start = asm.lengths.repeat_interleave(c)  # (B*C,) first candidate position = real prefix length
    pos = start[:, None] + torch.arange(n - 1, device=device)[None]  # (B*C, N-1)
    out = adapter.decode(embeds, attn, pos, cache=cache, use_cache=True)
    logp = F.log_softmax(adapter.lm_head(out.last_hidden_state).float(), -1)  # (B*C, N-1, V)
    target = ids[:, 1:].repeat(b, 1)  # (B*C, N-1)
    tok_lp = torch.gather(logp, 2, target[..., None])[..., 0]  # (B*C, N-1)
    rest = (tok_lp * valid[:, 1:].repeat(b, 1)).sum(-1).view(b, c)  # (B, C)
    return first + rest, pre


def _candidate_ids(candidates: list[list[int]], device) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids (C, N) right-padded with id 0, valid (C, N) bool) of the candidate token lists."""
    if not candidates or any(len(c) == 0 for c in candidates):
        raise ValueError(f"expected non-empty candidate token lists, got lengths {[len(c) for c in candidates]}")
    n = max(len(x) for x in candidates)
    ids = torch.zeros(len(candidates), n, dtype=torch.long, device=device)  # (C, N)
    valid = torch.zeros(len(candidates), n, dtype=torch.bool, device=device)  # (C, N)
    for j, x in enumerate(candidates):
        ids[j, : len(x)] = torch.tensor(x, device=device)
        valid[j, : len(x)] = True
    return ids, valid


def tree_mask(attention_mask: torch.Tensor, num_candidates: int, steps: int) -> torch.Tensor:
    """Attention mask for a left-padded prefix followed by ``num_candidates`` branches of ``steps`` tokens.

    attention_mask (B, L) 1 = real prefix token. Returns (B, 1, L+M, L+M) bool, True = attend, M = C * steps,
    branch j's token k at column L + j * steps + k. Prefix: causal over its real tokens. Branch tokens:
    the prefix's real tokens plus their own branch's tokens up to themselves, never another branch.
    Padded prefix rows attend to themselves only (no NaN; their outputs are never read)."""
    b, length = attention_mask.shape
    device = attention_mask.device
    m = num_candidates * steps
    real = attention_mask.bool()  # (B, L)
    total = length + m
    mask = torch.zeros(b, total, total, dtype=torch.bool, device=device)  # (B, L+M, L+M)
    mask[:, :length, :length] = torch.tril(torch.ones(length, length, dtype=torch.bool, device=device))[None] & real[:, None, :]
    mask[:, :length, :length] |= torch.eye(length, dtype=torch.bool, device=device)[None]
    mask[:, length:, :length] = real[:, None, :]
    branch = torch.arange(num_candidates, device=device).repeat_interleave(steps)  # (M,)
    step = torch.arange(steps, device=device).repeat(num_candidates)  # (M,)
    mask[:, length:, length:] = ((branch[:, None] == branch[None, :]) & (step[None, :] <= step[:, None]))[None]
    return mask[:, None]  # (B, 1, L+M, L+M)


def score_fused(
    adapter: FamilyAdapter, asm: Assembled, candidates: list[list[int]], output_hidden_states: bool = False
) -> tuple[torch.Tensor, tuple | None]:
    """``prefill`` + ``score_candidates`` in ONE decoder call without a KV cache.

    The C candidates' first N-1 tokens are appended after each row's prefix as C branches under a
    ``tree_mask`` (each branch sees the prefix and itself), with positions continuing from the row's
    real length. Same log-likelihoods as the cached path, but no second decoder call, no cache to
    build, copy C times and re-mask: at this model size those are Python/HF overhead, not FLOPs.
    Returns (logprobs (B, C), hidden states per layer (B, L+M, D) or None); the prefix's states are
    the prefill's (causal attention: the branches come after them).
    """
    _require_left(asm)
    b, length, _ = asm.embeds.shape
    device = asm.embeds.device
    ids, valid = _candidate_ids(candidates, device)  # (C, N)
    c, n = ids.shape
    steps = n - 1
    embeds, positions = asm.embeds, asm.positions
    mask = tree_mask(asm.attention_mask, c, steps)  # (B, 1, L+M, L+M)
    if steps:
        branch = adapter.embed_tokens(ids[:, :-1].reshape(1, -1)).to(embeds.dtype)  # (1, M, D)
        embeds = torch.cat([embeds, branch.expand(b, -1, -1)], 1)  # (B, L+M, D)
        step = torch.arange(steps, device=device).repeat(c)  # (M,)
        positions = torch.cat([positions, asm.lengths[:, None] + step[None]], 1)  # (B, L+M)
    out = adapter.decode(embeds, mask, positions, use_cache=False, output_hidden_states=output_hidden_states)
    h = out.last_hidden_state  # (B, L+M, D)
    logp = F.log_softmax(adapter.lm_head(h[:, length - 1:]).float(), -1)  # (B, 1+M, V)
    lp = logp[:, 0, ids[:, 0]]  # (B, C) first tokens, after the prefix
    if steps:
        target = ids[:, 1:].reshape(1, -1, 1).expand(b, -1, -1)  # (B, M, 1)
        tok_lp = torch.gather(logp[:, 1:], 2, target)[..., 0].view(b, c, steps)  # (B, C, N-1)
        lp = lp + (tok_lp * valid[None, :, 1:]).sum(-1)  # (B, C)
    return lp, out.hidden_states


def greedy_generate(
    adapter: FamilyAdapter,
    asm: Assembled,
    max_new_tokens: int,
    eos_token_id: int | None = None,
    stop_at_eos: bool = True,
    pad_token_id: int = 0,
) -> list[list[int]]:
    """Greedy decoding: one prefill, then one single-position call per further token.

    Returns the new token ids per row, cut after the first EOS (EOS excluded).
    """
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    pre = prefill(adapter, asm)
    cache, attn = pre.cache, asm.attention_mask
    b = attn.shape[0]
    nxt = pre.logits_last.argmax(-1)  # (B,)
    out = [nxt]
    done = torch.zeros(b, dtype=torch.bool, device=nxt.device)
    for step in range(1, max_new_tokens):
        if eos_token_id is not None:
            done |= nxt == eos_token_id
            if stop_at_eos and bool(done.all()):
                break
        inp = torch.where(done, torch.full_like(nxt, pad_token_id), nxt)
        attn = torch.cat([attn, torch.ones(b, 1, dtype=attn.dtype, device=attn.device)], 1)  # (B, L+step)
        pos = (asm.lengths + step - 1)[:, None]  # (B, 1)
        o = adapter.decode(adapter.embed_tokens(inp[:, None]), attn, pos, cache=cache, use_cache=True)
        cache = o.cache
        nxt = adapter.lm_head(o.last_hidden_state[:, -1]).argmax(-1)  # (B,)
        out.append(nxt)
    ids = torch.stack(out, 1).tolist()  # (B, n)
    result = []
    for row in ids:
        if eos_token_id is not None and eos_token_id in row:
            row = row[: row.index(eos_token_id)]
        result.append(row)
    return result
