"""Audio sources. Each yields `Captured` blocks of 16 kHz mono float32 with capture times.

URIs (`open_source`):

* ``rtsp://host:port/path`` (or ``rtsps://``): RTSP through PyAV/FFmpeg, reconnecting with backoff;
* ``mic:`` / ``mic:NAME_OR_INDEX`` (optionally ``?rate=48000&channels=1``): a sound card (sounddevice);
* ``gen:sine?freq=440&amp=0.5&rate=16000&channels=1`` / ``gen:noise?amp=0.1`` / ``gen:silence``;
* anything else: a file (wav, flac, mp3, ogg, ...; ``file://`` allowed), decoded by PyAV.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import av
import numpy as np

from edge_coat.capture.resample import Resampler, frame_to_array
from edge_coat.messages import SAMPLE_RATE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Captured:
    """A block from a source.

    Attributes:
        samples: shape ``(N,)`` float32, 16 kHz mono.
        capture_ts: wall-clock time of the first sample.
        gap_samples: samples lost right before this block (a source outage).
    """

    samples: np.ndarray  # (N,) float32
    capture_ts: float
    gap_samples: int = 0


class Source:
    """Base: `blocks()` yields `Captured` until the source ends or `stop()` is called."""

    live = False  # live sources stamp wall-clock time; files and generators their own clock

    def __init__(self):
        self._stop = threading.Event()
        self.online = threading.Event()
        self.outages = 0

    def stop(self) -> None:
        self._stop.set()

    def blocks(self) -> Iterator[Captured]:
        raise NotImplementedError


class _Chunker:
    """Cuts a resampled stream into blocks of exactly `n` samples (the tail on flush)."""

    def __init__(self, n: int):
        self.n = n
        self.buf = np.zeros(0, np.float32)

    def push(self, x: np.ndarray) -> list[np.ndarray]:
        self.buf = np.concatenate([self.buf, x]) if len(self.buf) else x
        out = []
        while len(self.buf) >= self.n:
            out.append(self.buf[: self.n])
            self.buf = self.buf[self.n:]
        return out

    def flush(self) -> list[np.ndarray]:
        out, self.buf = ([self.buf] if len(self.buf) else []), np.zeros(0, np.float32)
        return out


class GeneratedSource(Source):
    """Tones, noise or silence generated at any rate/channels (then resampled like real input)."""

    def __init__(self, kind: str = "sine", freq: float = 440.0, amp: float = 0.5, rate: int = SAMPLE_RATE,
                 channels: int = 1, duration_s: float | None = None, chunk_ms: int = 100, realtime: bool = True,
                 seed: int = 0):
        super().__init__()
        if kind not in ("sine", "noise", "silence"):
            raise ValueError(f"expected gen kind sine, noise or silence, got {kind!r}")
        self.kind, self.freq, self.amp, self.rate, self.channels = kind, freq, amp, rate, channels
        self.duration_s, self.chunk_ms, self.realtime = duration_s, chunk_ms, realtime
        self.rng = np.random.default_rng(seed)

    def _make(self, start: int, n: int) -> np.ndarray:  # (n, C) float32
        if self.kind == "sine":
            t = (start + np.arange(n)) / self.rate
            x = self.amp * np.sin(2 * np.pi * self.freq * t)
        elif self.kind == "noise":
            x = self.amp * self.rng.standard_normal(n)
        else:
            x = np.zeros(n)
        return np.repeat(x.astype(np.float32)[:, None], self.channels, axis=1)

    def blocks(self) -> Iterator[Captured]:
        res, chunker = Resampler(self.rate, self.channels), _Chunker(SAMPLE_RATE * self.chunk_ms // 1000)
        step = self.rate * self.chunk_ms // 1000
        total = None if self.duration_s is None else round(self.duration_s * self.rate)
        t0, pos, out_pos = time.time(), 0, 0
        self.online.set()
        while not self._stop.is_set() and (total is None or pos < total):
            n = step if total is None else min(step, total - pos)
            blocks = chunker.push(res(self._make(pos, n)))
            pos += n
            if total is not None and pos >= total:
                blocks += chunker.push(res.flush()) + chunker.flush()
            for b in blocks:
                yield Captured(b, t0 + out_pos / SAMPLE_RATE)
                out_pos += len(b)
            if self.realtime:
                self._stop.wait(max(0.0, t0 + pos / self.rate - time.time()))
        self.online.clear()


class FileSource(Source):
    """A file decoded by PyAV; optional real-time pacing and looping."""

    def __init__(self, path: str | Path, chunk_ms: int = 100, realtime: bool = False, loop: bool = False,
                 start_sample: int = 0):
        super().__init__()
        self.path = Path(path)
        if not self.path.is_file():
            raise ValueError(f"expected an audio file, but {self.path} does not exist")
        if start_sample < 0 or (loop and start_sample):
            raise ValueError(f"start_sample must be >= 0 (and 0 when looping); got {start_sample}")
        self.chunk_ms, self.realtime, self.loop = chunk_ms, realtime, loop
        #: resume here (16 kHz samples into the decoded file, a chunk boundary): a restarted capture
        #: continues where the worker's acknowledgements ended instead of sending the file again
        self.start_sample = start_sample

    def _decode(self) -> Iterator[np.ndarray]:
        try:
            with av.open(str(self.path)) as container:
                if not container.streams.audio:
                    raise ValueError(f"expected a file with an audio stream, {self.path} has none")
                stream = container.streams.audio[0]
                res = None
                for frame in container.decode(stream):
                    x = frame_to_array(frame)  # (N, C)
                    if res is None:
                        res = Resampler(frame.sample_rate, x.shape[1])
                    yield res(x)
                    if self._stop.is_set():
                        return
                if res is not None:
                    yield res.flush()
        except av.FFmpegError as exc:
            raise ValueError(f"cannot decode {self.path} as audio: {exc}") from exc

    def blocks(self) -> Iterator[Captured]:
        skip = self.start_sample
        t0, out_pos = time.time() - skip / SAMPLE_RATE, skip
        self.online.set()
        while not self._stop.is_set():
            chunker = _Chunker(SAMPLE_RATE * self.chunk_ms // 1000)
            for x in self._decode():
                if skip:  # decoded (and resampled) from the start, as the first run was: same samples
                    cut = min(skip, len(x))
                    x, skip = x[cut:], skip - cut
                for b in chunker.push(x):
                    yield Captured(b, t0 + out_pos / SAMPLE_RATE)
                    out_pos += len(b)
                    if self.realtime:
                        self._stop.wait(max(0.0, t0 + out_pos / SAMPLE_RATE - time.time()))
            for b in chunker.flush():
                yield Captured(b, t0 + out_pos / SAMPLE_RATE)
                out_pos += len(b)
            if not self.loop:
                break
        self.online.clear()


class RtspSource(Source):
    """RTSP audio through PyAV. A server that dies looks like a normal end of stream over TCP and a
    frozen one only shows as a read timeout, so both count as an outage: the source goes offline,
    retries with exponential backoff, and the first block after it carries the lost time as a gap."""

    live = True

    def __init__(self, url: str, chunk_ms: int = 100, open_timeout_s: float = 3.0, read_timeout_s: float = 2.0,
                 backoff_initial_s: float = 0.25, backoff_max_s: float = 8.0, transport: str = "tcp"):
        super().__init__()
        self.url, self.chunk_ms = url, chunk_ms
        self.timeout = (open_timeout_s, read_timeout_s)
        self.backoff = (backoff_initial_s, backoff_max_s)
        self.options = {"rtsp_transport": transport}
        self.last_error: str | None = None

    def _session(self) -> Iterator[np.ndarray]:
        with av.open(self.url, options=self.options, timeout=self.timeout) as container:
            if not container.streams.audio:
                raise ValueError(f"expected an audio track at {self.url}, found none")
            res = None
            for frame in container.decode(container.streams.audio[0]):
                x = frame_to_array(frame)
                if res is None:
                    res = Resampler(frame.sample_rate, x.shape[1])
                    self.online.set()
                yield res(x)
                if self._stop.is_set():
                    return

    def blocks(self) -> Iterator[Captured]:
        backoff = self.backoff[0]
        next_ts: float | None = None  # capture time the next sample should have
        while not self._stop.is_set():
            chunker = _Chunker(SAMPLE_RATE * self.chunk_ms // 1000)
            session_ts: float | None = None
            pos = 0
            try:
                for x in self._session():
                    for b in chunker.push(x):
                        if session_ts is None:
                            session_ts = time.time() - len(b) / SAMPLE_RATE
                            gap = 0 if next_ts is None else max(0, round((session_ts - next_ts) * SAMPLE_RATE))
                            if gap:
                                log.warning("%s back online after %.2f s", self.url, gap / SAMPLE_RATE)
                        else:
                            gap = 0
                        ts = session_ts + pos / SAMPLE_RATE
                        pos += len(b)
                        next_ts = ts + len(b) / SAMPLE_RATE
                        backoff = self.backoff[0]
                        yield Captured(b, ts, gap)
                self.last_error = "end of stream"
            except (av.FFmpegError, OSError) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
            if self._stop.is_set():
                break
            if self.online.is_set():
                self.online.clear()
                self.outages += 1
            log.warning("%s offline (%s); retrying in %.2f s", self.url, self.last_error, backoff)
            self._stop.wait(backoff)
            backoff = min(backoff * 2, self.backoff[1])
        self.online.clear()


class MicSource(Source):
    """A sound card through sounddevice (PortAudio), lazily imported."""

    live = True

    def __init__(self, device: str | int | None = None, rate: int | None = None, channels: int = 1,
                 chunk_ms: int = 100):
        super().__init__()
        try:
            import sounddevice as sd
        except (ImportError, OSError) as exc:
            raise ValueError(
                f"microphone capture needs the sounddevice package and the PortAudio library "
                f"(Debian: libportaudio2): {exc}"
            ) from exc
        self.sd = sd
        devices = [d for d in sd.query_devices() if d["max_input_channels"] > 0]
        names = [f"{d['index']}: {d['name']}" for d in devices]
        try:
            info = sd.query_devices(device, kind="input")
        except (ValueError, sd.PortAudioError) as exc:
            raise ValueError(
                f"expected an input device {device!r}; input devices found: {names or 'none'} ({exc})"
            ) from None
        self.device = info["index"] if isinstance(info, dict) else device
        self.rate = rate or int(info["default_samplerate"])
        self.channels, self.chunk_ms = channels, chunk_ms

    def blocks(self) -> Iterator[Captured]:
        q: queue.Queue = queue.Queue(maxsize=1000)
        res = Resampler(self.rate, self.channels)

        def callback(indata, frames, time_info, status):
            if status:
                log.warning("microphone: %s", status)
            try:
                q.put_nowait((indata.copy(), time.time() - frames / self.rate))
            except queue.Full:
                log.warning("microphone queue full: block dropped")

        with self.sd.InputStream(device=self.device, samplerate=self.rate, channels=self.channels,
                                 dtype="float32", blocksize=self.rate * self.chunk_ms // 1000, callback=callback):
            self.online.set()
            while not self._stop.is_set():
                try:
                    x, ts = q.get(timeout=0.5)
                except queue.Empty:
                    continue
                y = res(x)
                if len(y):
                    yield Captured(y, ts)
        self.online.clear()


def open_source(uri: str, chunk_ms: int = 100, realtime: bool = False, loop: bool = False) -> Source:
    """Build the source a URI names (see the module docstring); ValueError on a bad URI."""
    u = urlparse(uri)
    q = {k: v[-1] for k, v in parse_qs(u.query).items()}
    if u.scheme in ("rtsp", "rtsps"):
        return RtspSource(uri, chunk_ms=chunk_ms)
    if u.scheme == "mic":
        dev = u.path or None
        dev = int(dev) if dev is not None and dev.isdigit() else dev
        return MicSource(dev, rate=int(q["rate"]) if "rate" in q else None,
                         channels=int(q.get("channels", 1)), chunk_ms=chunk_ms)
    if u.scheme == "gen":
        return GeneratedSource(
            kind=u.path or "sine", freq=float(q.get("freq", 440)), amp=float(q.get("amp", 0.5)),
            rate=int(q.get("rate", SAMPLE_RATE)), channels=int(q.get("channels", 1)),
            duration_s=float(q["duration"]) if "duration" in q else None, chunk_ms=chunk_ms,
            realtime=q.get("realtime", "1") != "0",
        )
    if u.scheme in ("", "file"):
        return FileSource(u.path if u.scheme == "file" else uri, chunk_ms=chunk_ms, realtime=realtime, loop=loop)
    raise ValueError(f"expected a source URI rtsp://, mic:, gen: or a file path, got {uri!r}")
