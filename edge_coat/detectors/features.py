"""What a window's normal profile compares: the anomaly feature vector of one window.

Three feature sets, chosen by ``AnomalyConfig.features``:

* ``"mel"``: statistics of the model front end's log-mel features (the Whisper log-mel the encoder
  reads, ``edge_coat.model.audio.MelFrontend``): per band, the mean over time minus the window's
  overall mean (so a gain change, i.e. loudness, cancels) and the standard deviation over time.
  (2 * MEL_BINS,) values. On the generated factory development set (seed 55) this carried every
  fault type the generator makes, where the trained coat-tiny's hidden states did not (see the
  anomaly section of the model card for the figures).
* ``"thinking"``: the window's (K, D) thinking latents pooled to one vector (``pool_latents``).
* ``"mel+thinking"``: both, one vector (the mel statistics, then the pooled latents). The profile
  standardises every feature over the enrollment, so each half counts by its number of values. On the
  development set (seed 55) it ranked faults best of the three
  (``python -m bench.accuracy.profile_features``: AUC 0.990 against 0.978 for mel and 0.986 for thinking).

:func:`window_features` is the one function the service's detector and ``edge-coat eval --task
anomaly`` both call, so their scores agree.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from edge_coat.detectors.profile import pool_latents
from edge_coat.messages import SAMPLE_RATE, WindowResult

MEL_BINS = 80  # the coat-tiny and Whisper-family front end
MIN_MEL_SAMPLES = SAMPLE_RATE // 10  # 0.1 s: a few log-mel frames at least
FEATURE_SETS = ("mel", "thinking", "mel+thinking")


@functools.lru_cache(maxsize=8)
def _frontend(seconds: int):
    """One MelFrontend per whole-second length (building the mel filterbank is not free)."""
    from edge_coat.model.audio import MelFrontend

    return MelFrontend(MEL_BINS, seconds * 100)


def mel_statistics(samples: np.ndarray) -> np.ndarray:
    """(N,) float 16 kHz mono -> (2 * MEL_BINS,) float64: level-centred band means, then band stds."""
    x = np.asarray(samples)
    if x.ndim != 1 or x.size < MIN_MEL_SAMPLES:
        raise ValueError(
            f"anomaly mel features need (num_samples,) mono audio of at least {MIN_MEL_SAMPLES} samples; "
            f"got shape {x.shape}"
        )
    if not np.all(np.isfinite(x)):
        raise ValueError("anomaly mel features: the window's samples contain NaN or inf")
    seconds = max(1, math.ceil(x.size / SAMPLE_RATE))
    mel, mask = _frontend(seconds)([x.astype(np.float32, copy=False)])  # (1, MEL_BINS, F), (1, F)
    frames = mel[0].numpy()[:, mask[0].numpy().astype(bool)].astype(np.float64)  # (MEL_BINS, T)
    band_mean = frames.mean(axis=1)  # (MEL_BINS,)
    return np.concatenate([band_mean - band_mean.mean(), frames.std(axis=1)])  # (2 * MEL_BINS,)


def uses_thinking(features: str) -> bool:
    """Whether the feature set needs the window's thinking latents."""
    return features in ("thinking", "mel+thinking")


def window_features(result: WindowResult, features: str, pooling: str = "mean") -> np.ndarray | None:
    """The vector a normal profile compares for this window, or None when the window cannot give it
    (``"thinking"`` or ``"mel+thinking"`` on a result without latents)."""
    if features == "mel":
        return mel_statistics(result.window.samples)
    if features == "thinking":
        return None if result.thinking is None else pool_latents(result.thinking, pooling)
    if features == "mel+thinking":
        if result.thinking is None:
            return None
        return np.concatenate([mel_statistics(result.window.samples), pool_latents(result.thinking, pooling)])
    raise ValueError(f"anomaly features must be one of {FEATURE_SETS}; got {features!r}")


def fuse(profile_score: float | None, p_abnormal: float | None, model_weight: float) -> float | None:
    """``(1 - w) * profile_score + w * P(abnormal)``; either alone when the other is missing; None when both are."""
    if profile_score is not None and p_abnormal is not None:
        return (1.0 - model_weight) * profile_score + model_weight * p_abnormal
    return profile_score if profile_score is not None else p_abnormal
