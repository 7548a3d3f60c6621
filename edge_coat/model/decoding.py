"""Prefill, cached greedy decoding and label scoring over a shared prefix.

Hand-written rather than ``model.generate``: the three families need the same explicit positions
(left padding, Qwen2.5-Omni's mrope built from them) and our prefix contains embeddings that have
no token ids, which ``generate`` would use to rebuild Omni's rope indices. The loop is short: one
decoder call with the whole prefix, then one call per further token on the KV cache.
"""

from __future__ import annotations

import functools
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
    parents = [-1 if k == 0 else j * steps + k - 1 for j in range(num_candidates) for k in range(steps)]
    return forest_mask(attention_mask, parents)


def forest_mask(attention_mask: torch.Tensor, parents: list[int]) -> torch.Tensor:
    """Attention mask for a left-padded prefix followed by M tokens that form a forest hanging off it.

    attention_mask (B, L) 1 = real prefix token; ``parents[m]``: the extra token m's parent (an earlier
    extra token), or -1 for a token that follows the prefix directly. Returns (B, 1, L+M, L+M) bool,
    True = attend: the prefix causal over its real tokens (padded rows attend to themselves only, so no
    NaN; their outputs are never read), an extra token the real prefix, its ancestors and itself."""
    b, length = attention_mask.shape
    device = attention_mask.device
    m = len(parents)
    real = attention_mask.bool()  # (B, L)
    total = length + m
    mask = torch.zeros(b, total, total, dtype=torch.bool, device=device)  # (B, L+M, L+M)
    mask[:, :length, :length] = torch.tril(torch.ones(length, length, dtype=torch.bool, device=device))[None] & real[:, None, :]
    mask[:, :length, :length] |= torch.eye(length, dtype=torch.bool, device=device)[None]
    mask[:, length:, :length] = real[:, None, :]
    mask[:, length:, length:] = _ancestors(tuple(parents)).to(device)[None]
    return mask[:, None]  # (B, 1, L+M, L+M)


@functools.lru_cache(maxsize=64)
def _ancestors(parents: tuple[int, ...]) -> torch.Tensor:
    """(M, M) bool: [m, a] = a is m or one of its ancestors (parents come before their children)."""
    m = len(parents)
    anc = torch.zeros(m, m, dtype=torch.bool)
    for i, p in enumerate(parents):
        if not -1 <= p < i:
            raise ValueError(f"token {i}: its parent must be an earlier token or -1, got {p}")
        if p >= 0:
            anc[i] = anc[p]
        anc[i, i] = True
    return anc


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
    (lp,), hidden = score_prompts_fused(adapter, asm, [([], candidates)], output_hidden_states)
    return lp, hidden


def score_prompts_fused(
    adapter: FamilyAdapter, asm: Assembled, prompts: list[tuple[list[int], list[list[int]]]],
    output_hidden_states: bool = False,
) -> tuple[list[torch.Tensor], tuple | None]:
    """Several prompts, each with its candidates, after ONE shared prefix, in ONE decoder call.

    ``prompts``: (prompt ids, candidate id lists) per prompt. After each row's prefix come, per prompt,
    its tokens as a chain, and hanging off the chain's last token (off the prefix when the prompt is
    empty) one branch per candidate holding its first N-1 tokens (``forest_mask``); positions continue
    from the row's real length. The same log-likelihoods as scoring each prompt after its own copy of
    the prefix: several tasks of one window pay for its audio positions once, not once per task.
    Returns (per prompt logprobs (B, C_t), hidden states per layer (B, L+M, D) or None).
    """
    _require_left(asm)
    b, length, _ = asm.embeds.shape
    device = asm.embeds.device
    parents: list[int] = []
    depth: list[int] = []
    tokens: list[torch.Tensor] = []
    reads = []  # per prompt: (column whose logits give the first tokens, first branch column, C, steps, ids, valid)
    for prompt, candidates in prompts:
        ids, valid = _candidate_ids(candidates, device)  # (C, N)
        c, n = ids.shape
        steps = n - 1
        start = len(parents)
        for i in range(len(prompt)):
            parents.append(start + i - 1 if i else -1)
            depth.append(i)
        anchor = start + len(prompt) - 1 if prompt else -1  # extra token the candidates hang off (-1: the prefix)
        first_branch = len(parents)
        for j in range(c):
            for k in range(steps):
                parents.append(first_branch + j * steps + k - 1 if k else anchor)
                depth.append(len(prompt) + k)
        tokens += [torch.tensor(prompt, dtype=torch.long, device=device), ids[:, :-1].reshape(-1)]
        reads.append((length + anchor, length + first_branch, c, steps, ids, valid))
    embeds, positions = asm.embeds, asm.positions
    if parents:
        extra = adapter.embed_tokens(torch.cat(tokens)[None]).to(embeds.dtype)  # (1, M, D)
        embeds = torch.cat([embeds, extra.expand(b, -1, -1)], 1)  # (B, L+M, D)
        step = torch.tensor(depth, device=device)  # (M,)
        positions = torch.cat([positions, asm.lengths[:, None] + step[None]], 1)  # (B, L+M)
    mask = forest_mask(asm.attention_mask, parents)  # (B, 1, L+M, L+M)
    out = adapter.decode(embeds, mask, positions, use_cache=False, output_hidden_states=output_hidden_states)
    h = out.last_hidden_state  # (B, L+M, D)
    result = []
    for anchor, first_branch, c, steps, ids, valid in reads:
        first = F.log_softmax(adapter.lm_head(h[:, anchor]).float(), -1)  # (B, V)
        lp = first[:, ids[:, 0]]  # (B, C) first tokens, after the prompt
        if steps:
            logp = F.log_softmax(adapter.lm_head(h[:, first_branch:first_branch + c * steps]).float(), -1)  # (B, M_t, V)
            target = ids[:, 1:].reshape(1, -1, 1).expand(b, -1, -1)  # (B, M_t, 1)
            tok_lp = torch.gather(logp, 2, target)[..., 0].view(b, c, steps)  # (B, C, N-1)
            lp = lp + (tok_lp * valid[None, :, 1:]).sum(-1)  # (B, C)
        result.append(lp)
    return result, out.hidden_states


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
