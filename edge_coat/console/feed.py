"""The console's one reader of the log: new events, new timeline points and stream states.

One thread polls the log file (as ``serve`` does for the gRPC fan-out) and keeps the newest events
and points in rings; every open page's server-sent-event stream waits on one condition and takes
what is new from the rings, filtered by its caller's scope. So the log is read once however many
pages are open; a page that fell off a ring's tail replays from the log (events) or skips ahead
(points: a timeline can be reloaded).
"""

from __future__ import annotations

import collections
import logging
import threading
import time

from edge_coat.console.config import ConsoleConfig
from edge_coat.console.series import Point, SeriesReader
from edge_coat.console.views import event_json, tiles
from edge_coat.events.log import CursorError, EventLog
from edge_coat.logutil import RateLimitedLog

logger = logging.getLogger(__name__)
_FAILED = RateLimitedLog(logger)

RING_EVENTS = 2000
RING_POINTS = 20_000


class Feed:
    def __init__(self, log: EventLog, series: SeriesReader, control, config: ConsoleConfig,
                 poll_s: float = 0.2) -> None:
        self.log, self.series, self.control, self.config = log, series, control, config
        self.poll_s = min(poll_s, config.refresh_s)
        self.cond = threading.Condition()
        self.generation = 0
        self.closing = False
        self.errors = 0  # failed reads of the log since start
        self.head = log.head()
        self._events: collections.deque = collections.deque(maxlen=RING_EVENTS)  # (id, stream_id, json)
        self.point_head = series.head()
        self._points: collections.deque[Point] = collections.deque(maxlen=RING_POINTS)
        self.latest: dict[str, Point] = series.latest()
        self.tiles: list[dict] = []
        self.tiles_version = 0
        self._statuses: list[dict] = []
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_status = 0.0

    # ------------------------------------------------------------------ reader thread
    def start(self) -> "Feed":
        self._refresh_statuses()
        self._thread = threading.Thread(target=self._run, name="console-feed", daemon=True)
        self._thread.start()
        return self

    def poke(self) -> None:
        """Read the log now (this process just wrote to it)."""
        self._wake.set()

    def close(self) -> None:
        with self.cond:
            self.closing = True
            self.cond.notify_all()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5.0)

    def _run(self) -> None:
        while not self.closing:
            self._wake.wait(self.poll_s)
            self._wake.clear()
            try:
                changed = self._read_events() | self._read_points()
                if time.monotonic() >= self._next_status:
                    self._refresh_statuses()
                    changed = True
            except Exception as exc:  # noqa: BLE001 - a locked or busy file: log, retry next round
                if self.closing:
                    return
                self.errors += 1
                _FAILED.error("console: reading %s failed (%s: %s); retrying", self.log.path, type(exc).__name__, exc)
                time.sleep(1.0)
                continue
            if changed:
                with self.cond:
                    self.generation += 1
                    self.cond.notify_all()

    def _read_events(self) -> bool:
        try:
            stored = self.log.read_after(self.head, 500)
        except CursorError:  # retention went past us (or the log was replaced): follow from its head
            self.head = self.log.head()
            return True
        for ev in stored:
            self._events.append((ev.id, ev.record.stream_id, event_json(ev)))
        if stored:
            self.head = stored[-1].id
            self._next_status = 0.0  # an episode began or ended: refresh the tiles now
        return bool(stored)

    def _read_points(self) -> bool:
        points = self.series.after(self.point_head)
        for p in points:
            self._points.append(p)
            self.latest[p.stream_id] = p
        if points:
            self.point_head = points[-1].id
        return bool(points)

    def _refresh_statuses(self) -> None:
        self._next_status = time.monotonic() + self.config.refresh_s
        if self.control is not None:
            self._statuses = self.control.list_streams()
        self.tiles = tiles(self._statuses, dict(self.latest), lambda _sid: True, time.time(),
                           self.config.stale_after_s)
        self.tiles_version += 1

    # ------------------------------------------------------------------ readers (any thread)
    def wait(self, generation: int, timeout: float) -> int:
        """Block until the generation passes ``generation`` (or timeout / closing); return the current one."""
        with self.cond:
            if self.generation == generation and not self.closing:
                self.cond.wait(timeout)
            return self.generation

    def events_after(self, cursor: int, allows, limit: int = 500) -> tuple[list[dict], int]:
        """Events after ``cursor`` the caller may see, and the new cursor (replayed from the log when the
        ring no longer reaches back to ``cursor``)."""
        ring = list(self._events)
        if ring and cursor >= ring[0][0] - 1:
            new = [(i, s, e) for i, s, e in ring if i > cursor][:limit]
            out = [e for _, s, e in new if allows(s)]
            return out, (new[-1][0] if new else max(cursor, min(self.head, ring[-1][0])))
        if cursor >= self.head:
            return [], cursor
        try:
            stored = self.log.read_after(cursor, limit)
        except CursorError:
            return [], self.head
        out = [event_json(ev) for ev in stored if allows(ev.record.stream_id)]
        return out, (stored[-1].id if stored else cursor)

    def points_after(self, point_id: int, stream_id: str) -> tuple[list[dict], int]:
        """Timeline points of one stream after point id ``point_id`` (from the ring), and the new id."""
        ring = list(self._points)
        out = [p.as_json() for p in ring if p.id > point_id and p.stream_id == stream_id]
        return out, (ring[-1].id if ring else point_id)

    def visible_tiles(self, allows) -> list[dict]:
        return [t for t in self.tiles if allows(t["stream_id"])]
