"""Expert heads on the thinking positions and their distillation losses.

A pooled expert reads the mean of the K thinking states and predicts one vector per window. A
time-resolved expert (pitch contour, VAD) predicts one vector per slot; its targets ``(B, F, dim)``
are averaged over K consecutive stretches of each window (slot k <- the k-th stretch), so slot k is
taught what happened in that part of the window.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edge_coat.model.config import ExpertSpec


def slot_pool(targets: torch.Tensor, frame_mask: torch.Tensor, num_slots: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Average time-resolved targets into ``num_slots`` consecutive segments of each window.

    targets (B, F, C); frame_mask (B, F) bool (True = a valid reading). Segments split each row's valid
    span ``[0, n_i)``, n_i = last valid frame + 1, evenly. Returns (pooled (B, K, C), slot_mask (B, K) bool);
    a slot with no valid frame is masked out.
    """
    if targets.ndim != 3:
        raise ValueError(f"time-resolved targets must be (B, frames, dim), got shape {tuple(targets.shape)}")
    b, f, _ = targets.shape
    frame_mask = frame_mask.bool()
    t = torch.arange(f, device=targets.device)  # (F,)
    span = torch.where(frame_mask, t[None] + 1, torch.zeros_like(t[None])).amax(-1).clamp(min=1)  # (B,)
    seg = (t[None] * num_slots) // span[:, None]  # (B, F) slot of each frame
    onehot = (seg[:, None, :] == torch.arange(num_slots, device=targets.device)[None, :, None])  # (B, K, F)
    weights = (onehot & frame_mask[:, None, :]).to(targets.dtype)  # (B, K, F)
    counts = weights.sum(-1)  # (B, K)
    pooled = weights @ targets / counts.clamp(min=1)[..., None]  # (B, K, C)
    return pooled, counts > 0


def expert_loss(kind: str, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean loss over the rows where ``mask`` is True. pred/target (..., C); mask (...) bool."""
    mask = mask.bool()
    if not mask.any():
        return pred.sum() * 0.0  # keeps the graph; no target in this batch
    p, t = pred[mask], target[mask].to(pred.dtype)  # (N, C)
    if kind == "cosine":
        per = 1.0 - F.cosine_similarity(p, t, dim=-1)
    elif kind == "mse":
        per = ((p - t) ** 2).mean(-1)
    elif kind == "kl":
        t = t.clamp(min=0)
        t = t / t.sum(-1, keepdim=True).clamp(min=1e-8)
        per = (t * (torch.log(t.clamp(min=1e-8)) - F.log_softmax(p, dim=-1))).sum(-1)
    elif kind == "bce":
        per = F.binary_cross_entropy_with_logits(p, t.clamp(0, 1), reduction="none").mean(-1)
    else:
        raise ValueError(f"unknown expert loss {kind!r}; expected cosine, mse, kl or bce")
    return per.mean()


class ExpertHeads(nn.Module):
    """One small MLP per expert, from the LLM width to the expert's feature width."""

    def __init__(self, experts: list[ExpertSpec], hidden_size: int):
        super().__init__()
        self.specs = {e.name: e for e in experts}
        self.heads = nn.ModuleDict(
            {
                e.name: nn.Sequential(nn.LayerNorm(hidden_size), nn.Linear(hidden_size, hidden_size), nn.GELU(),
                                      nn.Linear(hidden_size, e.dim))
                for e in experts
            }
        )

    def forward(self, thinking: torch.Tensor) -> dict[str, torch.Tensor]:
        """thinking (B, K, D) -> name -> (B, dim) for pooled experts, (B, K, dim) for time-resolved."""
        out = {}
        for name, head in self.heads.items():
            x = thinking.mean(1) if self.specs[name].pooled else thinking  # (B, D) or (B, K, D)
            out[name] = head(x)
        return out

    def losses(
        self,
        thinking: torch.Tensor,
        targets: dict[str, torch.Tensor],
        masks: dict[str, torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Unweighted loss per expert that has targets in the batch.

        targets[name]: (B, dim) pooled or (B, F, dim) time-resolved. masks[name] (optional): (B,) bool
        (the window has a reading) or, for time-resolved experts, (B, F) bool (valid frames).
        """
        masks = masks or {}
        preds = self.forward(thinking)
        b, k = thinking.shape[:2]
        out = {}
        for name, target in targets.items():
            if name not in self.specs:
                raise ValueError(f"targets for unknown expert {name!r}; configured experts: {sorted(self.specs)}")
            spec = self.specs[name]
            target = target.to(thinking.device)
            if target.shape[-1] != spec.dim:
                raise ValueError(f"expert {name!r}: expected target width {spec.dim}, got shape {tuple(target.shape)}")
            mask = masks.get(name)
            if spec.pooled:
                if target.ndim != 2:
                    raise ValueError(f"expert {name!r} is pooled: expected (B, {spec.dim}), got {tuple(target.shape)}")
                mask = torch.ones(b, dtype=torch.bool, device=target.device) if mask is None else mask.to(target.device)
                out[name] = expert_loss(spec.loss, preds[name], target, mask)
            else:
                frame_mask = (
                    torch.ones(target.shape[:2], dtype=torch.bool, device=target.device)
                    if mask is None
                    else mask.to(target.device)
                )
                if frame_mask.ndim == 1:  # a per-window mask: all frames of a present window are valid
                    frame_mask = frame_mask[:, None].expand(target.shape[:2])
                pooled, slot_mask = slot_pool(target, frame_mask, k)  # (B, K, dim), (B, K)
                out[name] = expert_loss(spec.loss, preds[name], pooled, slot_mask)
        return out
