"""Where a file capture stands, kept on disk so that a restarted capture resumes instead of sending
the file again (a fault in it would be reported twice).

One JSON file per stream in ``capture.state_dir``, written atomically (mode 0600) at most every
``interval_s`` while the stream runs and once at its end::

    {"stream_id": "press-3", "uri": "/data/press-3.wav", "size": 1234, "mtime_ns": 1700000000000000000,
     "chunk_ms": 100, "sender_epoch": 1733400000000000000, "acked_seq": 41, "acked_sample": 67200,
     "complete": false}

A restart with the same file (same path, size and modification time) and chunk length resumes the
stream as the same sender epoch from the first chunk the worker did not acknowledge: the worker drops
what it already has and windows on with no gap, so no episode is split or repeated. A file that
changed, or no state, starts a new run from 0 with a new sender epoch, which the worker treats as a
restarted sender. A complete file is not sent again.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from edge_coat.messages import check_stream_id

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResumePoint:
    """Where a stream's previous run ended, as acknowledged by the worker."""

    sender_epoch: int
    next_seq: int  # first sequence not acknowledged
    next_sample: int  # timeline position (16 kHz samples into the file) the acknowledged audio ends at
    complete: bool  # the whole file, end of stream included, was acknowledged
    ended: bool  # the previous run sent end-of-stream (a graceful stop): the next one is a new epoch


class CaptureProgress:
    """The state files of one capture process's file streams."""

    def __init__(self, state_dir: Path, interval_s: float = 0.5):
        self.dir = Path(state_dir)
        self.interval_s = interval_s
        self._last: dict[str, float] = {}

    def _path(self, stream_id: str) -> Path:
        return self.dir / f"{check_stream_id(stream_id)}.json"

    @staticmethod
    def _identity(path: Path) -> dict:
        st = Path(path).stat()
        return {"uri": str(Path(path).resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}

    def resume_point(self, stream_id: str, path: Path, chunk_ms: int) -> ResumePoint | None:
        """The point to resume ``stream_id`` reading ``path`` at, or None for a new run (no state, another
        file or chunk length, or an unreadable state file: said in the log)."""
        state_file = self._path(stream_id)
        try:
            state = json.loads(state_file.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("capture state %s unreadable (%s): %s starts a new run", state_file, exc, stream_id)
            return None
        same = {k: state.get(k) for k in ("uri", "size", "mtime_ns")} == self._identity(path)
        if not same or state.get("chunk_ms") != chunk_ms:
            log.warning("%s: %s changed since the last run (or its chunk length did): a new run from 0",
                        stream_id, path)
            return None
        try:
            return ResumePoint(int(state["sender_epoch"]), int(state["acked_seq"]) + 1, int(state["acked_sample"]),
                               bool(state.get("complete", False)), bool(state.get("ended", False)))
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("capture state %s incomplete (%s): %s starts a new run", state_file, exc, stream_id)
            return None

    def save(self, stream_id: str, path: Path, chunk_ms: int, progress: dict, complete: bool = False,
             ended: bool = False, force: bool = False) -> None:
        """Record ``progress`` (``Sender.progress(stream_id)``); at most every ``interval_s`` unless ``force``."""
        now = time.monotonic()
        if not force and now - self._last.get(stream_id, -1e9) < self.interval_s:
            return
        self._last[stream_id] = now
        state = {"stream_id": stream_id, **self._identity(path), "chunk_ms": chunk_ms,
                 "sender_epoch": progress["sender_epoch"], "acked_seq": progress["acked_seq"],
                 "acked_sample": progress["acked_sample"], "complete": complete, "ended": ended}
        self.dir.mkdir(parents=True, exist_ok=True)
        final = self._path(stream_id)
        tmp = final.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            f.write(json.dumps(state))
        tmp.replace(final)  # atomic: a SIGKILL leaves the previous state or this one, never half


class FileStream:
    """A file source's link to its state file: opens the source at its resume point and records the
    acknowledged progress (``CaptureThread`` calls :meth:`record`)."""

    def __init__(self, progress: CaptureProgress, stream_id: str, path: Path, chunk_ms: int, sender):
        self.progress, self.stream_id, self.path, self.chunk_ms, self.sender = progress, stream_id, Path(path), \
            chunk_ms, sender
        self.ended = False
        self.finished = False  # the source reached the end of the file

    def open(self, realtime: bool):
        """The FileSource to read (resumed on the sender), or None when the file was sent completely."""
        from edge_coat.capture.sources import FileSource

        point = self.progress.resume_point(self.stream_id, self.path, self.chunk_ms)
        start = 0
        if point is not None and point.complete:
            log.info("%s: %s was sent completely in an earlier run; not sending it again", self.stream_id, self.path)
            return None
        if point is not None and not point.ended:
            self.sender.resume_stream(self.stream_id, point.sender_epoch, point.next_seq, point.next_sample)
            start = point.next_sample
            log.info("%s: resuming %s at %.2f s (sequence %d), as acknowledged by the worker", self.stream_id,
                     self.path, start / 16000, point.next_seq)
        elif point is not None:
            # the previous run was stopped gracefully: its epoch is ended at the worker; go on as a new run
            self.sender.resume_stream(self.stream_id, self.sender.epoch, 0, point.next_sample)
            start = point.next_sample
            log.info("%s: continuing %s at %.2f s as a new run", self.stream_id, self.path, start / 16000)
        return FileSource(self.path, self.chunk_ms, realtime, False, start_sample=start)

    def record(self, force: bool = False) -> None:
        """Save the acknowledged progress (at most every interval unless ``force``)."""
        p = self.sender.progress(self.stream_id)
        if p is None:
            return
        complete = self.finished and p["acked_seq"] == p["next_seq"] - 1
        self.progress.save(self.stream_id, self.path, self.chunk_ms, p, complete=complete, ended=self.ended,
                           force=force)
