"""DetectorSet: the detectors stage as one object (routing, stream status, enrollment control)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from edge_coat.detectors.config import DetectorsConfig
from edge_coat.detectors.registry import Detector, Enrolling, Resuming, detector_type
from edge_coat.messages import (
    EndOfStream,
    EnrollmentStatus,
    EventRecord,
    StreamStatus,
    WindowResult,
    check_stream_id,
)


#: EndOfStream.reason -> the reason written in the end events
END_REASONS = {"ended": "stream ended", "idle": "stream went idle"}


@dataclass
class _Seen:
    windows: int = 0
    tasks: set = field(default_factory=set)
    last_window_ts: float = 0.0
    model_name: str = ""
    model_version: str = ""


class DetectorSet:
    """Runs the configured detectors (``config.instances``, built through the registry) on each
    WindowResult; safe to call from several threads.

    A window goes to every enabled detector whose ``task`` it carries (in ``label_probs`` or the
    window's tasks), in config order. It also implements the event service's ``StreamControl``
    interface (``list_streams``, ``start_enrollment``, ``stop_enrollment``, ``get_enrollment``), so an
    all-in-one process can hand it straight to the gRPC server; enrollment goes to the first detector
    with the `Enrolling` capability.
    """

    def __init__(self, config: DetectorsConfig | None = None) -> None:
        self.config = config or DetectorsConfig()
        self.detectors: dict[str, Detector] = {
            name: detector_type(c.type).build(c, self.config.top_tags) for name, c in self.config.instances.items()
        }
        self._enrolling = next((d for d in self.detectors.values() if isinstance(d, Enrolling)), None)
        self._lock = threading.Lock()
        self._seen: dict[str, _Seen] = {}

    def process(self, result: WindowResult) -> list[EventRecord]:
        """Events caused by one window (usually none). Raises ValueError on malformed input."""
        if not isinstance(result, WindowResult):
            raise ValueError(f"detectors expect a WindowResult; got {type(result).__name__}")
        w = result.window
        tasks = set(result.label_probs) | set(w.tasks)
        with self._lock:
            seen = self._seen.get(w.stream_id)
            if seen is None:
                seen = self._seen[w.stream_id] = _Seen()
            seen.windows += 1
            seen.tasks |= tasks
            seen.last_window_ts, seen.model_name, seen.model_version = w.end_ts, result.model_name, result.model_version
            records: list[EventRecord] = []
            for det in self.detectors.values():
                if det.config.enabled and det.config.task in tasks:
                    records += det.process(result)
            return records

    def end_stream(self, end: EndOfStream) -> list[EventRecord]:
        """The stream's last window went through: end its open episodes (`EndOfStream` from the worker)."""
        seen = self._seen.get(end.stream_id)
        ts = end.ts or (seen.last_window_ts if seen is not None else 0.0) or time.time()
        return self.close_stream(end.stream_id, ts, END_REASONS.get(end.reason, end.reason))

    def close_stream(self, stream_id: str, ts: float | None = None, reason: str = "stream ended") -> list[EventRecord]:
        """End every open episode of a stream (at ``ts``, default: now; ``reason`` goes into the end events)."""
        ts = time.time() if ts is None else ts
        with self._lock:
            return [r for det in self.detectors.values() for r in det.close_stream(stream_id, ts, reason)]

    def close_all(self) -> list[EventRecord]:
        """End every open episode of every stream seen, each at its last window (shutdown)."""
        with self._lock:
            last = {sid: s.last_window_ts for sid, s in self._seen.items()}
        return [r for sid, ts in sorted(last.items()) for r in self.close_stream(sid, ts or None)]

    def resume_episodes(self, episodes: list[dict]) -> list[str]:
        """Continue episodes a previous process left open (``EventLog.open_episodes()``): each dict has
        stream_id, kind, episode_id, label, peak, started_ts, last_ts; each goes to the detectors of its
        kind that can resume (`Resuming`). Returns the streams concerned."""
        streams = []
        with self._lock:
            for ep in episodes:
                takers = [d for d in self.detectors.values() if d.kind == ep["kind"] and isinstance(d, Resuming)]
                for detector in takers[:1]:
                    detector.resume_episode(ep["stream_id"], ep["episode_id"], ep["label"], ep["peak"],
                                            ep["started_ts"], ep["last_ts"])
                    seen = self._seen.get(ep["stream_id"])
                    if seen is None:
                        seen = self._seen[ep["stream_id"]] = _Seen(last_window_ts=ep["last_ts"])
                    streams.append(ep["stream_id"])
        return sorted(set(streams))

    # ------------------------------------------------------------------ StreamControl
    def list_streams(self) -> list[StreamStatus]:
        with self._lock:
            return [self._status(s) for s in sorted(self._seen)]

    def stream_status(self, stream_id: str) -> StreamStatus:
        with self._lock:
            return self._status(check_stream_id(stream_id))

    def start_enrollment(self, stream_id: str, windows: int | None = None,
                         seconds: float | None = None) -> EnrollmentStatus:
        with self._lock:
            return self._enroller().start_enrollment(check_stream_id(stream_id), windows=windows, seconds=seconds)

    def stop_enrollment(self, stream_id: str, commit: bool = True) -> EnrollmentStatus:
        with self._lock:
            return self._enroller().stop_enrollment(check_stream_id(stream_id), commit=commit)

    def get_enrollment(self, stream_id: str) -> EnrollmentStatus:
        check_stream_id(stream_id)
        if self._enrolling is None:
            return EnrollmentStatus(stream_id, message="no configured detector enrolls")
        with self._lock:
            return self._enrolling.enrollment_status(stream_id)

    def enroll_from_results(self, stream_id: str, results) -> EnrollmentStatus:
        with self._lock:
            return self._enroller().enroll_from_results(check_stream_id(stream_id), results)

    def _enroller(self) -> Enrolling:
        if self._enrolling is None:
            raise ValueError(f"no configured detector enrolls a profile (detectors: {sorted(self.detectors)})")
        return self._enrolling

    def _status(self, stream_id: str) -> StreamStatus:
        seen = self._seen.get(stream_id) or _Seen()
        return StreamStatus(stream_id=stream_id, last_window_ts=seen.last_window_ts, windows=seen.windows,
                            tasks=tuple(sorted(seen.tasks)), model_name=seen.model_name,
                            model_version=seen.model_version,
                            detectors={name: det.status(stream_id) for name, det in self.detectors.items()})
