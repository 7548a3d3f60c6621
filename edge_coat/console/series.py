"""Per-window timeline points for the console: recorded by the worker, read by the console.

Events are episodes (start, update, end); a timeline also needs what happened *between* them: every
window's input level, anomaly score and emotion probabilities. The worker records one small point
per window in the table ``console_points`` of the event log file (the same SQLite file that already
carries events, stream statuses and enrollment requests between ``worker`` and ``serve``), written in
one transaction per housekeeping round, and keeps ``console.history_s`` of them. The console, in
``serve`` or ``run``, reads them from that file: it needs no connection to the worker.

A point (``data`` column, JSON)::

    {"level": -23.1,          # window loudness, dBFS
     "gap": 0.0,              # seconds of missing audio inside the window
     "anomaly": 0.12,         # fused anomaly score in [0, 1]; null while enrolling or not scored
     "threshold": 0.5,        # the score at which an anomaly window counts as 'on'
     "enrolling": false,
     "emotion": {"angry": 0.1, "neutral": 0.7, ...},   # the model's probabilities for this window
     "emotion_score": 0.2,    # the smoothed negative-emotion score the detector tracks
     "emotion_threshold": 0.5}
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from edge_coat.messages import StreamStatus, WindowResult

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS console_points (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_ts REAL NOT NULL,
    stream_id TEXT NOT NULL,
    start_ts REAL NOT NULL,
    end_ts REAL NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS console_points_stream ON console_points (stream_id, end_ts);
"""

#: points kept in memory when the log cannot be written (the oldest are dropped beyond it)
MAX_PENDING = 100_000


@dataclass(frozen=True)
class Point:
    """One window of one stream, as the console draws it."""

    id: int
    stream_id: str
    start_ts: float
    end_ts: float
    data: dict

    def as_json(self) -> dict:
        return {"id": self.id, "stream_id": self.stream_id, "start_ts": self.start_ts, "end_ts": self.end_ts,
                **self.data}


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10.0)
    db.execute("PRAGMA busy_timeout=10000")
    db.executescript(_SCHEMA)
    return db


def _finite(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def window_point(result: WindowResult, status: StreamStatus, anomaly_threshold: float, emotion_threshold: float,
                 emotion_task: str = "emotion") -> dict:
    """The point of one window from the model's result and the detectors' status right after it.

    ``status`` is the detectors' stream status (``DetectorSet.stream_status``): the anomaly score of
    this window is its anomaly detector's ``last_score`` unless the stream is enrolling.
    """
    w = result.window
    anomaly = status.of_kind("anomaly")
    emotion = status.of_kind("emotion")
    enrolling = anomaly is not None and anomaly.enrollment is not None and anomaly.enrollment.state == "enrolling"
    point = {"level": _finite(w.rms_dbfs), "gap": float(w.gap_seconds), "enrolling": enrolling}
    if "anomaly" in w.tasks or "anomaly" in result.label_probs:
        point["anomaly"] = None if enrolling or anomaly is None else _finite(anomaly.last_score)
        point["threshold"] = anomaly_threshold
    probs = result.label_probs.get(emotion_task)
    if probs:
        point["emotion"] = {k: round(float(v), 4) for k, v in probs.items()}
        point["emotion_score"] = _finite(emotion.last_score) if emotion is not None else None
        point["emotion_threshold"] = emotion_threshold
    return point


class SeriesRecorder:
    """Worker side: collect a point per window (any thread), write them in batches (one thread)."""

    def __init__(self, db_path: str | Path, history_s: float, prune_every_s: float = 30.0) -> None:
        self.path = Path(db_path)
        self.history_s = history_s
        self.prune_every_s = prune_every_s
        self._db = _connect(self.path)
        self._lock = threading.Lock()
        self._pending: list[tuple] = []
        self._last_prune = 0.0
        self.dropped = 0
        self.written = 0

    def add(self, stream_id: str, start_ts: float, end_ts: float, point: dict) -> None:
        row = (stream_id, float(start_ts), float(end_ts), json.dumps(point, separators=(",", ":"), allow_nan=False))
        with self._lock:
            self._pending.append(row)
            if len(self._pending) > MAX_PENDING:
                del self._pending[: len(self._pending) - MAX_PENDING]
                self.dropped += 1

    def flush(self) -> int:
        """Write the collected points in one transaction (and prune now and then); return how many."""
        with self._lock:
            rows, self._pending = self._pending, []
        now = time.time()
        if rows:
            try:
                with self._db:
                    self._db.execute("BEGIN IMMEDIATE")
                    self._db.executemany("INSERT INTO console_points (created_ts, stream_id, start_ts, end_ts, data) "
                                         "VALUES (?, ?, ?, ?, ?)", [(now, *r) for r in rows])
            except sqlite3.Error:
                with self._lock:  # keep them for the next round (bounded by MAX_PENDING)
                    self._pending = rows + self._pending
                raise
            self.written += len(rows)
        if now - self._last_prune >= self.prune_every_s:
            self._last_prune = now
            self._db.execute("DELETE FROM console_points WHERE created_ts < ?", (now - self.history_s,))
        return len(rows)

    def close(self) -> None:
        self._db.close()


class SeriesReader:
    """Console side: read points back (thread-safe; its own connection to the log file)."""

    def __init__(self, db_path: str | Path) -> None:
        self._db = _connect(Path(db_path))
        self._lock = threading.Lock()

    def head(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'console_points'").fetchone()
        return row[0] if row else 0  # the newest id ever given, even when pruning emptied the table

    def stream(self, stream_id: str, since_ts: float, limit: int = 20_000) -> list[Point]:
        """A stream's points whose window ends at or after ``since_ts``, oldest first (the newest ``limit``)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, stream_id, start_ts, end_ts, data FROM console_points WHERE stream_id = ? AND end_ts >= ? "
                "ORDER BY end_ts DESC LIMIT ?", (stream_id, since_ts, limit)).fetchall()
        return [_point(r) for r in reversed(rows)]

    def after(self, last_id: int, limit: int = 5000) -> list[Point]:
        """Points written after id ``last_id``, in id order (the live feed)."""
        with self._lock:
            rows = self._db.execute("SELECT id, stream_id, start_ts, end_ts, data FROM console_points WHERE id > ? "
                                    "ORDER BY id LIMIT ?", (last_id, limit)).fetchall()
        return [_point(r) for r in rows]

    def latest(self) -> dict[str, Point]:
        """The newest point of every stream that has one."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, stream_id, start_ts, end_ts, data FROM console_points WHERE id IN "
                "(SELECT max(id) FROM console_points GROUP BY stream_id)").fetchall()
        return {r[1]: _point(r) for r in rows}

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _point(row) -> Point:
    ident, stream, start, end, data = row
    return Point(ident, stream, start, end, json.loads(data))
