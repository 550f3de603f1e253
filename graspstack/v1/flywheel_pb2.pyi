import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from graspstack.v1 import frames_pb2 as _frames_pb2
from graspstack.v1 import pose_pb2 as _pose_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class HardCase(_message.Message):
    __slots__ = ("case_id", "frame_id", "frame", "trigger", "trigger_config_version", "model_version", "poses", "shadow_poses", "robot_id", "stage", "created_at", "ground_truth", "has_ground_truth", "detail_json")
    CASE_ID_FIELD_NUMBER: _ClassVar[int]
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_CONFIG_VERSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    POSES_FIELD_NUMBER: _ClassVar[int]
    SHADOW_POSES_FIELD_NUMBER: _ClassVar[int]
    ROBOT_ID_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    GROUND_TRUTH_FIELD_NUMBER: _ClassVar[int]
    HAS_GROUND_TRUTH_FIELD_NUMBER: _ClassVar[int]
    DETAIL_JSON_FIELD_NUMBER: _ClassVar[int]
    case_id: str
    frame_id: str
    frame: _frames_pb2.Frame
    trigger: str
    trigger_config_version: str
    model_version: str
    poses: _containers.RepeatedCompositeFieldContainer[_pose_pb2.ObjectPose]
    shadow_poses: _containers.RepeatedCompositeFieldContainer[_pose_pb2.ObjectPose]
    robot_id: str
    stage: str
    created_at: _timestamp_pb2.Timestamp
    ground_truth: _containers.RepeatedCompositeFieldContainer[_pose_pb2.ObjectPose]
    has_ground_truth: bool
    detail_json: str
    def __init__(self, case_id: _Optional[str] = ..., frame_id: _Optional[str] = ..., frame: _Optional[_Union[_frames_pb2.Frame, _Mapping]] = ..., trigger: _Optional[str] = ..., trigger_config_version: _Optional[str] = ..., model_version: _Optional[str] = ..., poses: _Optional[_Iterable[_Union[_pose_pb2.ObjectPose, _Mapping]]] = ..., shadow_poses: _Optional[_Iterable[_Union[_pose_pb2.ObjectPose, _Mapping]]] = ..., robot_id: _Optional[str] = ..., stage: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ground_truth: _Optional[_Iterable[_Union[_pose_pb2.ObjectPose, _Mapping]]] = ..., has_ground_truth: _Optional[bool] = ..., detail_json: _Optional[str] = ...) -> None: ...

class PullCasesRequest(_message.Message):
    __slots__ = ("labeler", "max_cases", "include_frames")
    LABELER_FIELD_NUMBER: _ClassVar[int]
    MAX_CASES_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_FRAMES_FIELD_NUMBER: _ClassVar[int]
    labeler: str
    max_cases: int
    include_frames: bool
    def __init__(self, labeler: _Optional[str] = ..., max_cases: _Optional[int] = ..., include_frames: _Optional[bool] = ...) -> None: ...

class PullCasesResponse(_message.Message):
    __slots__ = ("cases", "lease_expires_at")
    CASES_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    cases: _containers.RepeatedCompositeFieldContainer[HardCase]
    lease_expires_at: _timestamp_pb2.Timestamp
    def __init__(self, cases: _Optional[_Iterable[_Union[HardCase, _Mapping]]] = ..., lease_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SubmitLabelsRequest(_message.Message):
    __slots__ = ("labeler", "case_id", "objects", "source")
    LABELER_FIELD_NUMBER: _ClassVar[int]
    CASE_ID_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    labeler: str
    case_id: str
    objects: _containers.RepeatedCompositeFieldContainer[_pose_pb2.ObjectPose]
    source: str
    def __init__(self, labeler: _Optional[str] = ..., case_id: _Optional[str] = ..., objects: _Optional[_Iterable[_Union[_pose_pb2.ObjectPose, _Mapping]]] = ..., source: _Optional[str] = ...) -> None: ...

class SubmitLabelsResponse(_message.Message):
    __slots__ = ("labelled",)
    LABELLED_FIELD_NUMBER: _ClassVar[int]
    labelled: int
    def __init__(self, labelled: _Optional[int] = ...) -> None: ...

class SkipCaseRequest(_message.Message):
    __slots__ = ("labeler", "case_id", "reason")
    LABELER_FIELD_NUMBER: _ClassVar[int]
    CASE_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    labeler: str
    case_id: str
    reason: str
    def __init__(self, labeler: _Optional[str] = ..., case_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class SkipCaseResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class FlywheelStats(_message.Message):
    __slots__ = ("produced", "stored", "pending", "lag", "dead_lettered", "unlabelled", "leased", "labelled", "skipped", "stored_by_trigger", "store_bytes", "redis_up")
    class StoredByTriggerEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    PRODUCED_FIELD_NUMBER: _ClassVar[int]
    STORED_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    LAG_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTERED_FIELD_NUMBER: _ClassVar[int]
    UNLABELLED_FIELD_NUMBER: _ClassVar[int]
    LEASED_FIELD_NUMBER: _ClassVar[int]
    LABELLED_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    STORED_BY_TRIGGER_FIELD_NUMBER: _ClassVar[int]
    STORE_BYTES_FIELD_NUMBER: _ClassVar[int]
    REDIS_UP_FIELD_NUMBER: _ClassVar[int]
    produced: int
    stored: int
    pending: int
    lag: int
    dead_lettered: int
    unlabelled: int
    leased: int
    labelled: int
    skipped: int
    stored_by_trigger: _containers.ScalarMap[str, int]
    store_bytes: int
    redis_up: bool
    def __init__(self, produced: _Optional[int] = ..., stored: _Optional[int] = ..., pending: _Optional[int] = ..., lag: _Optional[int] = ..., dead_lettered: _Optional[int] = ..., unlabelled: _Optional[int] = ..., leased: _Optional[int] = ..., labelled: _Optional[int] = ..., skipped: _Optional[int] = ..., stored_by_trigger: _Optional[_Mapping[str, int]] = ..., store_bytes: _Optional[int] = ..., redis_up: _Optional[bool] = ...) -> None: ...
