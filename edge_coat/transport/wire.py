"""Encode and decode the audio wire format (``protos/edge_coat/v1/audio.proto``).

A message is ZeroMQ multipart: ``[Frame]`` for control, ``[Frame(audio=header), pcm]`` for audio.
`decode` is the single gate every received message passes: it either returns a typed
`WireAudio`/control object or raises `WireError` whose ``reason`` names the counter the caller
increments. It never trusts a length, rate or format it has not checked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from google.protobuf.message import DecodeError

from edge_coat.messages import SAMPLE_RATE
from edge_coat.v1 import audio_pb2 as pb

PROTOCOL_VERSION = 1
S16 = pb.SAMPLE_FORMAT_S16LE
F32 = pb.SAMPLE_FORMAT_F32LE
_BYTES_PER_SAMPLE = {S16: 2, F32: 4}
_DTYPES = {S16: np.dtype("<i2"), F32: np.dtype("<f4")}
STREAM_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
#: Largest first frame accepted (an audio header is < 200 bytes; a Hello lists every stream of
#: its client at ~50 bytes each).
MAX_HEADER_BYTES = 1 << 20


class WireError(ValueError):
    """A message that cannot be accepted. ``reason`` is a short counter name."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True)
class WireAudio:
    """A decoded, structurally valid audio message.

    Attributes:
        samples: shape ``(num_frames,)`` float32 in [-1, 1], 16 kHz mono.
    """

    stream_id: str
    sender_epoch: int
    seq: int
    start_sample: int
    capture_ts: float
    samples: np.ndarray  # (num_frames,) float32
    gap_samples: int
    end_of_stream: bool


def check_stream_id(stream_id: str) -> str:
    if not isinstance(stream_id, str) or not STREAM_ID.match(stream_id):
        raise ValueError(f"stream id must be 1-128 chars of [A-Za-z0-9._:-], got {stream_id!r}")
    return stream_id


def to_pcm(samples: np.ndarray, sample_format: int) -> bytes:
    """(N,) float32 in [-1, 1] -> little-endian PCM bytes of `sample_format`."""
    if sample_format == S16:
        y = samples * np.float32(32768.0)  # one scratch array, then in place (this runs per chunk)
        np.rint(y, out=y)
        np.clip(y, -32768.0, 32767.0, out=y)
        return y.astype("<i2").tobytes()
    if sample_format == F32:
        return np.asarray(samples, dtype="<f4").tobytes()
    raise ValueError(f"sample_format must be S16LE or F32LE, got {sample_format}")


def encode_audio(
    stream_id: str,
    sender_epoch: int,
    seq: int,
    start_sample: int,
    capture_ts: float,
    samples: np.ndarray,  # (N,) float32, 16 kHz mono
    sample_format: int = S16,
    gap_samples: int = 0,
    end_of_stream: bool = False,
) -> list[bytes]:
    """Build the two frames of one audio chunk."""
    if samples.ndim != 1:
        raise ValueError(f"expected mono samples of shape (N,), got shape {samples.shape}")
    frame = pb.Frame(
        protocol_version=PROTOCOL_VERSION,
        audio=pb.AudioHeader(
            stream_id=stream_id,
            sender_epoch=sender_epoch,
            sequence=seq,
            start_sample=start_sample,
            capture_ts=capture_ts,
            sample_rate=SAMPLE_RATE,
            channels=1,
            sample_format=sample_format,
            num_frames=len(samples),
            gap=gap_samples > 0,
            gap_samples=gap_samples,
            end_of_stream=end_of_stream,
        ),
    )
    return [frame.SerializeToString(), to_pcm(samples, sample_format)]


def encode_control(**body) -> list[bytes]:
    """One control frame, e.g. ``encode_control(hello=pb.Hello(...))``."""
    return [pb.Frame(protocol_version=PROTOCOL_VERSION, **body).SerializeToString()]


def decode(frames: list[bytes], max_frames: int) -> WireAudio | pb.Frame:
    """Validate one received multipart message (routing frames already removed).

    Returns a `WireAudio` for audio, else the control `pb.Frame`. Raises `WireError`.
    `max_frames` bounds the samples per chunk (the "oversized" check).
    """
    if not frames or len(frames) > 2:
        raise WireError("malformed", f"expected 1 or 2 frames, got {len(frames)}")
    if len(frames[0]) > MAX_HEADER_BYTES:
        raise WireError("oversized", f"header of {len(frames[0])} bytes > {MAX_HEADER_BYTES}")
    frame = pb.Frame()
    try:
        frame.ParseFromString(frames[0])
    except (DecodeError, RuntimeWarning, ValueError) as exc:
        raise WireError("malformed", f"header does not parse: {exc}") from None
    if frame.protocol_version != PROTOCOL_VERSION:
        raise WireError("bad_version", f"expected protocol {PROTOCOL_VERSION}, got {frame.protocol_version}")
    kind = frame.WhichOneof("body")
    if kind is None:
        raise WireError("malformed", "frame has no body")
    if kind != "audio":
        if len(frames) != 1:
            raise WireError("malformed", f"{kind} must be a single frame, got {len(frames)}")
        return frame
    if len(frames) != 2:
        raise WireError("malformed", "audio needs a header and a payload frame")
    h = frame.audio
    if not STREAM_ID.match(h.stream_id):
        raise WireError("malformed", f"bad stream id {h.stream_id[:40]!r}")
    if h.sample_rate != SAMPLE_RATE or h.channels != 1:
        raise WireError("bad_format", f"expected {SAMPLE_RATE} Hz mono, got {h.sample_rate} Hz x {h.channels}")
    width = _BYTES_PER_SAMPLE.get(h.sample_format)
    if width is None:
        raise WireError("bad_format", f"expected S16LE or F32LE, got sample format {h.sample_format}")
    if h.num_frames > max_frames or len(frames[1]) > max_frames * width:
        raise WireError("oversized", f"{h.num_frames} samples / {len(frames[1])} bytes > {max_frames} samples")
    if len(frames[1]) != h.num_frames * width:
        raise WireError("malformed", f"payload {len(frames[1])} bytes != {h.num_frames} x {width}")
    if h.gap != (h.gap_samples > 0) or h.gap_samples > h.start_sample:
        raise WireError("malformed", f"gap flag {h.gap} / gap_samples {h.gap_samples} / start {h.start_sample}")
    if not np.isfinite(h.capture_ts):
        raise WireError("malformed", "capture_ts is not finite")
    pcm = np.frombuffer(frames[1], dtype=_DTYPES[h.sample_format])
    if h.sample_format == S16:
        samples = pcm.astype(np.float32) * np.float32(1 / 32768)
    else:
        if not np.isfinite(pcm).all():
            raise WireError("malformed", "payload has NaN or inf")
        samples = pcm.astype(np.float32)
    return WireAudio(
        stream_id=h.stream_id,
        sender_epoch=h.sender_epoch,
        seq=h.sequence,
        start_sample=h.start_sample,
        capture_ts=h.capture_ts,
        samples=samples,
        gap_samples=h.gap_samples,
        end_of_stream=h.end_of_stream,
    )
