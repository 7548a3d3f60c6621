"""The answer readout: a linear classifier on the window's audio statistics, beside the LLM's answer.

For a task it knows, the model's label probabilities are the product of two calibrated opinions,
``softmax((logprobs / T + log p_readout) / T_r)``: the LLM's candidate log-likelihoods (after the thinking block) at
their calibrated temperature, and a multinomial logistic regression on the mean and standard deviation over
time of the window's audio, renormalised over the candidates scored. Which audio is ``coat_config.readout_input``:
'audio', the projected embeddings the thinking block and the LLM read (``CoatModel.encode``, coat-tiny 1.4), or
'tower', the audio tower's output before the projector (``CoatModel.encode_full``, coat-tiny 1.5: wider, and not
narrowed by a map trained for the LLM; it scored better on held-out folds, docs/coat-tiny-tower-readout). The readout is fitted after training on the training
split's clips (``edge_coat.train.readout``); the tiny LLM over-fits a thousand clips and varies by many points
between seeds, a regularised convex fit on the same embeddings does neither, and the two err differently
(``docs/coat-tiny-readout``). Both read the same audio, so their sum is over-confident: ``T_r``
(``coat_config.readout_temperature``) is calibrated on the validation split after the fit (coat-tiny 1.4: 3.4).

Stored in ``coat.safetensors`` as ``readout.tasks.<task>.weight`` (C, 2F, F the width read) and ``.bias`` (C,) (buffers, not
parameters: no optimiser touches them), the
feature standardisation folded in; ``coat_config.json``'s ``readout`` names each task's C labels in row order.
"""

from __future__ import annotations

import torch
from torch import nn


def window_statistics(audio: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """audio (B, T, D), mask (B, T) bool (True = a real position) -> (B, 2D) float32: [mean, std] over time.

    A window without a real position gives zeros (the caller's validation prevents it)."""
    a = audio.float()
    w = mask.to(a.dtype)[..., None]  # (B, T, 1)
    n = w.sum(1).clamp_min(1.0)  # (B, 1)
    mean = (a * w).sum(1) / n  # (B, D)
    var = (((a - mean[:, None]) ** 2) * w).sum(1) / n  # (B, D)
    return torch.cat([mean, var.sqrt()], -1)  # (B, 2D)


class _Fitted(nn.Module):
    """A linear map whose weights are buffers: fitted in closed form after training, never by the optimiser."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor):
        super().__init__()
        self.register_buffer("weight", weight)  # (C, F)
        self.register_buffer("bias", bias)  # (C,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight.T + self.bias  # (B, F) -> (B, C)


class AnswerReadout(nn.Module):
    """One linear layer per task over ``window_statistics``; ``labels``: task -> its labels in row order."""

    def __init__(self, labels: dict[str, list[str]], feature_dim: int):
        super().__init__()
        self.labels = {task: list(names) for task, names in labels.items()}
        self.feature_dim = feature_dim
        # zeros = no opinion, until load_state_dict or set_task fills them
        self.tasks = nn.ModuleDict({task: _Fitted(torch.zeros(len(names), feature_dim), torch.zeros(len(names)))
                                    for task, names in self.labels.items()})

    def knows(self, task: str | None, candidates) -> bool:
        """Whether the readout has ``task`` and every candidate is one of its labels."""
        return task in self.labels and all(c in self.labels[task] for c in candidates)

    def set_task(self, task: str, labels: list[str], weight: torch.Tensor, bias: torch.Tensor) -> None:
        """Install a fitted task: weight (C, 2D), bias (C,), rows in ``labels`` order."""
        if tuple(weight.shape) != (len(labels), self.feature_dim) or tuple(bias.shape) != (len(labels),):
            raise ValueError(f"readout {task!r}: expected weight ({len(labels)}, {self.feature_dim}) and bias "
                             f"({len(labels)},), got {tuple(weight.shape)} and {tuple(bias.shape)}")
        self.tasks[task] = _Fitted(weight.detach().float().clone(), bias.detach().float().clone())
        self.labels[task] = list(labels)

    def log_probs(self, task: str, features: torch.Tensor, candidates) -> torch.Tensor:
        """features (B, 2D) -> (B, len(candidates)) log-probabilities renormalised over the candidates."""
        layer = self.tasks[task]
        logits = layer(features.to(layer.weight.dtype)).float()  # (B, C)
        idx = torch.tensor([self.labels[task].index(c) for c in candidates], device=logits.device)
        return torch.log_softmax(logits[:, idx], -1)  # (B, len(candidates))
