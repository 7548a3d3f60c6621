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


def test_a_capture_that_restarts_as_a_new_run_ends_what_the_last_run_left_open(tmp_path):
    """Defect 7's other half: a capture that cannot resume (no state, the file changed) starts a new
    sender epoch; the detectors end the previous run's open episode ('new run') before the new one."""
    import numpy as np

    from edge_coat.transport.config import SenderConfig
    from edge_coat.transport.sender import Sender
    from tests.transport.helpers import FAST_LINK

    cfg = validate_config({
        "worker": {"receiver": {"bind": "tcp://127.0.0.1:0", "link": {"heartbeat_s": 0.1, "liveness": 3}},
                   "default_stream": {"window_s": 1.0, "hop_s": 0.5, "tasks": {"anomaly": {"min_rms_dbfs": -90}}},
                   "batch": {"max_wait_s": 0.01}},
        "events": {"db_path": str(tmp_path / "events.db"), "listen": "127.0.0.1:0", "insecure": True},
        "detectors": {"anomaly": {"profile_dir": str(tmp_path / "profiles"), "model_weight": 1.0,
                                  "episode": {"on_windows": 2, "off_windows": 2, "cooldown_s": 0.0}}},
        "metrics": {"enabled": False},
    })
    loud = (0.3 * np.random.default_rng(0).standard_normal(16000 * 4)).astype(np.float32)
    svc = Service(cfg, roles=("worker",), stage=LoudnessStage()).start()
    try:
        for run in range(2):  # two capture processes, one after the other, each a new epoch
            sender = Sender(SenderConfig(endpoint=svc.worker_endpoint, link=FAST_LINK)).start()
            for i in range(0, len(loud), 1600):
                sender.submit("press-6", loud[i:i + 1600], 5000.0 + 100 * run + i / 16000)
            deadline = time.monotonic() + 20  # run 0: its start; run 1: the end of run 0's and a new start
            while svc.log.head() < 2 * run + 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            sender.close()  # no end-of-stream: as a capture process that was killed
    finally:
        svc.stop()
    log = EventLog(tmp_path / "events.db")
    events = [e.record for e in log.read_after(0)]
    log.close()
    phases = [(e.phase, e.evidence.get("reason")) for e in events]
    assert phases[:3] == [("start", None), ("end", "new run"), ("start", None)], phases
    assert events[0].episode_id == events[1].episode_id != events[2].episode_id
