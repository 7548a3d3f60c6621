"""Fan-out of the log's new events to live subscribers (asyncio, one event loop).

One follower task reads each new event from the log once, converts it to protobuf once, and appends
it to a shared ring of the newest ``queue_events`` events. Each subscriber keeps only its cursor into
that ring and is woken when the ring grows. This is the bounded per-subscriber queue the design asks
for, without copying every event into a thousand queues: a subscriber's backlog is "ring head minus
its cursor", bounded by the ring size. A live subscriber whose cursor falls off the ring's tail is
closed (RESOURCE_EXHAUSTED) and resumes from its cursor with a replay from the log; it never slows
the follower, the other subscribers or the worker (which only writes to SQLite).

A subscriber that has not yet caught up (replaying from an old cursor) reads the log page by page at
its own pace, which costs only SQLite reads; the bound applies once it has been live.

Replay and live use the same cursor arithmetic (the ring is a cache of the log's tail, indexed by
id), so the switch from replay to live has no gap and no duplicate by construction.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time

from edge_coat.events.config import EventsConfig
from edge_coat.events.convert import event_to_pb
from edge_coat.events.log import EventLog

logger = logging.getLogger(__name__)


class EventHub:
    """Follows the log and holds the ring. Create and use inside the server's event loop."""

    def __init__(self, log: EventLog, config: EventsConfig) -> None:
        self.log = log
        self.config = config
        self._ids: list[int] = []
        self._events: list = []  # pb.Event, parallel to _ids
        self.head = log.head()  # newest id fanned out (live subscriptions start here)
        self._changed = asyncio.Event()
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self.closing = False
        self.subscribers = 0
        self._last_prune = 0.0

    # ------------------------------------------------------------------ follower
    async def run(self) -> None:
        """Read new events from the log until :meth:`close`; enforce retention on the side."""
        cfg = self.config
        while not self.closing:
            try:
                await asyncio.wait_for(self._wake.wait(), cfg.poll_interval_s)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self._pull()
                if time.monotonic() - self._last_prune >= cfg.retention.prune_interval_s:
                    self._last_prune = time.monotonic()
                    await asyncio.to_thread(self.log.prune)
            except Exception:  # a broken read must not end the service: log, back off, retry
                logger.exception("event follower failed to read %s; retrying", self.log.path)
                await asyncio.sleep(min(1.0, 10 * cfg.poll_interval_s))

    async def _pull(self) -> None:
        while True:
            stored = await asyncio.to_thread(self.log.read_after, self.head, self.config.replay_page)
            if not stored:
                return
            for ev in stored:
                self._ids.append(ev.id)
                self._events.append(event_to_pb(ev))
            self.head = stored[-1].id
            cap = self.config.queue_events
            if len(self._ids) > 2 * cap:  # trim in bulk (amortised O(1) per event)
                del self._ids[:-cap], self._events[:-cap]
            changed, self._changed = self._changed, asyncio.Event()
            changed.set()
            if len(stored) < self.config.replay_page:
                return

    def notify_threadsafe(self) -> None:
        """Wake the follower now (an in-process writer just appended)."""
        self._loop.call_soon_threadsafe(self._wake.set)

    def close(self) -> None:
        self.closing = True
        self._wake.set()
        self._changed.set()

    # ------------------------------------------------------------------ subscribers
    def changed(self) -> asyncio.Event:
        """The event set on the next ring change (take it *before* reading state, then await it)."""
        return self._changed

    def after(self, cursor: int, limit: int) -> list | None:
        """Ring events with id > cursor (at most ``limit``), or None when the ring no longer holds cursor+1."""
        ids = self._ids
        cap_start = max(0, len(ids) - self.config.queue_events)
        if not ids:
            return None
        if cursor >= ids[-1]:
            return []
        if cursor < ids[cap_start] - 1:
            return None
        i = bisect.bisect_right(ids, cursor, lo=cap_start)
        return self._events[i:i + limit]
