"""Cheap gates before the expensive model: loudness, then (optionally) speech presence."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from edge_coat.worker.config import StreamConfig

#: speech presence: (num_samples,) float32 16 kHz -> fraction of the window that is speech.
SpeechFn = Callable[[np.ndarray], float]


def rms_dbfs(samples: np.ndarray) -> float:
    """Loudness of (N,) float32 samples in dBFS (full-scale sine = -3 dBFS); -120 for silence."""
    if samples.size == 0:
        return -120.0
    power = float(np.dot(samples, samples)) / samples.size
    return max(-120.0, 10.0 * math.log10(power + 1e-12))


class Gate:
    """Decides which tasks a window goes to. The speech function runs only when a task asks for
    speech AND the loudness gate passed, so it costs nothing on silent streams."""

    def __init__(self, cfg: StreamConfig, speech_fn: SpeechFn | None = None):
        needs_speech = [t for t, g in cfg.tasks.items() if g.min_speech_ratio is not None]
        if needs_speech and speech_fn is None:
            raise ValueError(
                f"tasks {needs_speech} set min_speech_ratio but no speech-presence function was given: "
                "pass speech_fn or remove min_speech_ratio"
            )
        self.cfg = cfg
        self.speech_fn = speech_fn
        # (task, min dBFS, min speech ratio or None), read once: this runs for every window
        self._tasks = [(t, g.min_rms_dbfs, g.min_speech_ratio) for t, g in cfg.tasks.items()]

    def __call__(self, samples: np.ndarray) -> tuple[tuple[str, ...], float, float | None]:
        """Returns (tasks passed, rms dBFS, speech ratio or None when not measured)."""
        level = rms_dbfs(samples)
        loud = [(t, sp) for t, lo, sp in self._tasks if level >= lo]
        speech = None
        if self.speech_fn is not None and any(sp is not None for _, sp in loud):
            speech = float(self.speech_fn(samples))
        tasks = tuple(t for t, sp in loud if sp is None or (speech is not None and speech >= sp))
        return tasks, level, speech
