"""Encode and decode the audio wire format (``protos/edge_coat/v1/audio.proto``).

A message is ZeroMQ multipart: ``[Frame]`` for control, ``[Frame(audio=header), pcm]`` for audio.
`decode` (or `decode_parts`, the same check on frames already split by the socket loop) is the
single gate every received message passes: it either returns a typed `WireAudio`/control object or
raises `WireError` whose ``reason`` names the counter the caller increments. It never trusts a
length, rate or format it has not checked.

Decoding runs once per chunk in the worker's socket thread (20,000 times a second at 2,000
streams), so it does no sample arithmetic: the payload is handed on as a zero-copy view of the
received bytes and converted once, straight into the stream's ring buffer (`worker.windowing`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from google.protobuf.message import DecodeError

from edge_coat.messages import SAMPLE_RATE, StreamId, is_stream_id
from edge_coat.v1 import audio_pb2 as pb

PROTOCOL_VERSION = 1
S16 = pb.SAMPLE_FORMAT_S16LE
F32 = pb.SAMPLE_FORMAT_F32LE
_BYTES_PER_SAMPLE = {S16: 2, F32: 4}
_I16 = np.dtype("<i2")
_DTYPES = {S16: _I16, F32: np.dtype("<f4")}
#: Largest first frame accepted (an audio header is < 200 bytes; a Hello lists every stream of
#: its client at ~50 bytes each).
MAX_HEADER_BYTES = 1 << 20
#: Stream ids already checked with `messages.is_stream_id` (a set lookup is 10x cheaper than the regex);
#: bounded, so a client inventing ids cannot grow it without limit.
_valid_ids: set[str] = set()
_MAX_VALID_IDS = 100_000


class WireError(ValueError):
    """A message that cannot be accepted. ``reason`` is a short counter name."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


class WireAudio(NamedTuple):
    """A decoded, structurally valid audio message (immutable).

    A NamedTuple rather than the house's frozen dataclass: one is built per received chunk in the
    socket thread, and a frozen dataclass's ``__init__`` (one ``object.__setattr__`` per field)
    measured 2.9 us against 0.5 us here (bench/PROFILE.md).

    Attributes:
        samples: shape ``(num_frames,)``, 16 kHz mono, either int16 PCM as received (full scale
            32768) or float32 in [-1, 1]; from `decode`, a read-only view of the payload, no copy. Use
            `as_float` for float32 in [-1, 1] whatever the wire format was.
    """

    stream_id: StreamId
    sender_epoch: int
    seq: int
    start_sample: int
    capture_ts: float
    samples: np.ndarray  # (num_frames,) int16 or float32
    gap_samples: int
    end_of_stream: bool


_new_tuple = tuple.__new__


def as_float(samples: np.ndarray) -> np.ndarray:
    """(N,) int16 PCM or float32 -> (N,) float32 in [-1, 1]."""
    if samples.dtype == _I16:
        return samples.astype(np.float32) * np.float32(1 / 32768)
    return np.asarray(samples, dtype=np.float32)


def to_pcm(samples: np.ndarray, sample_format: int) -> bytes:
    """(N,) float32 in [-1, 1] -> little-endian PCM bytes of `sample_format`."""
    if sample_format == S16:
        y = samples * np.float32(32768.0)  # one scratch array, then in place (this runs per chunk)
        np.rint(y, out=y)
        np.clip(y, -32768.0, 32767.0, out=y)
        return y.astype("<i2").tobytes()
    if sample_format == F32:
        return np.clip(samples, -1.0, 1.0).astype("<f4", copy=False).tobytes()
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
    return decode_parts(frames[0], frames[1] if len(frames) == 2 else None, max_frames)


def decode_parts(header: bytes, payload, max_frames: int) -> WireAudio | pb.Frame:
    """`decode` for a message already split into its header frame and its payload frame: bytes or
    any buffer (a `zmq.Frame`, which the samples then view without a copy), or None when the
    message had only one frame."""
    if len(header) > MAX_HEADER_BYTES:
        raise WireError("oversized", f"header of {len(header)} bytes > {MAX_HEADER_BYTES}")
    frame = pb.Frame()
    try:
        frame.ParseFromString(header)
    except (DecodeError, RuntimeWarning, ValueError) as exc:
        raise WireError("malformed", f"header does not parse: {exc}") from None
    if frame.protocol_version != PROTOCOL_VERSION:
        raise WireError("bad_version", f"expected protocol {PROTOCOL_VERSION}, got {frame.protocol_version}")
    kind = frame.WhichOneof("body")
    if kind is None:
        raise WireError("malformed", "frame has no body")
    if kind != "audio":
        if payload is not None:
            raise WireError("malformed", f"{kind} must be a single frame, got 2")
        return frame
    if payload is None:
        raise WireError("malformed", "audio needs a header and a payload frame")
    h = frame.audio
    stream_id = h.stream_id
    if stream_id not in _valid_ids:
        if not is_stream_id(stream_id):
            raise WireError("malformed", f"bad stream id {stream_id[:40]!r}")
        if len(_valid_ids) >= _MAX_VALID_IDS:
            _valid_ids.clear()
        _valid_ids.add(stream_id)
    if h.sample_rate != SAMPLE_RATE or h.channels != 1:
        raise WireError("bad_format", f"expected {SAMPLE_RATE} Hz mono, got {h.sample_rate} Hz x {h.channels}")
    fmt = h.sample_format
    width = _BYTES_PER_SAMPLE.get(fmt)
    if width is None:
        raise WireError("bad_format", f"expected S16LE or F32LE, got sample format {fmt}")
    num_frames, nbytes = h.num_frames, len(payload)
    if num_frames > max_frames or nbytes > max_frames * width:
        raise WireError("oversized", f"{num_frames} samples / {nbytes} bytes > {max_frames} samples")
    if nbytes != num_frames * width:
        raise WireError("malformed", f"payload {nbytes} bytes != {num_frames} x {width}")
    gap_samples, start_sample = h.gap_samples, h.start_sample
    if h.gap != (gap_samples > 0) or gap_samples > start_sample:
        raise WireError("malformed", f"gap flag {h.gap} / gap_samples {gap_samples} / start {start_sample}")
    capture_ts = h.capture_ts
    if not math.isfinite(capture_ts):
        raise WireError("malformed", "capture_ts is not finite")
    # (num_frames,) view of the payload, no copy; the dtype passed by position: as a keyword,
    # numpy's argument parsing costs 0.35 us more per chunk (bench/PROFILE.md, round 3)
    samples = np.frombuffer(payload, _DTYPES[fmt])
    samples.setflags(write=False)  # the received bytes are nobody's to change (the ring keeps them)
    if fmt == F32 and num_frames and not float(np.abs(samples).max()) <= 1.0:
        # one pass catches NaN (the comparison fails), inf and finite values beyond full scale, which
        # would overflow the int16-unit ring and the gate's power sum (1e30 ** 2)
        raise WireError("out_of_range", "F32LE payload has NaN, inf or samples beyond [-1, 1]")
    # tuple.__new__ straight away: the NamedTuple's own __new__ is a Python-level function (0.4 us more)
    return _new_tuple(WireAudio, (stream_id, h.sender_epoch, h.sequence, start_sample, capture_ts, samples,
                                  gap_samples, h.end_of_stream))
