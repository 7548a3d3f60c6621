"""The durable log on a real SQLite file: ids, persistence, retention, cursor errors."""

from __future__ import annotations

import pytest

from edge_coat.events.config import RetentionConfig
from edge_coat.events.log import CursorAhead, CursorExpired, EventLog

from .conftest import record


def test_ids_are_cursors_and_survive_reopen(tmp_path):
    log = EventLog(tmp_path / "e.db")
    stored = log.append_many([record(n=i) for i in range(5)])
    assert [s.id for s in stored] == [1, 2, 3, 4, 5]
    log.close()
    log = EventLog(tmp_path / "e.db")
    assert log.head() == 5
    assert [e.id for e in log.read_after(2)] == [3, 4, 5]
    back = log.read_after(0, limit=1)[0].record
    assert back == record(n=0)  # round trip, evidence included
    assert log._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_retention_by_count_bytes_and_age_with_clear_cursor_errors(tmp_path):
    log = EventLog(tmp_path / "e.db", RetentionConfig(max_events=10))
    log.append_many([record(n=i) for i in range(30)])
    assert log.prune() == 20
    with pytest.raises(CursorExpired, match=r"events 6\.\.20 \(15 events\) were dropped; the oldest retained event is 21"):
        log.read_after(5)
    assert [e.id for e in log.read_after(20)][:2] == [21, 22]  # exactly at the boundary is fine
    assert len(log.read_after(0)) == 10  # 0 = everything retained
    with pytest.raises(CursorAhead, match="ahead of the newest event 30"):
        log.read_after(31)
    # ids are never reused after deletion
    assert log.append(record(n=99)).id == 31

    log.retention = RetentionConfig(max_bytes=1024)
    log.prune()
    stats = log.stats()
    assert stats["bytes"] <= 1024 and stats["events"] >= 1 and stats["head"] == 31

    log.retention = RetentionConfig(max_age_s=60)
    import time

    assert log.prune(now=time.time() + 3600) == stats["events"]
    assert log.stats()["events"] == 0 and log.head() == 31
    with pytest.raises(CursorExpired):
        log.read_after(25)


def test_bad_records_are_refused_with_a_clear_error(tmp_path):
    log = EventLog(tmp_path / "e.db")
    with pytest.raises(ValueError, match="phase must be one of"):
        log.append(record(phase="middle"))
    with pytest.raises(ValueError, match=r"score must be in \[0, 1\]"):
        log.append(record(score=3.0))
    with pytest.raises(ValueError, match="EventRecord"):
        log.append({"stream_id": "x"})
    assert log.head() == 0
