"""Typed messages passed between pipeline stages.

The data flows one way::

    capture --wire (transport.wire.WireAudio)--> worker --Window--> model
        --WindowResult--> detectors --EventRecord--> events (durable log, gRPC)

behind a stream's last window: ``EndOfStream`` (worker -> detectors, through the same queues). Ahead of
a stream's windows, when the model stage asks for them: ``AudioChunk`` (worker -> model, encoded before the
windows that hold it are due). The
detectors report ``StreamStatus`` (``DetectorStatus`` per detector, ``EnrollmentStatus``) to the event
service, the shared log and the console. Every stream id is a ``StreamId`` (one rule, checked where it
enters). Every array field states its shape and dtype. Messages are frozen: a stage never mutates what
it received, it produces a new message.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from typing import Annotated

import numpy as np
from pydantic import AfterValidator

#: The one sample rate every stage after capture works at.
SAMPLE_RATE = 16_000

#: The stream id rule (**contract**: ``protos/edge_coat/v1/audio.proto`` documents the same words). A stream
#: id names a profile file, a metric label and a log key, so it may not start with '.' or '-'.
STREAM_ID_RULE = "1-128 characters of letters, digits, '.', '_', ':' or '-', starting with a letter or digit"
_STREAM_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def is_stream_id(value: object) -> bool:
    """Whether ``value`` is a valid stream id (`STREAM_ID_RULE`; the whole string, no trailing newline)."""
    return isinstance(value, str) and _STREAM_ID.fullmatch(value) is not None


def check_stream_id(value: object) -> str:
    """``value`` if it is a valid stream id, else ValueError naming the rule."""
    if not is_stream_id(value):
        shown = repr(value) if not isinstance(value, str) or len(value) <= 60 else repr(value[:60]) + "..."
        raise ValueError(f"stream id must be {STREAM_ID_RULE}; got {shown}")
    return value  # type: ignore[return-value]


#: A stream id, validated once where it enters: a config key or field (pydantic runs `check_stream_id`),
#: the wire (``transport.wire.decode``), a capture thread, an enrollment request. Every stage after that
#: takes it as given.
StreamId = Annotated[str, AfterValidator(check_stream_id)]


@dataclass(frozen=True)
class Window:
    """One analysis window cut from a stream's ring buffer.

    Attributes:
        stream_id: the stream it came from.
        index: per-stream window counter.
        start_sample: index of the first sample in the stream's timeline (gaps included).
        start_ts / end_ts: capture wall-clock time of the first sample and just after the last.
        samples: shape ``(num_samples,)``, float32, 16 kHz mono. Gaps are zero-filled.
        gap_seconds: audio missing inside this window (zero-filled), in seconds.
        rms_dbfs: window loudness, dBFS.
        speech_ratio: fraction of the window judged speech by the gate's VAD, or ``None``
            when the gate did not run one.
        tasks: the tasks this window should be analysed for (e.g. ``("anomaly",)``).
        sender_epoch: the capture run the window's audio came from (0: unknown). A new one on a known
            stream is a new run: the detectors end what the previous run left open.
    """

    stream_id: StreamId
    index: int
    start_sample: int
    start_ts: float
    end_ts: float
    samples: np.ndarray  # (num_samples,) float32
    gap_seconds: float = 0.0
    rms_dbfs: float = -120.0
    speech_ratio: float | None = None
    tasks: tuple[str, ...] = ()
    sender_epoch: int = 0

    @property
    def duration(self) -> float:
        return len(self.samples) / SAMPLE_RATE


@dataclass(frozen=True)
class AudioChunk:
    """One encoder chunk of a stream's audio, handed to the model stage before the windows that hold it
    are due, so the stage can encode it while it would otherwise wait (``ModelStage.encode_ahead``).

    Cut by the worker's windowing on the stream's chunk grid (``start_sample`` a multiple of the chunk
    length, which divides the hop), only when no window cut so far holds it and no gap touches it; its
    samples equal the same stretch of every window that holds it, bit for bit.

    Attributes:
        stream_id: the stream it came from.
        start_sample: index of its first sample in the stream's timeline (gaps included).
        samples: shape ``(chunk_samples,)``, float32, 16 kHz mono.
        sender_epoch: the capture run its audio came from (as ``Window.sender_epoch``).
    """

    stream_id: StreamId
    start_sample: int
    samples: np.ndarray  # (chunk_samples,) float32
    sender_epoch: int = 0


@dataclass(frozen=True)
class WindowResult:
    """What the model stage says about one window.

    Attributes:
        window: the window analysed (samples included, for enrollment and evidence).
        label_probs: task name -> {label: probability}; each inner dict sums to 1.
        thinking: shape ``(K, D)`` float32: the hidden states at the thinking positions
            (the latents detectors compare against a stream's normal profile), or ``None``.
        readings: expert readings worth showing as evidence (``pitch_hz``, ``loudness_dbfs``,
            ``speech_ratio``, ...), plain floats.
        tags: top sound-event tags as ``(label, score)`` pairs, best first.
        caption: optional short free text from the model.
        model_name / model_version: which model produced this.
        latency_ms: stage name -> milliseconds spent on this window's batch.
    """

    window: Window
    label_probs: dict[str, dict[str, float]]
    thinking: np.ndarray | None = None  # (K, D) float32
    readings: dict[str, float] = field(default_factory=dict)
    tags: tuple[tuple[str, float], ...] = ()
    caption: str | None = None
    model_name: str = ""
    model_version: str = ""
    latency_ms: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class EventRecord:
    """A detector's output, before the event log assigns it an id.

    Attributes:
        stream_id: the stream it concerns.
        kind: ``"anomaly"`` or ``"emotion"`` (more may follow).
        phase: ``"start"``, ``"update"`` or ``"end"`` of an episode.
        episode_id: groups the phases of one episode (unique per stream and kind).
        label: what was detected (``"abnormal"``, ``"angry"``, ...).
        score: the calibrated score that drove the decision, in [0, 1].
        window_start_ts / window_end_ts: the evidence window, capture wall-clock seconds.
        text: a short human-readable summary.
        evidence: scores, expert readings, gaps, model name/version; JSON-serialisable values.
    """

    stream_id: StreamId
    kind: str
    phase: str
    episode_id: str
    label: str
    score: float
    window_start_ts: float
    window_end_ts: float
    text: str
    evidence: dict = field(default_factory=dict)


@dataclass(frozen=True)
class EndOfStream:
    """Follows a stream's last window through the worker's queues (never dropped, never reordered
    ahead of a window of its stream), so the detectors close the stream's episodes after judging its
    last window, in order, without the service polling counters.

    Attributes:
        stream_id: the stream that ended.
        ts: capture wall-clock time just after the stream's last sample (0.0 when none was seen).
        reason: ``"ended"`` (the source sent end-of-stream) or ``"idle"`` (silent for
            ``worker.stream_idle_s`` and forgotten).
    """

    stream_id: StreamId
    ts: float
    reason: str = "ended"


@dataclass(frozen=True)
class EnrollmentStatus:
    """Where a stream's enrollment (a detector's normal profile) stands.

    Attributes:
        state: ``"none"``, ``"pending"`` (queued for a worker in another process), ``"enrolling"``,
            ``"ready"`` or ``"stale"`` (a profile that no longer fits the model's windows).
        collected / target_windows / target_seconds: progress of an enrollment under way.
        threshold: distance threshold of the fitted profile (0.0 without one).
        message: one line for a person; last_error: the last refused request or failed fit.
        profile: summary of the fitted profile (method, features, n, threshold, ...), JSON values.
    """

    stream_id: StreamId
    state: str = "none"
    collected: int = 0
    target_windows: int = 0
    target_seconds: float = 0.0
    threshold: float = 0.0
    message: str = ""
    last_error: str = ""
    profile: dict = field(default_factory=dict)


@dataclass(frozen=True)
class DetectorStatus:
    """One detector's state on one stream.

    Attributes:
        kind: the detector's type (the events' ``kind``): ``"anomaly"``, ``"emotion"``, a plugin's.
        active_episode: id of the open episode, ``""`` when none.
        label: label of the open (or last) episode.
        last_score: the last window's score, None before the first.
        windows: windows this detector judged (or collected for enrollment).
        note: one line for a person (e.g. "no normal profile: model judgement only").
        enrollment: for detectors that enroll (the `Enrolling` capability), else None.
        details: kind-specific values, JSON-ready (``model_only``, ``speech_windows``, ...).
    """

    kind: str
    active_episode: str = ""
    label: str = ""
    last_score: float | None = None
    windows: int = 0
    note: str = ""
    enrollment: EnrollmentStatus | None = None
    details: dict = field(default_factory=dict)


@dataclass(frozen=True)
class StreamStatus:
    """What the worker knows about one stream (``ListStreams``, ``edge-coat status``, the shared log).

    Attributes:
        last_window_ts: capture time at the end of the last window judged.
        windows / tasks: windows that reached the detectors and the tasks they carried.
        detectors: detector name (its ``detectors:`` config key) -> its status on this stream.
        details: what the process adds: ``model`` (runtime, providers), ``pipeline`` (the worker's
            counters), ``capture`` (a local source's state); JSON values.
        updated_ts: when the worker reported it (0.0 in the worker itself).
    """

    stream_id: StreamId
    last_window_ts: float = 0.0
    windows: int = 0
    tasks: tuple[str, ...] = ()
    model_name: str = ""
    model_version: str = ""
    detectors: dict[str, DetectorStatus] = field(default_factory=dict)
    details: dict = field(default_factory=dict)
    updated_ts: float = 0.0

    def of_kind(self, kind: str) -> DetectorStatus | None:
        """The status of the first detector of type ``kind`` (e.g. "anomaly"), or None."""
        return next((d for d in self.detectors.values() if d.kind == kind), None)

    def enrollment(self) -> EnrollmentStatus:
        """The first enrolling detector's enrollment, or a ``"none"`` status."""
        for d in self.detectors.values():
            if d.enrollment is not None:
                return d.enrollment
        return EnrollmentStatus(self.stream_id, message="no detector of this stream enrolls")

    def to_dict(self) -> dict:
        """JSON-ready dict (the shared log stores it); `from_dict` reads it back."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "StreamStatus":
        """Inverse of `to_dict`; keys it does not know (a newer or older writer's) are ignored."""
        detectors = {}
        for name, d in (data.get("detectors") or {}).items():
            enr = d.get("enrollment")
            detectors[name] = DetectorStatus(**{**_known(DetectorStatus, d),
                                                "enrollment": EnrollmentStatus(**_known(EnrollmentStatus, enr))
                                                if enr else None})
        return cls(**{**_known(cls, data), "tasks": tuple(data.get("tasks") or ()), "detectors": detectors})


def _known(cls, data: dict) -> dict:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}
