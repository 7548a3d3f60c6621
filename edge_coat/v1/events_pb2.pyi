from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Tag(_message.Message):
    __slots__ = ("label", "score")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    label: str
    score: float
    def __init__(self, label: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class Evidence(_message.Message):
    __slots__ = ("window_start_ts", "window_end_ts", "scores", "readings", "tags", "gap_seconds", "model_name", "model_version", "details")
    class ScoresEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class ReadingsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    WINDOW_START_TS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_END_TS_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    READINGS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    GAP_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    window_start_ts: float
    window_end_ts: float
    scores: _containers.ScalarMap[str, float]
    readings: _containers.ScalarMap[str, float]
    tags: _containers.RepeatedCompositeFieldContainer[Tag]
    gap_seconds: float
    model_name: str
    model_version: str
    details: _struct_pb2.Struct
    def __init__(self, window_start_ts: _Optional[float] = ..., window_end_ts: _Optional[float] = ..., scores: _Optional[_Mapping[str, float]] = ..., readings: _Optional[_Mapping[str, float]] = ..., tags: _Optional[_Iterable[_Union[Tag, _Mapping]]] = ..., gap_seconds: _Optional[float] = ..., model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., details: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("id", "stream_id", "kind", "phase", "episode_id", "label", "score", "window_start_ts", "window_end_ts", "created_ts", "text", "evidence")
    ID_FIELD_NUMBER: _ClassVar[int]
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    EPISODE_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    WINDOW_START_TS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_END_TS_FIELD_NUMBER: _ClassVar[int]
    CREATED_TS_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    id: int
    stream_id: str
    kind: str
    phase: str
    episode_id: str
    label: str
    score: float
    window_start_ts: float
    window_end_ts: float
    created_ts: float
    text: str
    evidence: Evidence
    def __init__(self, id: _Optional[int] = ..., stream_id: _Optional[str] = ..., kind: _Optional[str] = ..., phase: _Optional[str] = ..., episode_id: _Optional[str] = ..., label: _Optional[str] = ..., score: _Optional[float] = ..., window_start_ts: _Optional[float] = ..., window_end_ts: _Optional[float] = ..., created_ts: _Optional[float] = ..., text: _Optional[str] = ..., evidence: _Optional[_Union[Evidence, _Mapping]] = ...) -> None: ...

class SubscribeRequest(_message.Message):
    __slots__ = ("stream_ids", "kinds", "min_score", "from_cursor")
    STREAM_IDS_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    MIN_SCORE_FIELD_NUMBER: _ClassVar[int]
    FROM_CURSOR_FIELD_NUMBER: _ClassVar[int]
    stream_ids: _containers.RepeatedScalarFieldContainer[str]
    kinds: _containers.RepeatedScalarFieldContainer[str]
    min_score: float
    from_cursor: int
    def __init__(self, stream_ids: _Optional[_Iterable[str]] = ..., kinds: _Optional[_Iterable[str]] = ..., min_score: _Optional[float] = ..., from_cursor: _Optional[int] = ...) -> None: ...

class SubscribeResponse(_message.Message):
    __slots__ = ("events", "cursor", "head", "heartbeat", "server_time")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    HEAD_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    SERVER_TIME_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[Event]
    cursor: int
    head: int
    heartbeat: bool
    server_time: float
    def __init__(self, events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ..., cursor: _Optional[int] = ..., head: _Optional[int] = ..., heartbeat: _Optional[bool] = ..., server_time: _Optional[float] = ...) -> None: ...

class EnrollmentStatus(_message.Message):
    __slots__ = ("stream_id", "state", "collected", "target_windows", "target_seconds", "threshold", "message")
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    COLLECTED_FIELD_NUMBER: _ClassVar[int]
    TARGET_WINDOWS_FIELD_NUMBER: _ClassVar[int]
    TARGET_SECONDS_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    stream_id: str
    state: str
    collected: int
    target_windows: int
    target_seconds: float
    threshold: float
    message: str
    def __init__(self, stream_id: _Optional[str] = ..., state: _Optional[str] = ..., collected: _Optional[int] = ..., target_windows: _Optional[int] = ..., target_seconds: _Optional[float] = ..., threshold: _Optional[float] = ..., message: _Optional[str] = ...) -> None: ...

class DetectorStatus(_message.Message):
    __slots__ = ("kind", "active_episode", "label", "last_score", "windows", "note", "enrollment", "details")
    KIND_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_EPISODE_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    LAST_SCORE_FIELD_NUMBER: _ClassVar[int]
    WINDOWS_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    ENROLLMENT_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    kind: str
    active_episode: str
    label: str
    last_score: float
    windows: int
    note: str
    enrollment: EnrollmentStatus
    details: _struct_pb2.Struct
    def __init__(self, kind: _Optional[str] = ..., active_episode: _Optional[str] = ..., label: _Optional[str] = ..., last_score: _Optional[float] = ..., windows: _Optional[int] = ..., note: _Optional[str] = ..., enrollment: _Optional[_Union[EnrollmentStatus, _Mapping]] = ..., details: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class StreamStatus(_message.Message):
    __slots__ = ("stream_id", "last_window_ts", "windows", "model_name", "model_version", "enrollment", "anomaly_episode", "emotion_episode", "model_only", "updated_ts", "details", "detectors", "tasks")
    class DetectorsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: DetectorStatus
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[DetectorStatus, _Mapping]] = ...) -> None: ...
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_WINDOW_TS_FIELD_NUMBER: _ClassVar[int]
    WINDOWS_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    ENROLLMENT_FIELD_NUMBER: _ClassVar[int]
    ANOMALY_EPISODE_FIELD_NUMBER: _ClassVar[int]
    EMOTION_EPISODE_FIELD_NUMBER: _ClassVar[int]
    MODEL_ONLY_FIELD_NUMBER: _ClassVar[int]
    UPDATED_TS_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    DETECTORS_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    stream_id: str
    last_window_ts: float
    windows: int
    model_name: str
    model_version: str
    enrollment: EnrollmentStatus
    anomaly_episode: str
    emotion_episode: str
    model_only: bool
    updated_ts: float
    details: _struct_pb2.Struct
    detectors: _containers.MessageMap[str, DetectorStatus]
    tasks: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, stream_id: _Optional[str] = ..., last_window_ts: _Optional[float] = ..., windows: _Optional[int] = ..., model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., enrollment: _Optional[_Union[EnrollmentStatus, _Mapping]] = ..., anomaly_episode: _Optional[str] = ..., emotion_episode: _Optional[str] = ..., model_only: _Optional[bool] = ..., updated_ts: _Optional[float] = ..., details: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., detectors: _Optional[_Mapping[str, DetectorStatus]] = ..., tasks: _Optional[_Iterable[str]] = ...) -> None: ...

class ListStreamsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListStreamsResponse(_message.Message):
    __slots__ = ("streams",)
    STREAMS_FIELD_NUMBER: _ClassVar[int]
    streams: _containers.RepeatedCompositeFieldContainer[StreamStatus]
    def __init__(self, streams: _Optional[_Iterable[_Union[StreamStatus, _Mapping]]] = ...) -> None: ...

class GetStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ServiceStatus(_message.Message):
    __slots__ = ("version", "head", "oldest", "events_stored", "subscribers", "uptime_s", "streams")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    HEAD_FIELD_NUMBER: _ClassVar[int]
    OLDEST_FIELD_NUMBER: _ClassVar[int]
    EVENTS_STORED_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBERS_FIELD_NUMBER: _ClassVar[int]
    UPTIME_S_FIELD_NUMBER: _ClassVar[int]
    STREAMS_FIELD_NUMBER: _ClassVar[int]
    version: str
    head: int
    oldest: int
    events_stored: int
    subscribers: int
    uptime_s: float
    streams: _containers.RepeatedCompositeFieldContainer[StreamStatus]
    def __init__(self, version: _Optional[str] = ..., head: _Optional[int] = ..., oldest: _Optional[int] = ..., events_stored: _Optional[int] = ..., subscribers: _Optional[int] = ..., uptime_s: _Optional[float] = ..., streams: _Optional[_Iterable[_Union[StreamStatus, _Mapping]]] = ...) -> None: ...

class StartEnrollmentRequest(_message.Message):
    __slots__ = ("stream_id", "windows", "seconds")
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    WINDOWS_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    stream_id: str
    windows: int
    seconds: float
    def __init__(self, stream_id: _Optional[str] = ..., windows: _Optional[int] = ..., seconds: _Optional[float] = ...) -> None: ...

class StopEnrollmentRequest(_message.Message):
    __slots__ = ("stream_id", "discard")
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    DISCARD_FIELD_NUMBER: _ClassVar[int]
    stream_id: str
    discard: bool
    def __init__(self, stream_id: _Optional[str] = ..., discard: _Optional[bool] = ...) -> None: ...

class GetEnrollmentRequest(_message.Message):
    __slots__ = ("stream_id",)
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    stream_id: str
    def __init__(self, stream_id: _Optional[str] = ...) -> None: ...
