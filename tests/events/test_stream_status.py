"""Typed stream statuses through the shared log (real SQLite) and into the proto: a round trip keeps every
field, a row another version wrote is still listed, and the per-detector map carries any detector."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace

from edge_coat.events.control import LogStreamControl
from edge_coat.events.convert import stream_status_to_pb
from edge_coat.events.log import EventLog
from edge_coat.messages import DetectorStatus, EnrollmentStatus, StreamStatus


def status() -> StreamStatus:
    enr = EnrollmentStatus("press-1", state="ready", threshold=2.5, message="normal profile of 40 windows",
                           profile={"method": "knn", "n": 40})
    return StreamStatus(
        stream_id="press-1", last_window_ts=1e9, windows=42, tasks=("anomaly", "loud"), model_name="coat-tiny",
        model_version="0.2.0",
        detectors={"anomaly": DetectorStatus("anomaly", active_episode="press-1/anomaly-1", label="abnormal",
                                             last_score=0.8, windows=42, enrollment=enr,
                                             details={"model_only": False}),
                   "kiln": DetectorStatus("loud", last_score=None, windows=42, details={"threshold_dbfs": -20.0})},
        details={"pipeline": {"windows_processed": 42, "active": True}})


def test_a_status_round_trips_through_the_shared_log(tmp_path):
    log = EventLog(tmp_path / "events.db")
    try:
        log.put_stream_status(status())
        (got,) = LogStreamControl(log).list_streams()
    finally:
        log.close()
    assert got.updated_ts > 0
    assert got == replace(status(), updated_ts=got.updated_ts)
    assert got.enrollment().state == "ready" and got.of_kind("loud").details == {"threshold_dbfs": -20.0}


def test_a_row_in_another_shape_is_listed_by_its_stream_id(tmp_path, caplog):
    log = EventLog(tmp_path / "events.db")
    log.put_stream_status(status())
    log.close()
    db = sqlite3.connect(tmp_path / "events.db")
    # a status as the previous version wrote it (per-kind keys, no `detectors`), and one with a newer key
    db.execute("INSERT OR REPLACE INTO stream_status VALUES (?, ?, ?)",
               ("old-1", 5.0, json.dumps({"stream_id": "old-1", "windows": "many", "anomaly": {"model_only": True},
                                          "detectors": [1, 2]})))
    db.execute("INSERT OR REPLACE INTO stream_status VALUES (?, ?, ?)",
               ("new-1", 6.0, json.dumps({"stream_id": "new-1", "windows": 3, "future_field": {"x": 1}})))
    db.commit()
    db.close()
    log = EventLog(tmp_path / "events.db")
    try:
        statuses = {s.stream_id: s for s in log.stream_statuses()}
    finally:
        log.close()
    assert statuses["old-1"] == StreamStatus(stream_id="old-1", updated_ts=5.0)
    assert "cannot be read" in caplog.text
    assert statuses["new-1"].windows == 3 and statuses["press-1"].windows == 42


def test_the_proto_carries_every_detector_and_the_old_fields():
    pb = stream_status_to_pb(status())
    assert set(pb.detectors) == {"anomaly", "kiln"}
    kiln = pb.detectors["kiln"]
    assert kiln.kind == "loud" and not kiln.HasField("last_score") and not kiln.HasField("enrollment")
    anomaly = pb.detectors["anomaly"]
    assert anomaly.last_score == 0.8 and anomaly.enrollment.threshold == 2.5
    # the deprecated per-kind fields are still filled for clients built on the previous proto
    assert pb.anomaly_episode == "press-1/anomaly-1" and pb.emotion_episode == "" and not pb.model_only
    assert pb.enrollment.state == "ready" and list(pb.tasks) == ["anomaly", "loud"]
