"""Camera ingestion against a real Redis: good frames stored once, bad ones told exactly why."""

from __future__ import annotations

import cv2
import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from graspstack.frames import Frame, Intrinsics
from graspstack.ingest.validate import encode_frame
from graspstack.v1 import camera_pb2_grpc, frames_pb2
from services import camera
from services.convert import raw_frame_to_proto
from services.settings import CameraSettings

pytestmark = pytest.mark.integration


def _frame(w=320, h=240, seed=0) -> frames_pb2.Frame:
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    depth = np.full((h, w), 0.6, np.float32)
    intr = Intrinsics(300.0, 300.0, w / 2, h / 2, w, h)
    return raw_frame_to_proto(encode_frame(Frame(rgb, depth, intr)), robot_id="robot-7")


@pytest.fixture
def camera_stub(redis_server, serve):
    spec, settings = camera.build(CameraSettings(redis_url=redis_server.url, redis_timeout_s=0.5))
    server, channel = serve(spec, settings)
    return camera_pb2_grpc.CameraIngestionStub(channel), channel, server


def _code(call, *args, **kwargs) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call(*args, **kwargs)
    return info.value.code(), info.value.details()


def test_frame_is_stored_once_and_can_be_fetched(camera_stub):
    stub, _, _ = camera_stub
    frame = _frame()
    ref = stub.PutFrame(frame)
    assert ref.frame_id.startswith("sha256:")
    again = stub.PutFrame(frame)
    assert again.frame_id == ref.frame_id
    fetched = stub.GetFrame(ref)
    assert fetched.rgb == frame.rgb and fetched.depth == frame.depth
    summary = stub.StreamFrames(iter([_frame(seed=1), frame, _frame(seed=2)]))
    assert len(summary.refs) == 3 and summary.duplicates == 1
    assert summary.refs[1].frame_id == ref.frame_id


def _corrupt_png(f):
    f.rgb = f.rgb[:200]
    return f


def _wrong_size(f):
    f.intrinsics.width = 640
    return f


def _depth_8bit(f):
    f.depth = cv2.imencode(".png", np.zeros((240, 320), np.uint8))[1].tobytes()
    return f


def _zero_focal(f):
    f.intrinsics.fx = 0
    return f


def _absurd_focal(f):
    f.intrinsics.fy = 1e9
    return f


def _too_small(f):
    small = _frame(w=100, h=80)
    return small


def _no_intrinsics(f):
    f.ClearField("intrinsics")
    return f


def _empty(f):
    return frames_pb2.Frame()


def _jpeg_depth(f):
    f.depth = cv2.imencode(".jpg", np.zeros((240, 320, 3), np.uint8))[1].tobytes()
    return f


@pytest.mark.parametrize(
    "mutate, message",
    [
        (_corrupt_png, "could not be decoded"),
        (_wrong_size, "intrinsics say 640x240"),
        (_depth_8bit, "16-bit single-channel"),
        (_zero_focal, "fx=0"),
        (_absurd_focal, "fy=1000000000"),
        (_too_small, "outside 160x120"),
        (_no_intrinsics, "no intrinsics"),
        (_empty, "no intrinsics"),
        (_jpeg_depth, "16-bit single-channel PNG"),
    ],
)
def test_bad_frames_get_invalid_argument_and_the_service_keeps_serving(camera_stub, mutate, message):
    stub, _, _ = camera_stub
    code, details = _code(stub.PutFrame, mutate(_frame()))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert message in details
    assert stub.PutFrame(_frame()).frame_id  # the next good frame goes through


def test_bad_frame_in_a_stream_names_its_position(camera_stub):
    stub, _, _ = camera_stub
    code, details = _code(stub.StreamFrames, iter([_frame(), _corrupt_png(_frame(seed=3))]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "frame 1 of the stream" in details


def test_unknown_reference_is_not_found(camera_stub):
    stub, _, _ = camera_stub
    code, details = _code(stub.GetFrame, frames_pb2.FrameRef(frame_id="sha256:nope"))
    assert code == grpc.StatusCode.NOT_FOUND and "not stored" in details


def test_full_hd_frame_is_admitted_and_an_oversize_message_is_refused(redis_server, serve):
    # The service's own Redis timeout, not the fixture's short one: a 10 MB write within 0.5 s is
    # not what production promises, and a busy 2-core CI machine missed it.
    spec, settings = camera.build(CameraSettings(redis_url=redis_server.url))
    _, channel = serve(spec, settings)
    stub = camera_pb2_grpc.CameraIngestionStub(channel)
    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 255, (1080, 1920, 3), dtype=np.uint8)  # noise: the worst case for PNG size
    depth = rng.uniform(0.3, 2.0, (1080, 1920)).astype(np.float32)
    big = raw_frame_to_proto(encode_frame(Frame(rgb, depth, Intrinsics(1000, 1000, 960, 540, 1920, 1080))))
    assert stub.PutFrame(big, timeout=30).frame_id
    big.rgb = big.rgb + bytes(8 * 1024 * 1024)
    code, _ = _code(stub.PutFrame, big, timeout=30)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_expired_deadline(camera_stub):
    stub, _, _ = camera_stub
    code, _ = _code(stub.PutFrame, _frame(), timeout=0.000001)
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED


def test_redis_down_is_unavailable_and_health_follows(camera_stub, redis_server):
    stub, channel, server = camera_stub
    health = health_pb2_grpc.HealthStub(channel)
    assert (
        health.Check(health_pb2.HealthCheckRequest(service="")).status
        == health_pb2.HealthCheckResponse.SERVING
    )
    redis_server.kill()
    code, details = _code(stub.PutFrame, _frame(seed=9), timeout=5)
    assert code == grpc.StatusCode.UNAVAILABLE and "frame store unavailable" in details
    server._refresh_health()  # what the readiness watcher does every few seconds
    assert (
        health.Check(health_pb2.HealthCheckRequest(service="")).status
        == health_pb2.HealthCheckResponse.NOT_SERVING
    )
    redis_server.start()
    server._refresh_health()
    assert (
        health.Check(health_pb2.HealthCheckRequest(service="")).status
        == health_pb2.HealthCheckResponse.SERVING
    )
    assert stub.PutFrame(_frame(seed=9), timeout=5).frame_id


def test_reflection_lists_the_services(camera_stub):
    _, channel, _ = camera_stub
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    names = {s.name for r in responses for s in r.list_services_response.service}
    assert {"graspstack.v1.CameraIngestion", "grpc.health.v1.Health"} <= names


def test_handled_metric_counts_codes(camera_stub):
    from prometheus_client import REGISTRY

    stub, _, _ = camera_stub
    labels = {
        "grpc_service": "graspstack.v1.CameraIngestion",
        "grpc_method": "PutFrame",
        "grpc_type": "unary",
    }
    before_ok = REGISTRY.get_sample_value("grpc_server_handled_total", {**labels, "grpc_code": "OK"}) or 0
    before_bad = (
        REGISTRY.get_sample_value("grpc_server_handled_total", {**labels, "grpc_code": "INVALID_ARGUMENT"})
        or 0
    )
    stub.PutFrame(_frame(seed=11))
    _code(stub.PutFrame, _zero_focal(_frame()))
    assert (
        REGISTRY.get_sample_value("grpc_server_handled_total", {**labels, "grpc_code": "OK"}) == before_ok + 1
    )
    assert (
        REGISTRY.get_sample_value("grpc_server_handled_total", {**labels, "grpc_code": "INVALID_ARGUMENT"})
        == before_bad + 1
    )
