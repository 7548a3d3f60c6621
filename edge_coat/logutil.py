"""Rate-limited logging: a repeated problem is counted every time and logged once per interval.

Used where input from outside (a client's bytes, a stream's samples) can repeat a warning without
limit: the counter is the record, the log line a sample of it with the number suppressed since.
"""

from __future__ import annotations

import logging
import threading
import time


class RateLimitedLog:
    """``warning``/``error`` that write at most one record per ``interval_s`` (thread-safe); the next
    record written says how many were suppressed meanwhile."""

    def __init__(self, logger: logging.Logger, interval_s: float = 60.0):
        self.logger, self.interval_s = logger, interval_s
        self._next = 0.0
        self._suppressed = 0
        self._lock = threading.Lock()

    def _log(self, level: int, msg: str, *args) -> bool:
        now = time.monotonic()
        with self._lock:
            if now < self._next:
                self._suppressed += 1
                return False
            self._next = now + self.interval_s
            suppressed, self._suppressed = self._suppressed, 0
        if suppressed:
            msg += " (%d similar record(s) suppressed in the last %.0f s)"
            args = (*args, suppressed, self.interval_s)
        self.logger.log(level, msg, *args)
        return True

    def warning(self, msg: str, *args) -> bool:
        return self._log(logging.WARNING, msg, *args)

    def error(self, msg: str, *args) -> bool:
        return self._log(logging.ERROR, msg, *args)
