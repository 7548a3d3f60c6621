"""One thread per source, each feeding the shared `Sender` (logger ``capture.<stream>``)."""

from __future__ import annotations

import logging
import threading
import time

import numpy as np

from edge_coat.capture.sources import Source
from edge_coat.messages import SAMPLE_RATE
from edge_coat.transport.sender import Sender
from edge_coat.messages import check_stream_id


class CaptureThread:
    """Reads `source` and submits its blocks as stream `stream_id`; sends end-of-stream when the
    source ends or the thread is stopped. A source that raises is logged with its state and retried after `retry_s`
    (RTSP handles its own outages; this covers e.g. a sound card that vanished)."""

    def __init__(self, stream_id: str, source: Source, sender: Sender, retry_s: float = 5.0, file_stream=None):
        self.stream_id = check_stream_id(stream_id)
        self.source, self.sender, self.retry_s = source, sender, retry_s
        #: a file source's state-file link (edge_coat.capture.progress.FileStream), or None
        self.file_stream = file_stream
        self.log = logging.getLogger(f"capture.{stream_id}")
        self.samples = 0
        self.gap_samples = 0
        self.errors = 0
        self.ended = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"capture-{stream_id}", daemon=True)

    @property
    def online(self) -> bool:
        return self.source is not None and self.source.online.is_set()

    def status(self) -> dict:
        return {
            "online": self.online,
            "audio_s": self.samples / SAMPLE_RATE,
            "gap_s": self.gap_samples / SAMPLE_RATE,
            "outages": self.source.outages if self.source is not None else 0,
            "errors": self.errors,
            "ended": self.ended.is_set(),
        }

    def start(self) -> "CaptureThread":
        if self.source is None:  # nothing left to send (a file sent completely in an earlier run)
            self.ended.set()
            return self
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self.source is not None:
            self.source.stop()
        if self._thread.ident is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._pump()
                break
            except ValueError as exc:  # bad file/device: clear message, no point retrying
                self.errors += 1
                self.log.error("%s", exc)
                break
            except (OSError, RuntimeError) as exc:
                self.errors += 1
                self.log.error("source failed after %.1f s of audio: %s; retrying in %.0f s",
                               self.samples / SAMPLE_RATE, exc, self.retry_s)
                self._stop.wait(self.retry_s)
        self.ended.set()

    def _pump(self) -> None:
        held = None  # a finite source's last block is held back so it can carry end-of-stream
        for block in self.source.blocks():
            if held is not None:
                self._submit(held, False)
                held = None
            if self._stop.is_set():
                break
            if self.source.live:
                self._submit(block, False)
            else:
                held = block
        # A stop ends the stream too: the worker then windows its tail and acknowledges all of it, so a
        # graceful shutdown can wait for the acknowledgements (a live stream's tail is otherwise held back
        # for replay, which a stopping capture process cannot do). A restarted capture opens a new epoch.
        if self.file_stream is not None:
            self.file_stream.ended = True
            self.file_stream.finished = not self._stop.is_set()
        if held is not None:
            self._submit(held, True)
        else:
            self.sender.submit(self.stream_id, np.zeros(0, np.float32), time.time(), end_of_stream=True)
        self.log.info("source %s after %.1f s of audio", "stopped" if self._stop.is_set() else "ended",
                      self.samples / SAMPLE_RATE)

    def _submit(self, block, eos: bool) -> None:
        self.samples += len(block.samples)
        self.gap_samples += block.gap_samples
        if block.gap_samples:
            self.log.warning("outage: %.2f s of audio missing", block.gap_samples / SAMPLE_RATE)
        self.sender.submit(self.stream_id, block.samples, block.capture_ts, block.gap_samples, eos)
        if self.file_stream is not None:
            self.file_stream.record()

    def record_progress(self) -> None:
        """Save a file stream's acknowledged progress now (after the last acknowledgements on a stop)."""
        if self.file_stream is not None:
            self.file_stream.record(force=True)


def start_capture_threads(sources, sender: Sender, state_dir=None) -> list[CaptureThread]:
    """One started CaptureThread per ``SourceConfig``. With ``state_dir``, a file source (not looping)
    resumes where the worker's acknowledgements of its previous run ended (see
    :mod:`edge_coat.capture.progress`). ValueError on a source URI of no known kind."""
    from edge_coat.capture.progress import CaptureProgress, FileStream
    from edge_coat.capture.sources import FileSource, open_source

    progress = CaptureProgress(state_dir) if state_dir is not None else None
    opened = []
    for sc in sources:
        source = open_source(sc.uri, sc.chunk_ms, sc.realtime, sc.loop)
        link = None
        if progress is not None and isinstance(source, FileSource) and not sc.loop:
            link = FileStream(progress, sc.stream_id, source.path, sc.chunk_ms, sender)
            source = link.open(sc.realtime)
        opened.append((sc, source, link))
    return [CaptureThread(sc.stream_id, source, sender, file_stream=link).start() for sc, source, link in opened]
