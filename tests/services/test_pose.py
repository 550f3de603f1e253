"""Pose and shadow services end to end: camera stores, pose answers, the shadow is mirrored."""

from __future__ import annotations

import json
import time

import grpc
import pytest
from prometheus_client import REGISTRY

from graspstack.frames import Frame
from graspstack.ingest.validate import encode_frame
from graspstack.v1 import camera_pb2_grpc, frames_pb2, pose_pb2, pose_pb2_grpc
from services import camera, pose
from services.convert import raw_frame_to_proto
from services.settings import CameraSettings, PoseSettings, ShadowSettings

pytestmark = pytest.mark.integration


@pytest.fixture
def lab_frame(nominal_scenes) -> frames_pb2.Frame:
    r = nominal_scenes[1]
    frame = Frame(r.rgb, r.depth_m, r.scene.intrinsics_obj())
    return raw_frame_to_proto(encode_frame(frame), robot_id="lab-robot")


@pytest.fixture
def system(redis_server, serve):
    _, cam_channel = serve(*camera.build(CameraSettings(redis_url=redis_server.url)))
    shadow_server, shadow_channel = serve(*pose.build_shadow(ShadowSettings(redis_url=redis_server.url)))
    shadow_target = f"127.0.0.1:{shadow_server.port}"
    pose_spec, pose_settings = pose.build(
        PoseSettings(redis_url=redis_server.url, model="mean", shadow_target=shadow_target, max_wait_ms=2)
    )
    _, pose_channel = serve(pose_spec, pose_settings)
    return (
        camera_pb2_grpc.CameraIngestionStub(cam_channel),
        pose_pb2_grpc.PoseEstimationStub(pose_channel),
        pose_pb2_grpc.PoseEstimationStub(shadow_channel),
    )


def _mirrored(outcome: str) -> float:
    return REGISTRY.get_sample_value("graspstack_shadow_mirrored_total", {"outcome": outcome}) or 0.0


def test_reference_and_inline_frames_are_answered_and_mirrored(system, lab_frame):
    cam, pose_stub, shadow_stub = system
    compared = _mirrored("compared")
    ref = cam.PutFrame(lab_frame)
    answer = pose_stub.EstimatePoses(pose_pb2.EstimatePosesRequest(frame_ref=ref), timeout=10)
    assert answer.model_version == "mean" and answer.frame_id == ref.frame_id
    assert len(answer.objects) == 5 and answer.compute_ms >= 0 and answer.queue_ms >= 0
    inline = pose_stub.EstimatePoses(pose_pb2.EstimatePosesRequest(frame=lab_frame), timeout=10)
    assert inline.frame_id == ref.frame_id
    # The shadow answers the same interface with the scripted baseline's real estimate.
    shadow = shadow_stub.EstimatePoses(pose_pb2.EstimatePosesRequest(frame_ref=ref), timeout=30)
    assert shadow.model_version == "scripted" and len(shadow.objects) >= 1
    deadline = time.time() + 30
    while _mirrored("compared") < compared + 2 and time.time() < deadline:
        time.sleep(0.05)
    assert _mirrored("compared") >= compared + 2


def test_bad_requests(system, lab_frame):
    _, pose_stub, _ = system
    with pytest.raises(grpc.RpcError) as info:
        pose_stub.EstimatePoses(pose_pb2.EstimatePosesRequest(), timeout=5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "neither a frame" in info.value.details()
    with pytest.raises(grpc.RpcError) as info:
        pose_stub.EstimatePoses(pose_pb2.EstimatePosesRequest(frame_ref=frames_pb2.FrameRef(frame_id="x")))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    bad = frames_pb2.Frame()
    bad.CopyFrom(lab_frame)
    bad.depth = bad.depth[:100]
    with pytest.raises(grpc.RpcError) as info:
        pose_stub.EstimatePoses(pose_pb2.EstimatePosesRequest(frame=bad), timeout=5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "depth" in info.value.details()


def test_pose_answers_when_the_shadow_is_down(redis_server, serve, lab_frame):
    from graspstack.runtime.redis_server import free_port

    spec, settings = pose.build(
        PoseSettings(
            redis_url=redis_server.url,
            model="mean",
            shadow_target=f"127.0.0.1:{free_port()}",
            shadow_timeout_s=0.5,
        )
    )
    _, channel = serve(spec, settings)
    stub = pose_pb2_grpc.PoseEstimationStub(channel)
    errors = _mirrored("error")
    for _ in range(3):
        assert stub.EstimatePoses(pose_pb2.EstimatePosesRequest(frame=lab_frame), timeout=5).objects
    deadline = time.time() + 10
    while _mirrored("error") < errors + 1 and time.time() < deadline:
        time.sleep(0.05)
    assert _mirrored("error") >= errors + 1


def test_disagreement_with_the_shadow_becomes_a_hard_case(system, lab_frame, redis_server):
    """The `mean` model is centimetres off the scripted shadow: the mirror must file a case."""
    import redis

    from graspstack.flywheel.streams import CASES_STREAM

    _, pose_stub, _ = system
    pose_stub.EstimatePoses(pose_pb2.EstimatePosesRequest(frame=lab_frame), timeout=10)
    client = redis.Redis.from_url(redis_server.url)
    deadline = time.time() + 30
    triggers: set[str] = set()
    while time.time() < deadline and "shadow_disagreement" not in triggers:
        for _, fields in client.xrange(CASES_STREAM):
            meta = fields.get(b"meta") or b"{}"
            triggers.add(json.loads(meta).get("trigger", ""))
        time.sleep(0.2)
    assert "shadow_disagreement" in triggers, triggers
