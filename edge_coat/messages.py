"""Typed messages passed between pipeline stages.

The data flows one way::

    capture --AudioChunk--> transport --AudioChunk--> worker --Window--> model
        --WindowResult--> detectors --EventRecord--> events (durable log, gRPC)

Every array field states its shape and dtype. Messages are frozen: a stage never mutates what
it received, it produces a new message.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: The one sample rate every stage after capture works at.
SAMPLE_RATE = 16_000


@dataclass(frozen=True)
class AudioChunk:
    """A run of contiguous mono samples from one stream, as sent over the wire.

    Attributes:
        stream_id: the source's stable name (e.g. ``"press-3"`` or ``"call-8812"``).
        seq: per-stream sequence number, +1 per chunk, starting at 0.
        capture_ts: wall-clock time (seconds since the epoch) of the chunk's first sample.
        samples: shape ``(num_samples,)``, float32 in [-1, 1], 16 kHz mono.
        gap_samples: samples known to be missing *before* this chunk (capture-side overflow,
            source outage); 0 on a lossless path.
        end_of_stream: the source ended; no chunk follows with this stream id and epoch.
    """

    stream_id: str
    seq: int
    capture_ts: float
    samples: np.ndarray  # (num_samples,) float32
    gap_samples: int = 0
    end_of_stream: bool = False


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
    """

    stream_id: str
    index: int
    start_sample: int
    start_ts: float
    end_ts: float
    samples: np.ndarray  # (num_samples,) float32
    gap_seconds: float = 0.0
    rms_dbfs: float = -120.0
    speech_ratio: float | None = None
    tasks: tuple[str, ...] = ()

    @property
    def duration(self) -> float:
        return len(self.samples) / SAMPLE_RATE


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

    stream_id: str
    kind: str
    phase: str
    episode_id: str
    label: str
    score: float
    window_start_ts: float
    window_end_ts: float
    text: str
    evidence: dict = field(default_factory=dict)
