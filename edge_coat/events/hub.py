"""Fan-out of the log's new events to live subscribers (asyncio, one event loop).

One follower task reads each new event from the log once, converts it to protobuf and serializes it
once (as a ready-made ``events`` entry of a SubscribeResponse, see :func:`convert.encode_entry`), and
appends it to a shared ring of the newest ``queue_events`` events. Each subscriber keeps only its
cursor into that ring and is woken when the ring grows. This is the bounded per-subscriber queue the
design asks for, without copying every event into a thousand queues: a subscriber's backlog is "ring
head minus its cursor", bounded by the ring size. A live subscriber whose cursor falls off the ring's
tail is closed (RESOURCE_EXHAUSTED) and resumes from its cursor with a replay from the log; it never
slows the follower, the other subscribers or the worker (which only writes to SQLite).

Per-subscriber work per wake-up is O(1) Python in the common case: subscriptions with the same filter
share one :class:`Filter`, and the serialized response for a (filter, first id, last id) slice of the
ring is built once per ring generation and handed as the same ``bytes`` to every subscriber at that
position (the gRPC handler sends bytes as they are). A subscriber that falls behind under load simply
gets bigger batches on its next wake-up (up to ``max_batch`` events per message), so the number of
messages, the dominant cost, adapts to what the server can send.

A subscriber that has not yet caught up (replaying from an old cursor) reads the log page by page at
its own pace, which costs only SQLite reads; the bound applies once it has been live.

Replay and live use the same cursor arithmetic (the ring is a cache of the log's tail, indexed by
id), so the switch from replay to live has no gap and no duplicate by construction.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import logging
import sqlite3
import time
import weakref
from typing import NamedTuple

from edge_coat.events.auth import Principal
from edge_coat.events.config import EventsConfig
from edge_coat.events.convert import encode_entry, encode_response, event_to_pb
from edge_coat.events.log import EventLog, StoredEvent

logger = logging.getLogger(__name__)

_MAX_CACHED_RESPONSES = 4096  # distinct (filter, slice) responses kept per ring generation


class RingEvent(NamedTuple):
    """What fan-out needs of one event: the fields filters test, and the event serialized once."""

    id: int
    stream_id: str
    kind: str
    score: float
    entry: bytes  # the event as one ``events`` entry of a serialized SubscribeResponse


def ring_event(ev: StoredEvent) -> RingEvent:
    r = ev.record
    return RingEvent(ev.id, r.stream_id, r.kind, float(r.score), encode_entry(event_to_pb(ev)))


class Filter:
    """Which events one subscription gets: the caller's scope, and its stream/kind/min-score filters.

    Interned by :meth:`EventHub.filter_for`: every subscription with the same scope and filters holds
    the same object, so per-stream decisions and serialized responses are computed once for all.
    """

    __slots__ = ("who", "streams", "kinds", "min_score", "everything", "_allowed", "__weakref__")

    def __init__(self, who: Principal, streams: frozenset[str], kinds: frozenset[str], min_score: float) -> None:
        self.who, self.streams, self.kinds, self.min_score = who, streams, kinds, min_score
        self.everything = not streams and not kinds and min_score <= 0.0 and "*" in who.streams
        self._allowed: dict[str, bool] = {}

    def match(self, e: RingEvent) -> bool:
        ok = self._allowed.get(e.stream_id)
        if ok is None:
            ok = self._allowed[e.stream_id] = self.who.allows(e.stream_id) and (
                not self.streams or e.stream_id in self.streams)
        return ok and (not self.kinds or e.kind in self.kinds) and e.score >= self.min_score

    def select(self, events: list[RingEvent]) -> list[RingEvent]:
        return events if self.everything else [e for e in events if self.match(e)]


class EventHub:
    """Follows the log and holds the ring. Create and use inside the server's event loop."""

    def __init__(self, log: EventLog, config: EventsConfig) -> None:
        self.log = log
        self.config = config
        self._ids: list[int] = []
        self._events: list[RingEvent] = []  # parallel to _ids
        self.head = log.head()  # newest id fanned out (live subscriptions start here)
        self._changed = asyncio.Event()
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self.closing = False
        self.subscribers = 0
        #: (kind, phase) -> events read from the log since start; replaced, never mutated, so another
        #: thread (a metrics scrape) may read it without a lock
        self.followed: dict[tuple[str, str], int] = {}
        self._last_prune = 0.0
        self._filters: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
        self._responses: dict[tuple, bytes] = {}  # (filter, first id, last id) -> serialized response
        # Change detection without a thread hop per poll: PRAGMA data_version on a connection of our own
        # changes whenever any other connection (another process, or self.log's) commits.
        self._watch = sqlite3.connect(log.path, check_same_thread=False, isolation_level=None)
        self._version: int | None = None
        self._force = True

    # ------------------------------------------------------------------ follower
    async def run(self) -> None:
        """Read new events from the log until :meth:`close`; enforce retention on the side."""
        cfg, wake = self.config, self._wake
        beat_every = cfg.heartbeat_s / 4
        next_beat = time.monotonic() + beat_every
        try:
            await self._follow(wake, beat_every, next_beat)
        finally:  # the watch connection is closed here, by its only user, never under a running read
            self._watch.close()

    async def _follow(self, wake: asyncio.Event, beat_every: float, next_beat: float) -> None:
        cfg = self.config
        while not self.closing:
            if not wake.is_set():  # sleep until notified or the poll interval is up
                sleep = min(cfg.poll_interval_s, max(0.0, next_beat - time.monotonic()))
                timer = self._loop.call_later(sleep, wake.set)  # (wait_for would make a Task per poll)
                await wake.wait()
                timer.cancel()
            wake.clear()
            try:
                if self._log_changed():
                    await self._pull()
                if time.monotonic() >= next_beat:  # idle subscribers check whether a heartbeat is due
                    next_beat = time.monotonic() + beat_every
                    self._signal()
                if time.monotonic() - self._last_prune >= cfg.retention.prune_interval_s:
                    self._last_prune = time.monotonic()
                    await asyncio.to_thread(self.log.prune)
            except Exception:  # a broken read must not end the service: log, back off, retry
                if self.closing:  # the log was closed under a read during shutdown: nothing to retry
                    return
                self._force = True
                logger.exception("event follower failed to read %s; retrying", self.log.path)
                await asyncio.sleep(min(1.0, 10 * cfg.poll_interval_s))

    def _log_changed(self) -> bool:
        version = self._watch.execute("PRAGMA data_version").fetchone()[0]
        changed = self._force or version != self._version
        self._version, self._force = version, False
        return changed

    async def _pull(self) -> None:
        while True:
            stored = await asyncio.to_thread(self.log.read_after, self.head, self.config.replay_page)
            if not stored:
                return
            followed = collections.Counter(self.followed)
            for ev in stored:
                self._ids.append(ev.id)
                self._events.append(ring_event(ev))
                followed[(ev.record.kind, ev.record.phase)] += 1
            self.followed = dict(followed)
            self.head = stored[-1].id
            self._responses.clear()  # cached responses carry the old head
            cap = self.config.queue_events
            if len(self._ids) > 2 * cap:  # trim in bulk (amortised O(1) per event)
                del self._ids[:-cap], self._events[:-cap]
            self._signal()
            if len(stored) < self.config.replay_page:
                return

    def _signal(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def notify_threadsafe(self) -> None:
        """Wake the follower now (an in-process writer just appended)."""
        self._loop.call_soon_threadsafe(self._notify)

    def _notify(self) -> None:
        self._force = True
        self._wake.set()

    def close(self) -> None:
        """Stop following; run() returns at its next turn and closes its own connection."""
        self.closing = True
        self._wake.set()
        self._changed.set()

    # ------------------------------------------------------------------ subscribers
    def changed(self) -> asyncio.Event:
        """The event set on the next ring change (take it *before* reading state, then await it).

        It is also set every ``heartbeat_s / 4`` without a change, so that subscribers need no timer of
        their own to notice that a heartbeat is due (one timer per wait costs more than the wait).
        """
        return self._changed

    def filter_for(self, who: Principal, stream_ids, kinds, min_score: float) -> Filter:
        """The shared Filter of this scope and these filters."""
        key = (who.streams, frozenset(stream_ids), frozenset(kinds), float(min_score))
        filt = self._filters.get(key)
        if filt is None:
            if len(self._filters) >= 4096:  # clients choosing filters must not grow this without bound
                self._filters.clear()
            filt = self._filters[key] = Filter(who, key[1], key[2], key[3])
        return filt

    def after(self, cursor: int, limit: int) -> list[RingEvent] | None:
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

    def response(self, filt: Filter, events: list[RingEvent], shared: bool) -> bytes | None:
        """The serialized SubscribeResponse for ``events`` under ``filt`` (None when none match).

        ``shared``: ``events`` is a slice of the ring, so the result is cached for every subscriber
        that asks for the same slice under the same filter until the ring next changes.
        """
        key = (filt, events[0].id, events[-1].id)
        if shared:
            payload = self._responses.get(key, False)
            if payload is not False:
                return payload
        chosen = filt.select(events)
        payload = (encode_response(b"".join([e.entry for e in chosen]), events[-1].id, self.head)
                   if chosen else None)
        if shared:
            if len(self._responses) >= _MAX_CACHED_RESPONSES:
                self._responses.clear()
            self._responses[key] = payload
        return payload
