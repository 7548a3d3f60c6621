"""The durable event log: SQLite in WAL mode, one real file shared by writers and readers.

Why a shared file and not a Publish RPC between ``worker`` and ``serve``: the worker's events are
durable the moment the detector emits them, whether or not ``serve`` is up (a Publish RPC would need
its own retry buffer on the worker side, i.e. a second log); SQLite's WAL gives one writer and any
number of readers across processes on the same host with snapshot reads; and there is no extra
network surface or credential to protect. ``serve`` notices new rows by polling ``PRAGMA
data_version`` (a cheap counter that changes when another connection commits). The limit: worker
and serve must share a local filesystem (never NFS), which is the deployment the project targets.
The same file also carries each stream's status (written by the worker) and enrollment requests
(written by serve, applied by the worker): see :mod:`edge_coat.events.control`.

Ids are ``INTEGER PRIMARY KEY AUTOINCREMENT``: never reused, even after retention deletes the
newest rows, so a cursor always means the same event. Retention deletes a *prefix* of ids and
records the last deleted id, so a cursor older than retention is detected exactly.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

from edge_coat.events.config import RetentionConfig
from edge_coat.messages import EventRecord, StreamStatus

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_ts REAL NOT NULL,
    stream_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    phase TEXT NOT NULL,
    episode_id TEXT NOT NULL,
    label TEXT NOT NULL,
    score REAL NOT NULL,
    window_start_ts REAL NOT NULL,
    window_end_ts REAL NOT NULL,
    text TEXT NOT NULL,
    evidence TEXT NOT NULL,
    size INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('pruned_through', 0), ('bytes', 0), ('pruned_count', 0);
CREATE TRIGGER IF NOT EXISTS events_bytes_add AFTER INSERT ON events
    BEGIN UPDATE meta SET value = value + NEW.size WHERE key = 'bytes'; END;
CREATE TRIGGER IF NOT EXISTS events_bytes_del AFTER DELETE ON events
    BEGIN UPDATE meta SET value = value - OLD.size WHERE key = 'bytes'; END;
CREATE TABLE IF NOT EXISTS stream_status (
    stream_id TEXT PRIMARY KEY, updated_ts REAL NOT NULL, status TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS open_episodes (
    episode_id TEXT PRIMARY KEY, stream_id TEXT NOT NULL, kind TEXT NOT NULL, label TEXT NOT NULL,
    peak REAL NOT NULL, started_ts REAL NOT NULL, last_ts REAL NOT NULL, event_id INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS commands (
    id INTEGER PRIMARY KEY AUTOINCREMENT, created_ts REAL NOT NULL, stream_id TEXT NOT NULL,
    action TEXT NOT NULL, params TEXT NOT NULL, done_ts REAL, result TEXT
);
"""

_COLUMNS = ("id, created_ts, stream_id, kind, phase, episode_id, label, score, window_start_ts, window_end_ts, "
            "text, evidence")
_PHASES = ("start", "update", "end")


@dataclass(frozen=True)
class StoredEvent:
    """An EventRecord as stored: ``id`` is its cursor, ``created_ts`` when the log stored it."""

    id: int
    created_ts: float
    record: EventRecord


class CursorError(ValueError):
    """A resume cursor the log cannot serve."""


class CursorExpired(CursorError):
    """The events right after the cursor were dropped by retention."""

    def __init__(self, cursor: int, pruned_through: int, oldest: int) -> None:
        self.cursor, self.pruned_through, self.oldest = cursor, pruned_through, oldest
        super().__init__(
            f"cursor {cursor} is older than retention: events {cursor + 1}..{pruned_through} "
            f"({pruned_through - cursor} events) were dropped; the oldest retained event is "
            f"{oldest or 'none'}. Resume with from_cursor={pruned_through} to accept the loss."
        )


class CursorAhead(CursorError):
    """The cursor is past the newest event: it belongs to another log."""

    def __init__(self, cursor: int, head: int) -> None:
        self.cursor, self.head = cursor, head
        super().__init__(f"cursor {cursor} is ahead of the newest event {head}: is this the same event log?")


def record_size(record: EventRecord, evidence_json: str) -> int:
    return len(evidence_json) + len(record.text) + len(record.stream_id) + len(record.episode_id) + 64


class EventLogError(OSError):
    """The event log file cannot be opened or is not an event log (names the file and the fix)."""


#: Mode of the event log file (and, as SQLite copies it, of its -wal and -shm files): the events name
#: streams and describe what happened on them, so only the service's user reads them by default.
FILE_MODE = 0o600


def secure_file(path: Path, mode: int = FILE_MODE) -> None:
    """Create ``path`` empty with ``mode`` when absent; narrow its mode to ``mode`` when it is wider
    (a file another tool created 0644). The process's umask can only narrow it further."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        os.close(fd)
        return
    except FileExistsError:
        pass
    current = path.stat().st_mode & 0o777
    if current & ~mode:
        try:
            os.chmod(path, current & mode)
            logger.warning("%s was readable beyond mode %o (%o): narrowed", path, mode, current)
        except PermissionError:
            logger.warning("%s has mode %o (wider than %o) and is not ours to change", path, current, mode)


class EventLog:
    """Append-only event log over one SQLite file. Thread-safe; several processes may open it.

    The file (and the -wal/-shm files SQLite creates beside it with the same mode) is made
    ``file_mode`` (0600; 0640 to let a group read it). A path that is a folder, or a file that is not
    an SQLite event log, raises :class:`EventLogError` naming it."""

    def __init__(self, path: str | Path, retention: RetentionConfig | None = None, synchronous: str = "NORMAL",
                 file_mode: int = FILE_MODE):
        self.path = Path(path)
        self.retention = retention or RetentionConfig()
        self._lock = threading.Lock()
        if self.path.is_dir():
            raise EventLogError(f"the event log {self.path} is a folder; give a file path such as "
                                f"{self.path / 'events.db'}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            secure_file(self.path, file_mode)
            for suffix in ("-wal", "-shm"):
                side = self.path.with_name(self.path.name + suffix)
                if side.exists():
                    secure_file(side, file_mode)
        except OSError as exc:
            raise EventLogError(f"cannot create the event log {self.path}: {exc.strerror or exc}; check the "
                                "folder exists and is writable by this user") from exc
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'FULL' else 'NORMAL'}")
            self._db.execute("PRAGMA busy_timeout=10000")
            with self._lock:
                self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise EventLogError(f"{self.path} is not an event log ({exc}); point events.db_path / --db at the "
                                "event log file, or at a new path to start an empty one") from None
        except sqlite3.Error as exc:
            raise EventLogError(f"cannot open the event log {self.path}: {exc}") from None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ------------------------------------------------------------------ writing
    def append(self, record: EventRecord) -> StoredEvent:
        return self.append_many([record])[0]

    def append_many(self, records: list[EventRecord]) -> list[StoredEvent]:
        """Store records in one transaction; return them with their ids (cursors)."""
        rows = []
        for r in records:
            _check_record(r)
            evidence = json.dumps(r.evidence, separators=(",", ":"), allow_nan=False)
            rows.append((r, evidence))
        now = time.time()
        out = []
        with self._lock:
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                for r, evidence in rows:
                    cur.execute(
                        "INSERT INTO events (created_ts, stream_id, kind, phase, episode_id, label, score, "
                        "window_start_ts, window_end_ts, text, evidence, size) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                        (now, r.stream_id, r.kind, r.phase, r.episode_id, r.label, float(r.score),
                         float(r.window_start_ts), float(r.window_end_ts), r.text, evidence,
                         record_size(r, evidence)),
                    )
                    out.append(StoredEvent(cur.lastrowid, now, r))
                    _track_episode(cur, r, cur.lastrowid)
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        return out

    # ------------------------------------------------------------------ reading
    def read_after(self, cursor: int, limit: int = 1000) -> list[StoredEvent]:
        """Events with id > cursor, oldest first, at most ``limit``.

        Raises CursorExpired when retention dropped events right after ``cursor`` (``cursor=0``
        means "from the oldest retained" and never expires) and CursorAhead past the newest id.
        """
        if cursor < 0:
            raise CursorError(f"cursor must be >= 0; got {cursor}")
        with self._lock:
            cur = self._db.cursor()
            cur.execute("BEGIN")  # one snapshot for the check and the read
            try:
                pruned = self._meta(cur, "pruned_through")
                head = self._head(cur)
                if cursor > head:
                    raise CursorAhead(cursor, head)
                if 0 < cursor < pruned:
                    oldest = cur.execute("SELECT min(id) FROM events").fetchone()[0] or 0
                    raise CursorExpired(cursor, pruned, oldest)
                rows = cur.execute(f"SELECT {_COLUMNS} FROM events WHERE id > ? ORDER BY id LIMIT ?",
                                   (cursor, limit)).fetchall()
            finally:
                cur.execute("COMMIT")
        return [_row_to_event(row) for row in rows]

    def page(self, before: int | None = None, limit: int = 50, *, stream_ids=(), kinds=(), since_ts: float | None = None,
             until_ts: float | None = None, episode_ids=(), allow=None, max_scan: int = 20_000
             ) -> tuple[list[StoredEvent], int]:
        """Newest first: up to ``limit`` events with id < ``before`` (None: from the newest) matching the
        filters (window end time in [since_ts, until_ts]; ``allow(stream_id)`` for a caller's scope).

        Returns ``(events, next_before)``: pass ``next_before`` to get the next (older) page; 0 when there
        is none. At most ``max_scan`` rows are examined per call, so a narrow scope over a large log
        returns a short page with a ``next_before`` to continue from rather than scanning everything.
        """
        where, args = ["id < ?"], [before if before is not None else 2**62]
        for column, values in (("stream_id", stream_ids), ("kind", kinds), ("episode_id", episode_ids)):
            values = list(values)
            if values:
                where.append(f"{column} IN ({','.join('?' * len(values))})")
                args += values
        if since_ts is not None:
            where.append("window_end_ts >= ?")
            args.append(float(since_ts))
        if until_ts is not None:
            where.append("window_end_ts <= ?")
            args.append(float(until_ts))
        out: list[StoredEvent] = []
        scanned, cursor = 0, args[0]
        chunk = max(limit, 200)
        while len(out) < limit and scanned < max_scan:
            with self._lock:
                rows = self._db.execute(f"SELECT {_COLUMNS} FROM events WHERE {' AND '.join(where)} "
                                        "ORDER BY id DESC LIMIT ?", [cursor, *args[1:], chunk]).fetchall()
            if not rows:
                return out, 0
            for row in rows:
                scanned += 1
                cursor = row[0]
                if allow is None or allow(row[2]):
                    out.append(_row_to_event(row))
                    if len(out) == limit:
                        break
            if len(rows) < chunk and len(out) < limit:
                return out, 0
        return out, cursor

    def head(self) -> int:
        """The newest id ever assigned (0 when nothing was ever stored)."""
        with self._lock:
            return self._head(self._db.cursor())

    def data_version(self) -> int:
        """Changes whenever another connection commits (cheap change detection across processes)."""
        with self._lock:
            return self._db.execute("PRAGMA data_version").fetchone()[0]

    def stats(self) -> dict:
        with self._lock:
            cur = self._db.cursor()
            oldest, count = cur.execute("SELECT min(id), count(*) FROM events").fetchone()
            return {"head": self._head(cur), "oldest": oldest or 0, "events": count,
                    "bytes": self._meta(cur, "bytes"), "pruned_through": self._meta(cur, "pruned_through"),
                    "pruned_count": self._meta(cur, "pruned_count")}

    def stats_for(self, allows) -> dict:
        """:meth:`stats` over the streams ``allows(stream_id)`` admits (a scoped client's status): head
        is the newest id of those streams, oldest the oldest retained one, events their count."""
        with self._lock:
            rows = self._db.execute("SELECT stream_id, min(id), max(id), count(*) FROM events "
                                    "GROUP BY stream_id").fetchall()
        mine = [r for r in rows if allows(r[0])]
        return {"head": max((r[2] for r in mine), default=0), "oldest": min((r[1] for r in mine), default=0),
                "events": sum(r[3] for r in mine)}

    # ------------------------------------------------------------------ retention
    def prune(self, now: float | None = None) -> int:
        """Enforce retention (age, count, bytes) by deleting a prefix of ids; return how many were dropped."""
        now = time.time() if now is None else now
        ret = self.retention
        with self._lock:
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                cut = self._meta(cur, "pruned_through")
                young = cur.execute("SELECT min(id) FROM events WHERE created_ts >= ?",
                                    (now - ret.max_age_s,)).fetchone()[0]
                head = self._head(cur)
                cut = max(cut, (young - 1) if young is not None else head)
                cut = max(cut, head - ret.max_events)
                excess = self._meta(cur, "bytes") - ret.max_bytes
                if excess > 0:
                    acc = 0
                    for ident, size in cur.execute("SELECT id, size FROM events WHERE id > ? ORDER BY id", (cut,)):
                        acc += size
                        if acc >= excess:
                            cut = max(cut, ident)
                            break
                dropped = cur.execute("DELETE FROM events WHERE id <= ?", (cut,)).rowcount
                cur.execute("UPDATE meta SET value = ? WHERE key = 'pruned_through'", (cut,))
                cur.execute("UPDATE meta SET value = value + ? WHERE key = 'pruned_count'", (dropped,))
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        if dropped:
            logger.info("retention dropped %d events (through id %d)", dropped, cut)
        return dropped

    def open_episodes(self) -> list[dict]:
        """Episodes whose start is in the log and whose end is not (a worker was killed during them):
        stream_id, kind, episode_id, label, peak, started_ts, last_ts, event_id, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT episode_id, stream_id, kind, label, peak, started_ts, last_ts, event_id "
                                    "FROM open_episodes ORDER BY event_id").fetchall()
        keys = ("episode_id", "stream_id", "kind", "label", "peak", "started_ts", "last_ts", "event_id")
        return [dict(zip(keys, row)) for row in rows]

    # ------------------------------------------------------------------ stream status and commands
    def put_stream_status(self, status: StreamStatus) -> None:
        """Store a stream's status (the worker, for a ``serve`` process reading the same file)."""
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO stream_status VALUES (?, ?, ?)",
                             (status.stream_id, time.time(), json.dumps(status.to_dict(), default=_jsonable)))

    def stream_statuses(self) -> list[StreamStatus]:
        """Every stored status, ``updated_ts`` set to when it was stored. A row another version of the worker
        wrote in another shape is listed with its stream id and time only (and a warning)."""
        with self._lock:
            rows = self._db.execute("SELECT stream_id, updated_ts, status FROM stream_status ORDER BY stream_id")
            rows = rows.fetchall()
        out = []
        for sid, ts, text in rows:
            try:
                out.append(replace(StreamStatus.from_dict(json.loads(text)), updated_ts=ts))
            except (TypeError, ValueError, AttributeError) as exc:
                logger.warning("stored status of stream %s cannot be read (%s): listed without details", sid, exc)
                out.append(StreamStatus(stream_id=sid, updated_ts=ts))
        return out

    def add_command(self, stream_id: str, action: str, params: dict) -> int:
        with self._lock:
            cur = self._db.execute("INSERT INTO commands (created_ts, stream_id, action, params) VALUES (?,?,?,?)",
                                   (time.time(), stream_id, action, json.dumps(params)))
            return cur.lastrowid

    def pending_commands(self) -> list[tuple[int, str, str, dict]]:
        with self._lock:
            rows = self._db.execute("SELECT id, stream_id, action, params FROM commands WHERE done_ts IS NULL "
                                    "ORDER BY id").fetchall()
        return [(i, s, a, json.loads(p)) for i, s, a, p in rows]

    def finish_command(self, command_id: int, result: dict) -> None:
        with self._lock:
            self._db.execute("UPDATE commands SET done_ts = ?, result = ? WHERE id = ?",
                             (time.time(), json.dumps(result, default=_jsonable), command_id))

    def command_result(self, command_id: int) -> dict | None:
        with self._lock:
            row = self._db.execute("SELECT result FROM commands WHERE id = ?", (command_id,)).fetchone()
        return None if row is None or row[0] is None else json.loads(row[0])

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _meta(cur, key: str) -> int:
        return cur.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0]

    @staticmethod
    def _head(cur) -> int:
        row = cur.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
        return row[0] if row else 0


def _track_episode(cur, r: EventRecord, event_id: int) -> None:
    """Keep ``open_episodes`` in step with the events, in their transaction: a start or update
    opens or refreshes the row, an end removes it."""
    if r.phase == "end":
        cur.execute("DELETE FROM open_episodes WHERE episode_id = ?", (r.episode_id,))
        return
    started = r.evidence.get("episode_started_ts") if isinstance(r.evidence, dict) else None
    cur.execute("INSERT OR REPLACE INTO open_episodes VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (r.episode_id, r.stream_id, r.kind, r.label, float(r.score),
                 float(started if isinstance(started, (int, float)) else r.window_start_ts),
                 float(r.window_end_ts), event_id))


def _check_record(r: EventRecord) -> None:
    if not isinstance(r, EventRecord):
        raise ValueError(f"the event log stores EventRecord; got {type(r).__name__}")
    if r.phase not in _PHASES:
        raise ValueError(f"event phase must be one of {_PHASES}; got {r.phase!r}")
    if not r.stream_id or not r.kind:
        raise ValueError(f"event needs a stream_id and a kind; got {r.stream_id!r}, {r.kind!r}")
    if not 0.0 <= float(r.score) <= 1.0:
        raise ValueError(f"event score must be in [0, 1]; got {r.score}")


def _row_to_event(row) -> StoredEvent:
    (ident, created, stream, kind, phase, episode, label, score, ws, we, text, evidence) = row
    record = EventRecord(stream_id=stream, kind=kind, phase=phase, episode_id=episode, label=label, score=score,
                         window_start_ts=ws, window_end_ts=we, text=text, evidence=json.loads(evidence))
    return StoredEvent(ident, created, record)


def _jsonable(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)
