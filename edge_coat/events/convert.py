"""Conversions between the stages' Python objects and the edge_coat.v1 protobuf messages."""

from __future__ import annotations

import math
import time

from google.protobuf import json_format, struct_pb2

from edge_coat.events.log import StoredEvent
from edge_coat.messages import DetectorStatus, EnrollmentStatus, StreamStatus
from edge_coat.v1 import events_pb2 as pb

# evidence keys that have typed fields in pb.Evidence; everything else goes to ``details``
_TYPED = {"window", "scores", "readings", "tags", "gap_seconds", "model"}


def to_struct(data: dict) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(_plain(data))
    return s


def event_to_pb(ev: StoredEvent) -> pb.Event:
    r = ev.record
    e = r.evidence or {}
    model = e.get("model") or {}
    evidence = pb.Evidence(
        window_start_ts=float((e.get("window") or {}).get("start_ts", r.window_start_ts)),
        window_end_ts=float((e.get("window") or {}).get("end_ts", r.window_end_ts)),
        scores={k: float(v) for k, v in (e.get("scores") or {}).items() if _num(v)},
        readings={k: float(v) for k, v in (e.get("readings") or {}).items() if _num(v)},
        tags=[pb.Tag(label=str(t[0]), score=float(t[1])) for t in e.get("tags") or ()],
        gap_seconds=float(e.get("gap_seconds", 0.0)),
        model_name=str(model.get("name", "")),
        model_version=str(model.get("version", "")),
        details=to_struct({k: v for k, v in e.items() if k not in _TYPED}),
    )
    return pb.Event(id=ev.id, stream_id=r.stream_id, kind=r.kind, phase=r.phase, episode_id=r.episode_id,
                    label=r.label, score=r.score, window_start_ts=r.window_start_ts,
                    window_end_ts=r.window_end_ts, created_ts=ev.created_ts, text=r.text, evidence=evidence)


def encode_entry(event: pb.Event) -> bytes:
    """``event`` serialized as one ``events`` entry of a SubscribeResponse (tag, length, bytes).

    The protobuf wire format defines a repeated message field as its entries one after another, and a
    concatenation of serialized messages parses as their merge. So a Subscribe response can be put
    together as ``b"".join(entries) + encode_response(...)`` from entries serialized once per event,
    byte-identical to serializing the whole message (tests/events/test_convert.py checks this). The
    protobuf API itself has no way to add an already-serialized sub-message to a repeated field.
    """
    return pb.SubscribeResponse(events=(event,)).SerializeToString()


def encode_response(entries: bytes, cursor: int, head: int, heartbeat: bool = False,
                    server_time: float | None = None) -> bytes:
    """A serialized SubscribeResponse: pre-encoded ``entries`` (see :func:`encode_entry`) plus its scalars."""
    tail = pb.SubscribeResponse(cursor=cursor, head=head, heartbeat=heartbeat,
                                server_time=time.time() if server_time is None else server_time)
    return entries + tail.SerializeToString()


def event_to_dict(event: pb.Event) -> dict:
    """A pb.Event as a JSON-ready dict (field names as in the proto)."""
    return json_format.MessageToDict(event, preserving_proto_field_name=True, always_print_fields_with_no_presence=True,
                                   unquote_int64_if_possible=True)


def enrollment_to_pb(status: EnrollmentStatus) -> pb.EnrollmentStatus:
    return pb.EnrollmentStatus(
        stream_id=status.stream_id, state=status.state, collected=status.collected,
        target_windows=status.target_windows, target_seconds=status.target_seconds, threshold=status.threshold,
        message=status.message if not status.last_error else f"{status.message} (last error: {status.last_error})")


def detector_status_to_pb(status: DetectorStatus) -> pb.DetectorStatus:
    out = pb.DetectorStatus(kind=status.kind, active_episode=status.active_episode, label=status.label,
                            windows=status.windows, note=status.note, details=to_struct(status.details))
    if status.last_score is not None and math.isfinite(status.last_score):
        out.last_score = status.last_score
    if status.enrollment is not None:
        out.enrollment.CopyFrom(enrollment_to_pb(status.enrollment))
    return out


def stream_status_to_pb(status: StreamStatus) -> pb.StreamStatus:
    """A `messages.StreamStatus` -> pb.StreamStatus (the deprecated per-kind fields filled for old clients)."""
    anomaly = status.detectors.get("anomaly")
    emotion = status.detectors.get("emotion")
    return pb.StreamStatus(
        stream_id=status.stream_id, last_window_ts=status.last_window_ts, windows=status.windows,
        model_name=status.model_name, model_version=status.model_version,
        enrollment=enrollment_to_pb(status.enrollment()),
        anomaly_episode=anomaly.active_episode if anomaly else "",
        emotion_episode=emotion.active_episode if emotion else "",
        model_only=bool(anomaly.details.get("model_only", True)) if anomaly else True,
        updated_ts=status.updated_ts, details=to_struct(status.details),
        detectors={name: detector_status_to_pb(d) for name, d in status.detectors.items()}, tasks=status.tasks)


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _plain(value):
    """Make a value Struct-safe: finite floats, lists for tuples/sets, str for anything else."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if hasattr(value, "tolist"):
        return _plain(value.tolist())
    return str(value)
