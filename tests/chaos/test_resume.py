"""Episodes a killed worker left open are resumed by the next one, or ended as 'interrupted' when
their stream does not come back (issue 15, defect 6); in-process, over a real log file."""

from __future__ import annotations

import time

from edge_coat.config import validate_config
from edge_coat.events.log import EventLog
from edge_coat.messages import EventRecord
from edge_coat.service import Service
from tests.chaos.worker_proc import LoudnessStage


def _open_episode(db, stream: str = "press-4") -> EventRecord:
    start = EventRecord(stream_id=stream, kind="anomaly", phase="start", episode_id=f"{stream}/anomaly-1000-1",
                        label="abnormal", score=0.9, window_start_ts=1000.0, window_end_ts=1001.0, text="start",
                        evidence={"episode_started_ts": 999.5, "window": {"index": 7}})
    log = EventLog(db)
    log.append(start)
    assert [e["episode_id"] for e in log.open_episodes()] == [start.episode_id]
    log.close()
    return start


def test_an_episode_whose_stream_never_comes_back_ends_as_interrupted(tmp_path):
    start = _open_episode(tmp_path / "events.db")
    cfg = validate_config({
        "worker": {"receiver": {"bind": "tcp://127.0.0.1:0"}},
        "events": {"db_path": str(tmp_path / "events.db"), "listen": "127.0.0.1:0", "insecure": True},
        "detectors": {"anomaly": {"profile_dir": str(tmp_path / "profiles")}},
        "metrics": {"enabled": False},
        "service": {"resume_timeout_s": 0.3, "status_interval_s": 0.1},
    })
    svc = Service(cfg, roles=("worker",), stage=LoudnessStage()).start()
    try:
        deadline = time.monotonic() + 10
        while svc.log.head() < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        svc.stop()
    log = EventLog(tmp_path / "events.db")
    events = [e.record for e in log.read_after(0)]
    assert [(e.phase, e.episode_id) for e in events] == [("start", start.episode_id), ("end", start.episode_id)]
    assert events[1].evidence["reason"] == "interrupted" and "interrupted" in events[1].text
    assert log.open_episodes() == []
    log.close()


def test_a_graceful_stop_ends_resumed_episodes_too(tmp_path):
    start = _open_episode(tmp_path / "events.db", "press-5")
    cfg = validate_config({
        "worker": {"receiver": {"bind": "tcp://127.0.0.1:0"}},
        "events": {"db_path": str(tmp_path / "events.db"), "listen": "127.0.0.1:0", "insecure": True},
        "detectors": {"anomaly": {"profile_dir": str(tmp_path / "profiles")}},
        "metrics": {"enabled": False},
    })
    Service(cfg, roles=("worker",), stage=LoudnessStage()).start().stop()
    log = EventLog(tmp_path / "events.db")
    assert [(e.record.phase, e.record.evidence.get("reason")) for e in log.read_after(0)] == [
        ("start", None), ("end", "interrupted")]
    assert start.episode_id in log.read_after(1)[0].record.episode_id
    log.close()
