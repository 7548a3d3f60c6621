"""Config section of the capture stage."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from edge_coat.messages import StreamId
from edge_coat.transport.config import SenderConfig


class SourceConfig(BaseModel):
    """One audio source and the stream it feeds."""

    model_config = ConfigDict(extra="forbid")

    uri: str = Field(description="rtsp://..., mic:[DEVICE], gen:sine?freq=440, or a file path")
    stream_id: StreamId = Field(description="stable stream name (messages.STREAM_ID_RULE)")
    chunk_ms: int = Field(100, ge=10, le=2000, description="audio per message, milliseconds")
    realtime: bool = Field(False, description="files: pace reading at real time")
    loop: bool = Field(False, description="files: start again at the end")


class CaptureConfig(BaseModel):
    """Sources of one capture process and the link they share."""

    model_config = ConfigDict(extra="forbid")

    sources: list[SourceConfig] = Field(min_length=1, description="the sources, one thread each")
    sender: SenderConfig = Field(description="link to the worker")
    state_dir: Path | None = Field(
        Path("capture-state"),
        description="where file sources record how far the worker acknowledged them, so a restarted capture "
        "resumes there instead of sending the file again (relative: to the working directory; null: off)",
    )
