"""Config sections of the worker's streaming half (windowing, gate, batching)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge_coat.messages import StreamId
from edge_coat.transport.config import ReceiverConfig


class TaskGateConfig(BaseModel):
    """When a window is worth a model call for one task."""

    model_config = ConfigDict(extra="forbid")

    min_rms_dbfs: float = Field(-70.0, ge=-200.0, le=0.0, description="skip windows quieter than this, dBFS")
    min_speech_ratio: float | None = Field(
        default=None, ge=0.0, le=1.0,
        description="skip windows with less speech than this fraction (needs a speech-presence function); "
        "None = no speech check",
    )


class StreamConfig(BaseModel):
    """Windowing and gating of one stream (or the default for streams not listed)."""

    model_config = ConfigDict(extra="forbid")

    window_s: float = Field(2.0, gt=0.0, le=60.0, description="window length, seconds")
    hop_s: float = Field(1.0, gt=0.0, le=60.0, description="step between window starts, seconds")
    tasks: dict[str, TaskGateConfig] = Field(
        default_factory=lambda: {"anomaly": TaskGateConfig()},
        description="task name -> its gate; a window goes to the model with the tasks whose gate it passes",
    )

    @model_validator(mode="after")
    def _check(self) -> "StreamConfig":
        if not self.tasks:
            raise ValueError("a stream needs at least one task in `tasks` (e.g. {'anomaly': {}})")
        return self


class BatchConfig(BaseModel):
    """Batching of windows across streams before the model stage."""

    model_config = ConfigDict(extra="forbid")

    max_batch: int = Field(16, ge=1, le=4096, description="windows per model call at most")
    max_wait_s: float = Field(0.05, ge=0.0, le=10.0, description="longest a window waits for a fuller batch")
    queue_windows: int = Field(
        10_000, ge=1, le=10_000_000,
        description="windows waiting for the model; beyond it the oldest are dropped and counted",
    )


class WorkerConfig(BaseModel):
    """The worker's streaming half: socket, per-stream windowing and gates, batching."""

    model_config = ConfigDict(extra="forbid")

    receiver: ReceiverConfig = Field(description="the ROUTER socket the capture clients connect to")
    default_stream: StreamConfig = Field(default_factory=StreamConfig, description="settings of streams not listed")
    streams: dict[StreamId, StreamConfig] = Field(default_factory=dict, description="per-stream overrides by stream id")
    batch: BatchConfig = Field(default_factory=BatchConfig, description="batching before the model stage")
    stream_idle_s: float = Field(
        600.0, gt=0.0, description="a stream silent this long is forgotten (it may join again later)"
    )
    window_phase: Literal["spread", "aligned"] = Field(
        "spread",
        description="spread: each new stream's window grid is shifted (by less than one hop) so that its windows "
        "fall due in the middle of the largest free stretch of the hop among the running streams; streams "
        "started together (a site's capture workers after a restart) then reach the model one by one instead "
        "of as one batch every hop, which on a CPU worker holds every window of the batch for the whole batch "
        "(8 aligned streams: p99 latency 3.5x one stream's; BENCHMARKS.md section 6). A new stream's first "
        "phase (< hop) seconds are in no window. aligned: every stream's windows start at multiples of the hop",
    )
    gc_gen0_threshold: int = Field(
        20_000, ge=0, le=10_000_000,
        description="when the worker starts, raise the interpreter's generation-0 garbage-collection threshold "
        "to this (process-wide, never lowered) and freeze the objects that exist then (imports, model, config) "
        "out of later collections. The ingest path allocates a few tracked objects per chunk that live about "
        "one window, and at Python's default of 700 the collector took ~10 % of the per-chunk time at 2,000 "
        "streams (bench/PROFILE.md, round 2). 0 leaves the collector as it is",
    )
    ingest_slice: int = Field(
        256, ge=1, le=1_000_000,
        description="the windowing thread works through a drained batch of chunks in slices of this many and "
        "hands the windows (and acknowledgements) of each slice on before the next: behind a backlog a drain "
        "holds thousands of chunks, and handing windows on only at its end added half of its working time to "
        "their latency (bench/PROFILE.md, round 3)",
    )

    def stream(self, stream_id: str) -> StreamConfig:
        return self.streams.get(stream_id, self.default_stream)
