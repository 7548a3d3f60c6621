"""Scripted WindowResults for detector tests."""

from __future__ import annotations

import numpy as np

from edge_coat.messages import Window, WindowResult

HOP = 1.0  # seconds between window starts
T0 = 1_700_000_000.0


def window_result(stream: str, index: int, *, anomaly: float | None = None, emotion: dict | None = None,
                  thinking: np.ndarray | None = None, speech_ratio: float | None = None,
                  rms_dbfs: float = -20.0, gap: float = 0.0, tasks: tuple[str, ...] = ()) -> WindowResult:
    start = T0 + index * HOP
    window = Window(stream_id=stream, index=index, start_sample=index * 16000, start_ts=start, end_ts=start + 2.0,
                    samples=np.zeros(32000, dtype=np.float32), gap_seconds=gap, rms_dbfs=rms_dbfs,
                    speech_ratio=speech_ratio, tasks=tasks)
    probs = {}
    if anomaly is not None:
        probs["anomaly"] = {"normal": 1.0 - anomaly, "abnormal": anomaly}
    if emotion is not None:
        probs["emotion"] = emotion
    return WindowResult(window=window, label_probs=probs, thinking=thinking,
                        readings={"pitch_hz": 180.0, "loudness_dbfs": rms_dbfs},
                        tags=(("Speech", 0.9), ("Engine", 0.4)), model_name="coat-tiny", model_version="0.1")


def emotions(angry: float) -> dict:
    rest = (1.0 - angry) / 3
    return {"angry": angry, "neutral": rest, "happy": rest, "sad": rest}
