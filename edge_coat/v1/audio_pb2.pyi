from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SampleFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SAMPLE_FORMAT_UNSPECIFIED: _ClassVar[SampleFormat]
    SAMPLE_FORMAT_S16LE: _ClassVar[SampleFormat]
    SAMPLE_FORMAT_F32LE: _ClassVar[SampleFormat]
SAMPLE_FORMAT_UNSPECIFIED: SampleFormat
SAMPLE_FORMAT_S16LE: SampleFormat
SAMPLE_FORMAT_F32LE: SampleFormat

class AudioHeader(_message.Message):
    __slots__ = ("stream_id", "sender_epoch", "sequence", "start_sample", "capture_ts", "sample_rate", "channels", "sample_format", "num_frames", "gap", "gap_samples", "end_of_stream")
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    SENDER_EPOCH_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    START_SAMPLE_FIELD_NUMBER: _ClassVar[int]
    CAPTURE_TS_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    NUM_FRAMES_FIELD_NUMBER: _ClassVar[int]
    GAP_FIELD_NUMBER: _ClassVar[int]
    GAP_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    END_OF_STREAM_FIELD_NUMBER: _ClassVar[int]
    stream_id: str
    sender_epoch: int
    sequence: int
    start_sample: int
    capture_ts: float
    sample_rate: int
    channels: int
    sample_format: SampleFormat
    num_frames: int
    gap: bool
    gap_samples: int
    end_of_stream: bool
    def __init__(self, stream_id: _Optional[str] = ..., sender_epoch: _Optional[int] = ..., sequence: _Optional[int] = ..., start_sample: _Optional[int] = ..., capture_ts: _Optional[float] = ..., sample_rate: _Optional[int] = ..., channels: _Optional[int] = ..., sample_format: _Optional[_Union[SampleFormat, str]] = ..., num_frames: _Optional[int] = ..., gap: _Optional[bool] = ..., gap_samples: _Optional[int] = ..., end_of_stream: _Optional[bool] = ...) -> None: ...

class StreamResume(_message.Message):
    __slots__ = ("stream_id", "sender_epoch", "next_sequence", "next_sample")
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    SENDER_EPOCH_FIELD_NUMBER: _ClassVar[int]
    NEXT_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    NEXT_SAMPLE_FIELD_NUMBER: _ClassVar[int]
    stream_id: str
    sender_epoch: int
    next_sequence: int
    next_sample: int
    def __init__(self, stream_id: _Optional[str] = ..., sender_epoch: _Optional[int] = ..., next_sequence: _Optional[int] = ..., next_sample: _Optional[int] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("client_id", "sender_epoch", "streams")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    SENDER_EPOCH_FIELD_NUMBER: _ClassVar[int]
    STREAMS_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    sender_epoch: int
    streams: _containers.RepeatedCompositeFieldContainer[StreamResume]
    def __init__(self, client_id: _Optional[str] = ..., sender_epoch: _Optional[int] = ..., streams: _Optional[_Iterable[_Union[StreamResume, _Mapping]]] = ...) -> None: ...

class Welcome(_message.Message):
    __slots__ = ("worker_epoch",)
    WORKER_EPOCH_FIELD_NUMBER: _ClassVar[int]
    worker_epoch: int
    def __init__(self, worker_epoch: _Optional[int] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("ts",)
    TS_FIELD_NUMBER: _ClassVar[int]
    ts: float
    def __init__(self, ts: _Optional[float] = ...) -> None: ...

class StreamAck(_message.Message):
    __slots__ = ("stream_id", "sender_epoch", "sequence")
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    SENDER_EPOCH_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    stream_id: str
    sender_epoch: int
    sequence: int
    def __init__(self, stream_id: _Optional[str] = ..., sender_epoch: _Optional[int] = ..., sequence: _Optional[int] = ...) -> None: ...

class Ack(_message.Message):
    __slots__ = ("worker_epoch", "streams")
    WORKER_EPOCH_FIELD_NUMBER: _ClassVar[int]
    STREAMS_FIELD_NUMBER: _ClassVar[int]
    worker_epoch: int
    streams: _containers.RepeatedCompositeFieldContainer[StreamAck]
    def __init__(self, worker_epoch: _Optional[int] = ..., streams: _Optional[_Iterable[_Union[StreamAck, _Mapping]]] = ...) -> None: ...

class Frame(_message.Message):
    __slots__ = ("protocol_version", "audio", "hello", "welcome", "heartbeat", "ack")
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    HELLO_FIELD_NUMBER: _ClassVar[int]
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    protocol_version: int
    audio: AudioHeader
    hello: Hello
    welcome: Welcome
    heartbeat: Heartbeat
    ack: Ack
    def __init__(self, protocol_version: _Optional[int] = ..., audio: _Optional[_Union[AudioHeader, _Mapping]] = ..., hello: _Optional[_Union[Hello, _Mapping]] = ..., welcome: _Optional[_Union[Welcome, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., ack: _Optional[_Union[Ack, _Mapping]] = ...) -> None: ...
