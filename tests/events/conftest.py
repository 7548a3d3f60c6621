"""Fixtures for event-service tests: a real SQLite file and an in-process gRPC server on port 0."""

from __future__ import annotations

import json

import pytest

from edge_coat.events.config import EventsConfig, RetentionConfig
from edge_coat.events.log import EventLog
from edge_coat.events.service import EventServer
from edge_coat.messages import EventRecord

ADMIN, AGENT = "admin-token-0123456789abcdef", "agent-token-0123456789abcdef"


def record(stream: str = "press-1", kind: str = "anomaly", score: float = 0.9, phase: str = "start",
           n: int = 0) -> EventRecord:
    return EventRecord(stream_id=stream, kind=kind, phase=phase, episode_id=f"{stream}/{kind}-{n}",
                       label="abnormal" if kind == "anomaly" else "angry", score=score, window_start_ts=1000.0 + n,
                       window_end_ts=1002.0 + n, text=f"event {n} on {stream}",
                       evidence={"scores": {"score": score}, "readings": {"pitch_hz": 120.0},
                                 "tags": [["Engine", 0.7]], "gap_seconds": 0.0,
                                 "model": {"name": "coat-tiny", "version": "0.1"}, "window": {"index": n}})


@pytest.fixture
def tokens_file(tmp_path):
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps({"clients": [
        {"name": "ops", "token": ADMIN, "streams": ["*"], "control": True},
        {"name": "agent", "token": AGENT, "streams": ["call-*"]},
    ]}))
    return path


@pytest.fixture
def make_server(tmp_path, tokens_file):
    """make_server(**events_config_overrides) -> started EventServer; stopped at teardown."""
    servers = []

    def make(control=None, **overrides) -> EventServer:
        cfg = dict(db_path=tmp_path / "events.db", listen="127.0.0.1:0", insecure=True, tokens_file=tokens_file,
                   heartbeat_s=0.3, poll_interval_s=0.01,
                   retention=RetentionConfig(prune_interval_s=3600))
        cfg.update(overrides)
        server = EventServer(EventsConfig(**cfg), control=control)
        server.start()
        servers.append(server)
        return server

    yield make
    for s in servers:
        s.stop(grace=0.2)


@pytest.fixture
def writer(tmp_path):
    """A second connection to the same log file, as the worker process would hold."""
    log = EventLog(tmp_path / "events.db")
    yield log
    log.close()
