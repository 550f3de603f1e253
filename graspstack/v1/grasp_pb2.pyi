from graspstack.v1 import frames_pb2 as _frames_pb2
from graspstack.v1 import pose_pb2 as _pose_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Grasp(_message.Message):
    __slots__ = ("position_m", "quaternion_xyzw", "opening_m", "quality", "object_index", "class_name")
    POSITION_M_FIELD_NUMBER: _ClassVar[int]
    QUATERNION_XYZW_FIELD_NUMBER: _ClassVar[int]
    OPENING_M_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    OBJECT_INDEX_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAME_FIELD_NUMBER: _ClassVar[int]
    position_m: _containers.RepeatedScalarFieldContainer[float]
    quaternion_xyzw: _containers.RepeatedScalarFieldContainer[float]
    opening_m: float
    quality: float
    object_index: int
    class_name: str
    def __init__(self, position_m: _Optional[_Iterable[float]] = ..., quaternion_xyzw: _Optional[_Iterable[float]] = ..., opening_m: _Optional[float] = ..., quality: _Optional[float] = ..., object_index: _Optional[int] = ..., class_name: _Optional[str] = ...) -> None: ...

class PlanGraspsRequest(_message.Message):
    __slots__ = ("poses", "frame_ref", "table_plane", "max_grasps")
    POSES_FIELD_NUMBER: _ClassVar[int]
    FRAME_REF_FIELD_NUMBER: _ClassVar[int]
    TABLE_PLANE_FIELD_NUMBER: _ClassVar[int]
    MAX_GRASPS_FIELD_NUMBER: _ClassVar[int]
    poses: _containers.RepeatedCompositeFieldContainer[_pose_pb2.ObjectPose]
    frame_ref: _frames_pb2.FrameRef
    table_plane: _containers.RepeatedScalarFieldContainer[float]
    max_grasps: int
    def __init__(self, poses: _Optional[_Iterable[_Union[_pose_pb2.ObjectPose, _Mapping]]] = ..., frame_ref: _Optional[_Union[_frames_pb2.FrameRef, _Mapping]] = ..., table_plane: _Optional[_Iterable[float]] = ..., max_grasps: _Optional[int] = ...) -> None: ...

class PlanGraspsResponse(_message.Message):
    __slots__ = ("grasps",)
    GRASPS_FIELD_NUMBER: _ClassVar[int]
    grasps: _containers.RepeatedCompositeFieldContainer[Grasp]
    def __init__(self, grasps: _Optional[_Iterable[_Union[Grasp, _Mapping]]] = ...) -> None: ...
