"""What the console's pages show, as JSON-ready dicts: stream tiles and events.

Stream statuses arrive typed (`messages.StreamStatus`), from the worker in this process or from the log
file a separate worker writes (:mod:`edge_coat.events.control`); this module is the one place that turns
them into tiles, so a change of what a tile shows is one change here.
"""

from __future__ import annotations

from dataclasses import asdict

from edge_coat.console.series import Point
from edge_coat.events.convert import event_to_dict, event_to_pb
from edge_coat.events.log import StoredEvent
from edge_coat.messages import EnrollmentStatus, StreamStatus

#: tile states, most urgent first
STATES = ("ended", "gap", "enrolling", "no profile", "live")


def enrollment_json(status: EnrollmentStatus | None) -> dict:
    """An enrollment status for the page (without the profile's summary)."""
    if status is None:
        return {"state": "none"}
    out = asdict(status)
    out.pop("profile", None)
    return out


def tile(status: StreamStatus, point: Point | None, now: float, stale_after_s: float) -> dict:
    """One stream's tile: state, level, current reading, last window time, open episodes, enrollment."""
    anomaly = status.of_kind("anomaly")
    enrollment = enrollment_json(anomaly.enrollment if anomaly is not None else None)
    pipeline = status.details.get("pipeline") or {}
    tasks = list(status.tasks)
    last_ts = float(status.last_window_ts or 0.0)
    data = point.data if point is not None else {}
    if point is not None:
        last_ts = max(last_ts, point.end_ts)
        if "anomaly" in data and "anomaly" not in tasks:
            tasks.append("anomaly")
        if "emotion" in data and "emotion" not in tasks:
            tasks.append("emotion")
    if pipeline and not pipeline.get("active", True):
        state = "ended"
    elif (last_ts and now - last_ts > stale_after_s) or data.get("gap", 0.0) > 0:
        state = "gap"
    elif enrollment.get("state") == "enrolling":
        state = "enrolling"
    elif "anomaly" in tasks and enrollment.get("state") in ("none", "stale"):
        state = "no profile"
    else:
        state = "live"
    episodes = {d.kind: d.active_episode for d in status.detectors.values() if d.active_episode}
    reading = None
    if data.get("anomaly") is not None:
        reading = {"kind": "anomaly", "label": "anomaly score", "value": data["anomaly"],
                   "threshold": data.get("threshold")}
    elif data.get("emotion"):
        label, p = max(data["emotion"].items(), key=lambda kv: kv[1])
        reading = {"kind": "emotion", "label": label, "value": p}
    elif anomaly is not None and anomaly.last_score is not None:
        reading = {"kind": "anomaly", "label": "anomaly score", "value": anomaly.last_score}
    return {"stream_id": status.stream_id, "state": state,
            "level": data.get("level"), "reading": reading, "last_window_ts": last_ts or None,
            "windows": int(status.windows), "tasks": sorted(tasks), "episodes": episodes,
            "alarm": bool(episodes), "enrollment": enrollment,
            "model_only": bool(anomaly.details.get("model_only", False)) if anomaly is not None else False}


def tiles(statuses: list[StreamStatus], latest: dict[str, Point], allows, now: float,
          stale_after_s: float) -> list[dict]:
    """Tiles of the streams a caller may see: every stream with a status, and any with points only."""
    by_id = {s.stream_id: s for s in statuses}
    for sid in latest:
        by_id.setdefault(sid, StreamStatus(stream_id=sid))
    return [tile(by_id[sid], latest.get(sid), now, stale_after_s) for sid in sorted(by_id) if sid and allows(sid)]


def event_json(ev: StoredEvent) -> dict:
    """An event as the gRPC service sends it (same field names), as plain JSON."""
    return event_to_dict(event_to_pb(ev))
