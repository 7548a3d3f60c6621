"""Parity of the exported thinking block against torch, on random embeddings and on audio windows.

Each case feeds the same (B, T, Da) embeddings and (B, T) mask to the torch block and to the ONNX
session and records the max absolute difference of the (B, K, D) outputs. Random cases cover the
shape range the service uses (1 s to 30 s of encoder frames, batch 1 and 7, ragged masks); audio
cases (generated or recorded windows, through the model's own encoder) cover realistic activations.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edge_coat.model.manifest import ParityCase, ParityRecord
from edge_coat.model.runtime import import_onnxruntime
from edge_coat.messages import SAMPLE_RATE

log = logging.getLogger(__name__)

#: Encoder frames per second of audio for the three families (100 mel frames/s, stride 2 conv, pool 2).
FRAMES_PER_SECOND = 25
DEFAULT_TOLERANCE = 1e-4


class ParityError(ValueError):
    """The exported graph disagrees with torch beyond the tolerance."""


@dataclass(frozen=True)
class ParityInput:
    """One comparison input.

    Attributes:
        source: "random", "synthetic" or "real".
        embeds: (B, T, Da) float32.
        mask: (B, T) bool, True at valid frames; every row has at least one.
    """

    source: str
    embeds: np.ndarray  # (B, T, Da) float32
    mask: np.ndarray  # (B, T) bool


def random_inputs(audio_dim: int, *, seconds=(1, 30), batches=(1, 7), seed: int = 0) -> list[ParityInput]:
    """Random embeddings for every (batch, seconds) pair; rows after the first get random valid lengths."""
    rng = np.random.default_rng(seed)
    cases = []
    for b in batches:
        for s in seconds:
            t = max(1, int(round(s * FRAMES_PER_SECOND)))
            x = rng.standard_normal((b, t, audio_dim), dtype=np.float32)  # (B, T, Da)
            lengths = np.concatenate([[t], rng.integers(1, t + 1, size=b - 1)])  # (B,)
            mask = np.arange(t)[None, :] < lengths[:, None]  # (B, T)
            cases.append(ParityInput("random", x, mask))
    return cases


def synthetic_waves(seconds=(1.0, 2.5, 4.0), seed: int = 0) -> list[np.ndarray]:
    """Generated test windows: a gliding tone with harmonics plus noise, one per duration."""
    rng = np.random.default_rng(seed)
    waves = []
    for i, s in enumerate(seconds):
        t = np.arange(int(s * SAMPLE_RATE)) / SAMPLE_RATE
        f0 = 180.0 + 40.0 * i + 60.0 * t / max(s, 1e-3)
        phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
        w = 0.3 * np.sin(phase) + 0.1 * np.sin(2 * phase) + 0.02 * rng.standard_normal(t.size)
        waves.append(w.astype(np.float32))
    return waves


def load_real_waves(folder: str | Path, count: int, max_seconds: float) -> list[np.ndarray]:
    """The first ``count`` clips of a dataset folder (labels.csv + audio), cut to ``max_seconds``."""
    from edge_coat.data.folder import DatasetFolder

    data = DatasetFolder(folder, check_audio=False)
    if len(data) == 0:
        raise ValueError(f"dataset folder {folder} has no clips; expected at least one for real-audio parity")
    limit = int(max_seconds * SAMPLE_RATE)
    return [data.load(i)[:limit] for i in range(min(count, len(data)))]


def audio_inputs(model, waves: list[np.ndarray], source: str) -> ParityInput:
    """Windows through ``model.encode`` (the real front end and encoder) as one batch."""
    with torch.no_grad():
        embeds, mask = model.encode(waves)  # (B, T, Da), (B, T)
    return ParityInput(source, embeds.float().cpu().numpy(), mask.cpu().numpy().astype(bool))


def check_parity(
    block: nn.Module,
    onnx_block: nn.Module,
    inputs: list[ParityInput],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    file: str = "thinking.onnx",
    component: str = "thinking",
) -> ParityRecord:
    """Compare the torch ``block`` with ``onnx_block`` (a callable (embeds, mask) -> (B, K, D) torch tensor) on
    every input. Raises ParityError over tolerance."""
    import_onnxruntime()  # a clear message before any work when it is missing
    if not inputs:
        raise ValueError("parity needs at least one input; got none")
    block = block.eval()
    param = next(block.parameters())
    cases = []
    for inp in inputs:
        with torch.no_grad():
            x = torch.from_numpy(inp.embeds).to(param.device, param.dtype)  # (B, T, Da)
            m = torch.from_numpy(inp.mask).to(param.device)  # (B, T)
            ref = block(x, m).float().cpu().numpy()  # (B, K, D)
        got = onnx_block(inp.embeds, inp.mask).numpy()  # (B, K, D)
        if got.shape != ref.shape:
            raise ParityError(f"ONNX output shape {got.shape} differs from torch {ref.shape}")
        diff = float(np.max(np.abs(got - ref)))
        b, t = inp.mask.shape
        cases.append(ParityCase(source=inp.source, batch=b, frames=t, max_abs_diff=diff))
        log.info("parity %s B=%d T=%d: max abs diff %.3g", inp.source, b, t, diff)
    what = "ONNX thinking block" if component == "thinking" else f"ONNX {component}"
    return parity_record(component, file, what, getattr(onnx_block, "provider", "?"), cases, tolerance)


class split_runner:  # noqa: N801 - used like a function: split_runner(block)(embeds, mask)
    """``block.from_frames(block.frame_features(embeds), mask)``: an ``OnnxThinkingBlock``'s two part graphs
    run one after the other over whole windows, for ``check_parity`` (component ``thinking_split``)."""

    def __init__(self, block):
        if not block.can_split:
            raise ValueError(f"{block}: {block.split_note}")
        self.block = block
        self.provider = block.provider

    def __call__(self, embeds, mask):
        return self.block.from_frames(self.block.frame_features(embeds), mask)  # (B, K, D)


def parity_record(component: str, file: str, what: str, provider: str, cases: list[ParityCase],
                  tolerance: float) -> ParityRecord:
    """The manifest record of one component's compared cases; ParityError when one is over ``tolerance``."""
    onnxruntime = import_onnxruntime()
    record = ParityRecord(
        component=component,
        file=file,
        runtime=f"onnxruntime {onnxruntime.__version__} {provider}",
        dtype="float32",
        tolerance=tolerance,
        max_abs_diff=max(c.max_abs_diff for c in cases),
        cases=cases,
    )
    bad = [c for c in cases if not c.max_abs_diff <= tolerance]  # NaN counts as a failure
    if bad:
        worst = max(bad, key=lambda c: c.max_abs_diff)
        raise ParityError(
            f"{what} differs from torch by {worst.max_abs_diff:.3g} (> tolerance {tolerance:g}) "
            f"on {len(bad)} of {len(cases)} cases, worst: {worst.source} B={worst.batch} T={worst.frames}"
        )
    return record
