"""Typed stream statuses (messages.StreamStatus) from the compact dicts the console tests write."""

from __future__ import annotations

from edge_coat.messages import DetectorStatus, EnrollmentStatus, StreamStatus


def typed_status(d: dict) -> StreamStatus:
    """``{"stream_id", "windows", "tasks", "last_window_ts", "anomaly": {...}, "emotion": {...}, "pipeline"}``
    -> StreamStatus; a detector's ``enrollment`` dict becomes an EnrollmentStatus, ``model_only`` a detail."""
    detectors = {}
    for kind in ("anomaly", "emotion"):
        if kind not in d:
            continue
        fields = dict(d[kind])
        enrollment = fields.pop("enrollment", None)
        details = {"model_only": fields.pop("model_only")} if "model_only" in fields else {}
        detectors[kind] = DetectorStatus(
            kind=kind, details=details, **fields,
            enrollment=EnrollmentStatus(**{"stream_id": d["stream_id"], **enrollment}) if enrollment is not None else None)
    return StreamStatus(stream_id=d["stream_id"], windows=d.get("windows", 0), tasks=tuple(d.get("tasks", ())),
                        last_window_ts=d.get("last_window_ts", 0.0), detectors=detectors,
                        details={k: d[k] for k in ("pipeline", "model", "capture") if k in d})
