from graspstack.v1 import frames_pb2 as _frames_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ObjectPose(_message.Message):
    __slots__ = ("class_name", "position_m", "quaternion_xyzw", "confidence")
    CLASS_NAME_FIELD_NUMBER: _ClassVar[int]
    POSITION_M_FIELD_NUMBER: _ClassVar[int]
    QUATERNION_XYZW_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    class_name: str
    position_m: _containers.RepeatedScalarFieldContainer[float]
    quaternion_xyzw: _containers.RepeatedScalarFieldContainer[float]
    confidence: float
    def __init__(self, class_name: _Optional[str] = ..., position_m: _Optional[_Iterable[float]] = ..., quaternion_xyzw: _Optional[_Iterable[float]] = ..., confidence: _Optional[float] = ...) -> None: ...

class EstimatePosesRequest(_message.Message):
    __slots__ = ("frame", "frame_ref")
    FRAME_FIELD_NUMBER: _ClassVar[int]
    FRAME_REF_FIELD_NUMBER: _ClassVar[int]
    frame: _frames_pb2.Frame
    frame_ref: _frames_pb2.FrameRef
    def __init__(self, frame: _Optional[_Union[_frames_pb2.Frame, _Mapping]] = ..., frame_ref: _Optional[_Union[_frames_pb2.FrameRef, _Mapping]] = ...) -> None: ...

class EstimatePosesResponse(_message.Message):
    __slots__ = ("objects", "model_version", "queue_ms", "compute_ms", "frame_id")
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    QUEUE_MS_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_MS_FIELD_NUMBER: _ClassVar[int]
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    objects: _containers.RepeatedCompositeFieldContainer[ObjectPose]
    model_version: str
    queue_ms: float
    compute_ms: float
    frame_id: str
    def __init__(self, objects: _Optional[_Iterable[_Union[ObjectPose, _Mapping]]] = ..., model_version: _Optional[str] = ..., queue_ms: _Optional[float] = ..., compute_ms: _Optional[float] = ..., frame_id: _Optional[str] = ...) -> None: ...
