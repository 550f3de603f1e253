"""A small client for the services, as a robot would use them (and `graspstack pose`)."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import grpc
import numpy as np

from graspstack.v1 import frames_pb2, pose_pb2, pose_pb2_grpc

CLIENT_OPTIONS = [
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
]


def frame_from_files(
    rgb: str | Path, depth: str | Path, intrinsics: str, depth_scale: float = 0.001, robot_id: str = "cli"
) -> frames_pb2.Frame:
    """Read encoded images as they are (no re-encoding) and attach the intrinsics "fx,fy,cx,cy"."""
    try:
        fx, fy, cx, cy = (float(v) for v in intrinsics.split(","))
    except ValueError:
        raise ValueError(f"--intrinsics must be fx,fy,cx,cy (four numbers), got {intrinsics!r}") from None
    rgb_bytes = Path(rgb).read_bytes()
    image = cv2.imdecode(np.frombuffer(rgb_bytes, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"{rgb} is not a readable image")
    height, width = image.shape[:2]
    return frames_pb2.Frame(
        rgb=rgb_bytes,
        depth=Path(depth).read_bytes(),
        depth_scale=depth_scale,
        robot_id=robot_id,
        intrinsics=frames_pb2.Intrinsics(fx=fx, fy=fy, cx=cx, cy=cy, width=width, height=height),
    )


def estimate_from_files(
    target: str, rgb: str, depth: str, intrinsics: str, depth_scale: float = 0.001, timeout_s: float = 10.0
) -> dict:
    frame = frame_from_files(rgb, depth, intrinsics, depth_scale)
    with grpc.insecure_channel(target, options=CLIENT_OPTIONS) as channel:
        stub = pose_pb2_grpc.PoseEstimationStub(channel)
        t0 = time.perf_counter()
        try:
            reply = stub.EstimatePoses(pose_pb2.EstimatePosesRequest(frame=frame), timeout=timeout_s)
        except grpc.RpcError as err:
            raise ValueError(f"pose service at {target}: {err.code().name}: {err.details()}") from None
        latency_ms = (time.perf_counter() - t0) * 1e3
    return {
        "objects": [
            {
                "class": o.class_name,
                "position_m": list(o.position_m),
                "quaternion_xyzw": list(o.quaternion_xyzw),
                "confidence": o.confidence,
            }
            for o in reply.objects
        ],
        "model_version": reply.model_version,
        "latency_ms": round(latency_ms, 2),
    }
