from graspstack.v1 import frames_pb2 as _frames_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StreamSummary(_message.Message):
    __slots__ = ("refs", "duplicates")
    REFS_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    refs: _containers.RepeatedCompositeFieldContainer[_frames_pb2.FrameRef]
    duplicates: int
    def __init__(self, refs: _Optional[_Iterable[_Union[_frames_pb2.FrameRef, _Mapping]]] = ..., duplicates: _Optional[int] = ...) -> None: ...
