"""Stream status and enrollment control between the event service and the worker.

The service calls a :class:`StreamControl`. Two implementations:

- :class:`edge_coat.detectors.DetectorSet` itself, when the service runs in the worker's process;
- :class:`LogStreamControl`, when ``serve`` is a separate process: statuses are read from the shared
  log file (the worker writes them) and enrollment requests are queued there; the worker applies
  them with :class:`WorkerBridge` (``bridge.poll()`` about once a second in its loop).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, replace
from typing import Protocol

from edge_coat.events.log import EventLog
from edge_coat.messages import EnrollmentStatus, EventRecord, StreamStatus, check_stream_id

logger = logging.getLogger(__name__)


class StreamControl(Protocol):
    """What the event service needs from the worker side. Raise ValueError on bad requests."""

    def list_streams(self) -> list[StreamStatus]: ...
    def start_enrollment(self, stream_id: str, windows: int | None = None,
                         seconds: float | None = None) -> EnrollmentStatus: ...
    def stop_enrollment(self, stream_id: str, commit: bool = True) -> EnrollmentStatus: ...
    def get_enrollment(self, stream_id: str) -> EnrollmentStatus: ...


class LogStreamControl:
    """StreamControl for a ``serve`` process that shares the log file with the worker."""

    def __init__(self, log: EventLog) -> None:
        self.log = log

    def list_streams(self) -> list[StreamStatus]:
        return self.log.stream_statuses()

    def start_enrollment(self, stream_id: str, windows: int | None = None,
                         seconds: float | None = None) -> EnrollmentStatus:
        check_stream_id(stream_id)
        ident = self.log.add_command(stream_id, "start_enrollment", {"windows": windows, "seconds": seconds})
        return EnrollmentStatus(stream_id, state="pending", message=f"request {ident} queued for the worker")

    def stop_enrollment(self, stream_id: str, commit: bool = True) -> EnrollmentStatus:
        check_stream_id(stream_id)
        ident = self.log.add_command(stream_id, "stop_enrollment", {"commit": commit})
        return EnrollmentStatus(stream_id, state="pending", message=f"request {ident} queued for the worker")

    def get_enrollment(self, stream_id: str) -> EnrollmentStatus:
        check_stream_id(stream_id)
        pending = [c for c in self.log.pending_commands() if c[1] == stream_id]
        if pending:
            return EnrollmentStatus(stream_id, state="pending",
                                    message=f"request {pending[-1][0]} ({pending[-1][2]}) not yet applied by the worker")
        for status in self.list_streams():
            if status.stream_id == stream_id:
                return status.enrollment()
        return EnrollmentStatus(stream_id, message="stream not seen by the worker")


class WorkerBridge:
    """Worker side of the shared log: publish events, report statuses, apply queued requests."""

    def __init__(self, log: EventLog, detectors, on_publish=None) -> None:
        self.log = log
        self.detectors = detectors  # a DetectorSet (or anything with its StreamControl methods)
        self.on_publish = on_publish  # e.g. EventServer.notify in an all-in-one process
        self._errors: dict[str, str] = {}  # stream -> last refused request, shown in its enrollment status

    def publish(self, records: list[EventRecord]) -> list:
        if not records:
            return []
        stored = self.log.append_many(records)
        if self.on_publish is not None:
            self.on_publish()
        return stored

    def poll(self) -> int:
        """Apply pending enrollment requests and write every stream's status; return requests applied."""
        applied = 0
        for ident, stream_id, action, params in self.log.pending_commands():
            try:
                if action == "start_enrollment":
                    result = asdict(self.detectors.start_enrollment(stream_id, **params))
                elif action == "stop_enrollment":
                    result = asdict(self.detectors.stop_enrollment(stream_id, **params))
                else:
                    raise ValueError(f"unknown request {action!r}")
            except ValueError as exc:
                logger.warning("request %d (%s on %s) refused: %s", ident, action, stream_id, exc)
                result = {"stream_id": stream_id, "error": str(exc)}
                self._errors[stream_id] = str(exc)
            self.log.finish_command(ident, result)
            applied += 1
        for status in self.detectors.list_streams():
            error = self._errors.get(status.stream_id)
            if error:
                status = replace(status, detectors={
                    name: replace(d, enrollment=replace(d.enrollment, last_error=f"last request refused: {error}"))
                    if d.enrollment is not None else d for name, d in status.detectors.items()})
            self.log.put_stream_status(status)
        return applied
