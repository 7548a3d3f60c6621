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

A task in ``coat_config.readout_relative`` reads the window's statistics minus a **baseline**: the mean statistics of
the stream's last N windows (``stream_baseline``, N = ``readout_baseline_windows``), the slots of windows not yet
heard filled with the mean statistics of the training clips (``readout.centers.<task>.center``, (2F,)). The fit
subtracts, from each training clip, the mean of up to N other clips of its speaker on the same channel
(``edge_coat.train.readout``). Over held-out folds this gained 2-5 points on every emotion corpus
(docs/coat-tiny-speaker-baseline). With ``coat_config.readout_with_absolute`` the task reads ``[x, x - b]`` (its
weights twice as wide), fitted on baselines of every size, so a window heard before any baseline scores as an absolute
readout would.

``coat_config.readout_baseline`` says whose baseline: "speaker" (the above: a call's own earlier windows) or "desk":
the long-run mean of everything a stream (a desk, one line) has heard, over many callers (``HeardMean``; the stage's
running mean). The fit subtracts from each training clip the mean of the other clips of its corpus folder on the same
channel. A desk's mean carries the line, the room and the callers' language, and little of one caller's emotion; it
exists from a call's first window once the desk has run a while (docs/coat-tiny-corpus-norm).

Stored in ``coat.safetensors`` as ``readout.tasks.<task>.weight`` (C, 2F, F the width read) and ``.bias`` (C,) (buffers, not
parameters: no optimiser touches them), the
feature standardisation folded in; ``coat_config.json``'s ``readout`` names each task's C labels in row order.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

#: whose statistics make a relative task's baseline (``coat_config.readout_baseline``)
BASELINE_KINDS = ("speaker", "desk")


class HeardMean(NamedTuple):
    """A baseline context given as a mean rather than as rows: the mean statistics (F,) of ``count`` windows heard
    (a desk's running mean). ``stream_baseline`` weighs it as ``min(count, windows)`` windows."""

    mean: object  # (F,) array or tensor
    count: int


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


class _Center(nn.Module):
    """The mean statistics of a relative task's training clips (a buffer): the baseline of windows not yet heard."""

    def __init__(self, center: torch.Tensor):
        super().__init__()
        self.register_buffer("center", center)  # (F,)


def stream_baseline(context, center: torch.Tensor, windows: int) -> torch.Tensor:
    """A stream's baseline (F,): the mean of the last ``windows`` rows of ``context`` (n, F), the statistics of its
    earlier windows; while fewer than ``windows`` were heard, the missing ones count as ``center``. A ``HeardMean``
    context counts as ``min(count, windows)`` windows at its mean."""
    if isinstance(context, HeardMean):
        k = min(int(context.count), windows)
        if k <= 0:
            return center
        return (k * torch.as_tensor(context.mean).to(center) + (windows - k) * center) / windows
    if context is None or len(context) == 0:
        return center
    ctx = context[-windows:].to(center)
    return (ctx.sum(0) + (windows - len(ctx)) * center) / windows


class AnswerReadout(nn.Module):
    """One linear layer per task over ``window_statistics``; ``labels``: task -> its labels in row order;
    ``relative``: the tasks that read the statistics minus a stream baseline (``stream_baseline``)."""

    def __init__(self, labels: dict[str, list[str]], feature_dim: int, relative=(), with_absolute: bool = False):
        super().__init__()
        self.labels = {task: list(names) for task, names in labels.items()}
        self.feature_dim = feature_dim
        #: relative tasks read [x, x - baseline] (weights 2 x feature_dim wide) instead of x - baseline
        self.with_absolute = bool(with_absolute)
        self.centers = nn.ModuleDict({task: _Center(torch.zeros(feature_dim)) for task in relative
                                      if task in self.labels})
        # zeros = no opinion, until load_state_dict or set_task fills them
        self.tasks = nn.ModuleDict({task: _Fitted(torch.zeros(len(names), self.task_dim(task)),
                                                  torch.zeros(len(names)))
                                    for task, names in self.labels.items()})

    def task_dim(self, task: str, relative: bool | None = None) -> int:
        """The width a task's weights read: ``feature_dim``, twice that for a relative task read with the absolute."""
        rel = task in self.centers if relative is None else relative
        return 2 * self.feature_dim if rel and self.with_absolute else self.feature_dim

    def is_relative(self, task: str | None) -> bool:
        return task in self.centers

    @property
    def relative(self) -> list[str]:
        return sorted(self.centers)

    def knows(self, task: str | None, candidates) -> bool:
        """Whether the readout has ``task`` and every candidate is one of its labels."""
        return task in self.labels and all(c in self.labels[task] for c in candidates)

    def set_task(self, task: str, labels: list[str], weight: torch.Tensor, bias: torch.Tensor,
                 center: torch.Tensor | None = None) -> None:
        """Install a fitted task: weight (C, 2D), bias (C,), rows in ``labels`` order; ``center`` (2D,): the task
        reads statistics relative to a stream baseline, this being the training clips' mean (None: absolute)."""
        dim = self.task_dim(task, center is not None)
        if tuple(weight.shape) != (len(labels), dim) or tuple(bias.shape) != (len(labels),):
            raise ValueError(f"readout {task!r}: expected weight ({len(labels)}, {dim}) and bias "
                             f"({len(labels)},), got {tuple(weight.shape)} and {tuple(bias.shape)}")
        if center is not None and tuple(center.shape) != (self.feature_dim,):
            raise ValueError(f"readout {task!r}: expected center ({self.feature_dim},), got {tuple(center.shape)}")
        self.tasks[task] = _Fitted(weight.detach().float().clone(), bias.detach().float().clone()).to(weight.device)
        self.labels[task] = list(labels)
        if center is not None:
            self.centers[task] = _Center(center.detach().float().clone()).to(weight.device)
        elif task in self.centers:
            del self.centers[task]

    def drop(self, task: str) -> None:
        """Forget a task's fit (the LLM alone answers it)."""
        self.labels.pop(task, None)
        for store in (self.tasks, self.centers):
            if task in store:
                del store[task]

    def baselines(self, task: str, contexts, windows: int, n: int) -> torch.Tensor:
        """(n, 2D) baselines of a relative task for n windows: ``contexts``, one (k, 2D) array or tensor of the
        stream's earlier windows' statistics per window (None or empty: nothing heard yet), or None for all."""
        center = self.centers[task].center
        if contexts is None:
            return center.expand(n, -1)
        if len(contexts) != n:
            raise ValueError(f"readout_context: expected one entry per window ({n}), got {len(contexts)}")
        rows = []
        for ctx in contexts:
            if isinstance(ctx, HeardMean):
                if tuple(torch.as_tensor(ctx.mean).shape) != (self.feature_dim,):
                    raise ValueError(f"readout_context: expected a heard mean of ({self.feature_dim},), got "
                                     f"{tuple(torch.as_tensor(ctx.mean).shape)}")
                rows.append(stream_baseline(ctx, center, windows))
                continue
            ctx = None if ctx is None else torch.as_tensor(ctx)
            if ctx is not None and len(ctx) and (ctx.ndim != 2 or ctx.shape[1] != self.feature_dim):
                raise ValueError(f"readout_context: expected (k, {self.feature_dim}) statistics per window, got "
                                 f"{tuple(ctx.shape)}")
            rows.append(stream_baseline(ctx, center, windows))
        return torch.stack(rows)

    def log_probs(self, task: str, features: torch.Tensor, candidates,
                  baseline: torch.Tensor | None = None) -> torch.Tensor:
        """features (B, 2D) -> (B, len(candidates)) log-probabilities renormalised over the candidates. A relative
        task reads ``features - baseline`` (baseline (B, 2D); None: the training clips' mean)."""
        layer = self.tasks[task]
        if task in self.centers:
            base = self.centers[task].center if baseline is None else baseline
            relative = features - base.to(features)
            features = torch.cat([features, relative], -1) if self.with_absolute else relative
        logits = layer(features.to(layer.weight.dtype)).float()  # (B, C)
        idx = torch.tensor([self.labels[task].index(c) for c in candidates], device=logits.device)
        return torch.log_softmax(logits[:, idx], -1)  # (B, len(candidates))
