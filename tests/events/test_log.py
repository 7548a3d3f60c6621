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


def test_log_files_are_private_and_a_folder_or_junk_is_named(tmp_path):
    """Issue 15, defects 14 and 4: events.db, -wal and -shm are 0600 (0640 when group-readable), a
    wider existing file is narrowed, and a folder or a file that is not SQLite raises EventLogError."""
    import os
    import stat

    from edge_coat.events.log import EventLogError

    old = os.umask(0o022)  # the usual umask, which would leave 0644
    try:
        log = EventLog(tmp_path / "events.db")
        log.append(record("a"))
        names = ["events.db", "events.db-wal", "events.db-shm"]
        assert all((tmp_path / n).exists() for n in names)
        assert {n: stat.S_IMODE((tmp_path / n).stat().st_mode) for n in names} == {n: 0o600 for n in names}
        log.close()
        wide = tmp_path / "wide.db"
        wide.touch(mode=0o644)
        os.chmod(wide, 0o644)
        EventLog(wide).close()
        assert stat.S_IMODE(wide.stat().st_mode) == 0o600
        EventLog(tmp_path / "group.db", file_mode=0o640).close()
        assert stat.S_IMODE((tmp_path / "group.db").stat().st_mode) == 0o640
    finally:
        os.umask(old)
    (tmp_path / "folder.db").mkdir()
    with pytest.raises(EventLogError, match="is a folder"):
        EventLog(tmp_path / "folder.db")
    (tmp_path / "junk.db").write_bytes(os.urandom(4096))
    with pytest.raises(EventLogError, match="is not an event log"):
        EventLog(tmp_path / "junk.db")
