"""A stream's windows cut as the worker cuts them (consecutive windows overlap), and the pieces the tests of the
per-stream caches through the real worker share."""

from __future__ import annotations

import threading

import numpy as np

from edge_coat.messages import SAMPLE_RATE, Window


def stream_windows(audio: np.ndarray, stream: str = "s1", *, length: int, hop: int, first: int = 0, epoch: int = 1,
                   gap_at: set[int] = frozenset(), count: int | None = None,
                   tasks: tuple[str, ...] = ("anomaly",)) -> list[Window]:
    """Windows ``first``, ``first + 1``, ... of ``audio`` (window k: samples ``k * hop .. k * hop + length``), as
    long as the audio lasts or ``count`` are cut; those in ``gap_at`` carry a gap; all of sender run ``epoch``."""
    out = []
    k = first
    while k * hop + length <= audio.size and (count is None or len(out) < count):
        s = k * hop
        out.append(Window(stream_id=stream, index=k, start_sample=s, start_ts=s / SAMPLE_RATE,
                          end_ts=(s + length) / SAMPLE_RATE, samples=audio[s:s + length].copy(),
                          gap_seconds=0.5 if k in gap_at else 0.0, tasks=tasks, sender_epoch=epoch))
        k += 1
    return out


class Results:
    """A worker's ``on_result`` that keeps every result it hands on (thread-safe: the model thread calls it)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.items: list = []

    def __call__(self, result) -> None:
        with self.lock:
            self.items.append(result)


def cached_and_whole(model) -> tuple:
    """Two model stages over one model without readings: the default one (encoder cache on) and one that
    encodes every window whole (the reference a cached answer must equal)."""
    from edge_coat.config import ModelSection
    from edge_coat.worker.coat_stage import CoatStage

    return (CoatStage(ModelSection(path="unused", readings=[]), model=model),
            CoatStage(ModelSection(path="unused", readings=[], encoder_cache={"enabled": False}), model=model))
