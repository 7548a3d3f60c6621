"""A stream's windows cut as the worker cuts them (consecutive windows overlap), for the per-stream cache tests."""

from __future__ import annotations

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
