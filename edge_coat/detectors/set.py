"""DetectorSet: the detectors stage as one object (routing, stream status, enrollment control)."""

from __future__ import annotations

import threading
import time

from edge_coat.detectors.anomaly import AnomalyDetector
from edge_coat.detectors.config import DetectorsConfig
from edge_coat.detectors.emotion import EmotionDetector
from edge_coat.messages import EventRecord, WindowResult, check_stream_id


class DetectorSet:
    """Runs the configured detectors on each WindowResult; safe to call from several threads.

    It also implements the event service's ``StreamControl`` interface (``list_streams``,
    ``start_enrollment``, ``stop_enrollment``, ``get_enrollment``), so an all-in-one process can hand
    it straight to the gRPC server.
    """

    def __init__(self, config: DetectorsConfig | None = None) -> None:
        self.config = config or DetectorsConfig()
        self.anomaly = AnomalyDetector(self.config.anomaly, self.config.top_tags)
        self.emotion = EmotionDetector(self.config.emotion, self.config.top_tags)
        self._lock = threading.Lock()
        self._seen: dict[str, dict] = {}  # stream -> last window ts, model, task set

    def process(self, result: WindowResult) -> list[EventRecord]:
        """Events caused by one window (usually none). Raises ValueError on malformed input."""
        if not isinstance(result, WindowResult):
            raise ValueError(f"detectors expect a WindowResult; got {type(result).__name__}")
        stream_id = check_stream_id(result.window.stream_id)
        tasks = set(result.label_probs) | set(result.window.tasks)
        with self._lock:
            seen = self._seen.setdefault(stream_id, {"windows": 0, "tasks": set()})
            seen.update(last_window_ts=result.window.end_ts, model_name=result.model_name,
                        model_version=result.model_version)
            seen["windows"] += 1
            seen["tasks"] |= tasks
            records: list[EventRecord] = []
            if self.config.anomaly.enabled and self.config.anomaly.task in tasks:
                records += self.anomaly.process(result)
            if self.config.emotion.enabled and self.config.emotion.task in tasks:
                records += self.emotion.process(result)
            return records

    def close_stream(self, stream_id: str, ts: float | None = None) -> list[EventRecord]:
        """End every open episode of a stream that has ended."""
        ts = time.time() if ts is None else ts
        with self._lock:
            return self.anomaly.close_stream(stream_id, ts) + self.emotion.close_stream(stream_id, ts)

    # ------------------------------------------------------------------ StreamControl
    def list_streams(self) -> list[dict]:
        with self._lock:
            return [self._status(s) for s in sorted(self._seen)]

    def stream_status(self, stream_id: str) -> dict:
        with self._lock:
            return self._status(check_stream_id(stream_id))

    def start_enrollment(self, stream_id: str, windows: int | None = None, seconds: float | None = None) -> dict:
        with self._lock:
            return self.anomaly.start_enrollment(stream_id, windows=windows, seconds=seconds)

    def stop_enrollment(self, stream_id: str, commit: bool = True) -> dict:
        with self._lock:
            return self.anomaly.stop_enrollment(stream_id, commit=commit)

    def get_enrollment(self, stream_id: str) -> dict:
        with self._lock:
            return self.anomaly.enrollment_status(stream_id)

    def enroll_from_results(self, stream_id: str, results) -> dict:
        with self._lock:
            return self.anomaly.enroll_from_results(stream_id, results)

    def _status(self, stream_id: str) -> dict:
        seen = self._seen.get(stream_id, {"windows": 0, "tasks": set()})
        return {"stream_id": stream_id, "last_window_ts": seen.get("last_window_ts", 0.0),
                "windows": seen["windows"], "tasks": sorted(seen["tasks"]),
                "model_name": seen.get("model_name", ""), "model_version": seen.get("model_version", ""),
                "anomaly": self.anomaly.status(stream_id), "emotion": self.emotion.status(stream_id)}
