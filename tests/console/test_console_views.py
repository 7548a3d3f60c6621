"""Tile states and timeline points: what the console makes of statuses and window results."""

from __future__ import annotations

import time

import numpy as np

from edge_coat.console.series import Point, SeriesReader, SeriesRecorder, window_point
from edge_coat.console.views import tile
from edge_coat.messages import StreamStatus, Window, WindowResult
from tests.console.statuses import typed_status

NOW = 1_000_000.0


def status(**kw) -> StreamStatus:
    base = {"stream_id": "s", "windows": 5, "tasks": ["anomaly"], "last_window_ts": NOW - 1,
            "anomaly": {"enrollment": {"state": "ready"}, "active_episode": "", "last_score": 0.2},
            "emotion": {}, "pipeline": {"active": True}}
    base.update(kw)
    return typed_status(base)


def test_tile_states_most_urgent_first():
    assert tile(status(), None, NOW, 10)["state"] == "live"
    assert tile(status(pipeline={"active": False}), None, NOW, 10)["state"] == "ended"
    assert tile(status(last_window_ts=NOW - 60), None, NOW, 10)["state"] == "gap"
    gap_point = Point(1, "s", NOW - 2, NOW - 1, {"gap": 0.4, "level": -20.0})
    assert tile(status(), gap_point, NOW, 10)["state"] == "gap"
    enrolling = status(anomaly={"enrollment": {"state": "enrolling", "collected": 3}})
    assert tile(enrolling, None, NOW, 10)["state"] == "enrolling"
    assert tile(status(anomaly={"enrollment": {"state": "none"}}), None, NOW, 10)["state"] == "no profile"
    assert tile(status(tasks=["emotion"], anomaly={"enrollment": {"state": "none"}}), None, NOW, 10)["state"] == "live"
    red = tile(status(anomaly={"enrollment": {"state": "ready"}, "active_episode": "s/anomaly-1"}), None, NOW, 10)
    assert red["alarm"] and red["episodes"] == {"anomaly": "s/anomaly-1"}


def result(tasks, probs) -> WindowResult:
    w = Window("s", 0, 0, NOW - 1, NOW, np.zeros(16000, np.float32), gap_seconds=0.0, rms_dbfs=-21.5, tasks=tasks)
    return WindowResult(window=w, label_probs=probs)


def test_window_point_and_recorder_round_trip(tmp_path):
    p = window_point(result(("anomaly",), {"anomaly": {"normal": 0.3, "abnormal": 0.7}}),
                     status(anomaly={"enrollment": {"state": "ready"}, "last_score": 0.81}), 0.5, 0.6)
    assert p == {"level": -21.5, "gap": 0.0, "enrolling": False, "anomaly": 0.81, "threshold": 0.5}
    p2 = window_point(result(("anomaly",), {}), status(anomaly={"enrollment": {"state": "enrolling"},
                                                                "last_score": 0.81}), 0.5, 0.6)
    assert p2["anomaly"] is None and p2["enrolling"]  # enrollment windows are declared normal: no score
    p3 = window_point(result(("emotion",), {"emotion": {"angry": 0.25, "neutral": 0.75}}),
                      status(emotion={"last_score": 0.3}), 0.5, 0.6)
    assert p3["emotion"] == {"angry": 0.25, "neutral": 0.75} and p3["emotion_score"] == 0.3 and "anomaly" not in p3
    rec = SeriesRecorder(tmp_path / "events.db", history_s=60, prune_every_s=0)
    rec.add("s", NOW - 1, NOW, p)
    rec.add("t", NOW - 1, NOW, p3)
    assert rec.flush() == 2
    reader = SeriesReader(tmp_path / "events.db")
    assert [q.data["anomaly"] for q in reader.stream("s", 0)] == [0.81]
    assert set(reader.latest()) == {"s", "t"} and [q.stream_id for q in reader.after(1)] == ["t"]
    rec.history_s = 0.0  # everything is older than the history now: pruned at the next flush
    time.sleep(0.01)
    rec.flush()
    assert reader.head() == 2 and reader.stream("s", 0) == []
    rec.close()
    reader.close()
