"""Conversions between protobuf messages and the core's types. No logic beyond field mapping."""

from __future__ import annotations

import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp

from graspstack.frames import Intrinsics, ObjectPose
from graspstack.ingest import FrameError, RawFrame
from graspstack.v1 import frames_pb2, pose_pb2


def raw_frame_from_proto(msg: frames_pb2.Frame) -> RawFrame:
    if not msg.HasField("intrinsics"):
        raise FrameError("frame has no intrinsics (fx, fy, cx, cy, width, height are required)")
    i = msg.intrinsics
    return RawFrame(
        msg.rgb, msg.depth, msg.depth_scale, Intrinsics(i.fx, i.fy, i.cx, i.cy, i.width, i.height)
    )


def raw_frame_to_proto(raw: RawFrame, robot_id: str = "") -> frames_pb2.Frame:
    i = raw.intrinsics
    return frames_pb2.Frame(
        rgb=raw.rgb,
        depth=raw.depth,
        depth_scale=raw.depth_scale,
        robot_id=robot_id,
        intrinsics=frames_pb2.Intrinsics(fx=i.fx, fy=i.fy, cx=i.cx, cy=i.cy, width=i.width, height=i.height),
    )


def timestamp_in(seconds: float) -> Timestamp:
    ts = Timestamp()
    ts.GetCurrentTime()
    ts.FromNanoseconds(ts.ToNanoseconds() + int(seconds * 1e9))
    return ts


def pose_to_proto(p: ObjectPose) -> pose_pb2.ObjectPose:
    return pose_pb2.ObjectPose(
        class_name=p.class_name,
        position_m=[float(v) for v in p.position_m],
        quaternion_xyzw=[float(v) for v in p.quaternion_xyzw],
        confidence=float(p.confidence),
    )


def pose_from_proto(msg: pose_pb2.ObjectPose) -> ObjectPose:
    if len(msg.position_m) != 3 or len(msg.quaternion_xyzw) != 4:
        raise FrameError(f"pose of {msg.class_name!r} needs 3 position and 4 quaternion values")
    return ObjectPose(msg.class_name, np.array(msg.position_m), np.array(msg.quaternion_xyzw), msg.confidence)
