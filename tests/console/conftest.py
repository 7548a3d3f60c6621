"""Fixtures for the console: tokens, a console over a real log file with a stand-in worker control."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

from edge_coat.console.config import ConsoleConfig
from edge_coat.console.series import SeriesRecorder
from edge_coat.console.server import ConsoleServer
from edge_coat.events.config import EventsConfig
from edge_coat.events.log import EventLog
from edge_coat.messages import EnrollmentStatus, EventRecord, StreamStatus
from tests.console.statuses import typed_status

OPS = "ops-token-0123456789abcdef"        # every stream, may enroll and acknowledge
VIEWER = "viewer-token-0123456789abcdef"  # every stream, read-only
DESK = "desk-token-0123456789abcdef"      # desk-* only, may acknowledge


def tokens(path) -> object:
    path.write_text(json.dumps({"clients": [
        {"name": "ops", "token": OPS, "streams": ["*"], "control": True, "ack": True},
        {"name": "viewer", "token": VIEWER, "streams": ["*"]},
        {"name": "desk-lead", "token": DESK, "streams": ["desk-*"], "ack": True},
    ]}))
    return path


class FakeControl:
    """The worker side as the console sees it: statuses, and enrollment requests recorded."""

    def __init__(self) -> None:
        self.requests: list = []
        self.streams = {
            "pump-1": {"stream_id": "pump-1", "windows": 40, "tasks": ["anomaly"], "last_window_ts": time.time(),
                       "anomaly": {"enrollment": {"stream_id": "pump-1", "state": "ready", "threshold": 1.2},
                                   "active_episode": "pump-1/anomaly-1", "last_score": 0.9},
                       "emotion": {}, "pipeline": {"active": True}},
            "desk-1": {"stream_id": "desk-1", "windows": 30, "tasks": ["emotion"], "last_window_ts": time.time(),
                       "anomaly": {"enrollment": {"stream_id": "desk-1", "state": "none"}},
                       "emotion": {"active_episode": ""}, "pipeline": {"active": True}},
        }

    def list_streams(self) -> list[StreamStatus]:
        now = time.time()
        return [typed_status({**s, "last_window_ts": now}) for s in self.streams.values()]

    def start_enrollment(self, stream_id, windows=None, seconds=None) -> EnrollmentStatus:
        if windows is not None and windows < 3:
            raise ValueError(f"enrollment needs at least 3 windows; got {windows}")
        self.requests.append((stream_id, windows))
        return EnrollmentStatus(stream_id, state="enrolling", collected=0, target_windows=windows or 0)

    def stop_enrollment(self, stream_id, commit=True) -> EnrollmentStatus:
        return EnrollmentStatus(stream_id, state="ready")

    def get_enrollment(self, stream_id) -> EnrollmentStatus:
        return EnrollmentStatus(stream_id, state="ready")


def event(stream: str, kind: str, phase: str, n: int, ts: float, score: float = 0.9) -> EventRecord:
    return EventRecord(stream_id=stream, kind=kind, phase=phase, episode_id=f"{stream}/{kind}-{n}",
                       label="abnormal" if kind == "anomaly" else "angry", score=score, window_start_ts=ts,
                       window_end_ts=ts + 1.0, text=f"{stream}: {kind} {phase} {n}",
                       evidence={"scores": {"score": score}, "readings": {"loudness_dbfs": -20.0}})


@pytest.fixture
def console(tmp_path):
    """A started ConsoleServer over a log with a few events and timeline points; yields (server, log, control)."""
    db = tmp_path / "events.db"
    log = EventLog(db)
    now = time.time()
    log.append_many([event("pump-1", "anomaly", "start", 1, now - 20), event("desk-1", "emotion", "start", 1, now - 15),
                     event("desk-1", "emotion", "end", 1, now - 5)])
    rec = SeriesRecorder(db, 3600)
    for i in range(30):
        ts = now - 30 + i
        rec.add("pump-1", ts - 1, ts, {"level": -20.0, "gap": 0.0, "anomaly": 0.1 if i < 10 else 0.9, "threshold": 0.5,
                                       "enrolling": False})
        rec.add("desk-1", ts - 1, ts, {"level": -30.0, "gap": 0.0, "emotion": {"angry": 0.6, "neutral": 0.4},
                                       "emotion_score": 0.6, "emotion_threshold": 0.5})
    rec.flush()
    rec.close()
    control = FakeControl()
    events = EventsConfig(db_path=db, listen="127.0.0.1:0", insecure=True, tokens_file=tokens(tmp_path / "tokens.json"))
    server = ConsoleServer(ConsoleConfig(enabled=True, listen="127.0.0.1:0", refresh_s=0.2), events, control=control)
    server.start()
    yield server, log, control
    server.stop()
    log.close()


def request(port: int, path: str, *, token: str | None = None, body=None, headers=None, method=None):
    """(status, headers, parsed JSON or text) of one request to the console on loopback."""
    hdrs = dict(headers or {})
    if token:
        hdrs["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        hdrs["Content-Type"] = "application/json"
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, headers=hdrs, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            status, h, raw = r.status, r.headers, r.read()
    except urllib.error.HTTPError as exc:
        status, h, raw = exc.code, exc.headers, exc.read()
    ctype = h.get("Content-Type", "")
    return status, h, (json.loads(raw) if ctype.startswith("application/json") else raw.decode())
