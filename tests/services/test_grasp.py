"""Grasp planning service on lab scenes: ranked grasps from poses and the table."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from graspstack.frames import Frame
from graspstack.geometry import pose_to_transform
from graspstack.grasping.planner import TablePlane
from graspstack.ingest.validate import encode_frame
from graspstack.v1 import camera_pb2_grpc, frames_pb2, grasp_pb2, grasp_pb2_grpc
from services import camera, grasp
from services.convert import pose_to_proto, raw_frame_to_proto
from services.settings import CameraSettings, GraspSettings

pytestmark = pytest.mark.integration


@pytest.fixture
def stubs(redis_server, serve):
    _, cam = serve(*camera.build(CameraSettings(redis_url=redis_server.url)))
    _, gr = serve(*grasp.build(GraspSettings(redis_url=redis_server.url)))
    return camera_pb2_grpc.CameraIngestionStub(cam), grasp_pb2_grpc.GraspPlanningStub(gr)


def _request(r, **kw) -> grasp_pb2.PlanGraspsRequest:
    return grasp_pb2.PlanGraspsRequest(poses=[pose_to_proto(p) for p in r.scene.ground_truth()], **kw)


def _plane(r) -> list[float]:
    cam = r.scene.T_world_cam
    plane = TablePlane.from_T_world_cam(pose_to_transform(cam.position_m, cam.quaternion_xyzw))
    return [*plane.normal, plane.offset]


def test_grasps_are_ranked_and_on_the_objects(stubs, nominal_scenes):
    _, planner = stubs
    r = nominal_scenes[0]
    reply = planner.PlanGrasps(_request(r, table_plane=_plane(r), max_grasps=5), timeout=10)
    assert 1 <= len(reply.grasps) <= 5
    quality = [g.quality for g in reply.grasps]
    assert quality == sorted(quality, reverse=True)
    for g in reply.grasps:
        target = r.scene.objects[g.object_index]
        assert g.class_name == target.class_name
        # The fingertips sit within the object's reach of its frame origin.
        assert np.linalg.norm(np.array(g.position_m) - np.array(target.position_m)) < 0.15


def test_table_found_from_a_stored_frame_matches_the_given_plane(stubs, nominal_scenes):
    cam, planner = stubs
    r = nominal_scenes[2]
    ref = cam.PutFrame(raw_frame_to_proto(encode_frame(Frame(r.rgb, r.depth_m, r.scene.intrinsics_obj()))))
    by_ref = planner.PlanGrasps(_request(r, frame_ref=ref, max_grasps=3), timeout=10)
    by_plane = planner.PlanGrasps(_request(r, table_plane=_plane(r), max_grasps=3), timeout=10)
    assert by_ref.grasps and by_plane.grasps
    assert by_ref.grasps[0].object_index == by_plane.grasps[0].object_index


@pytest.mark.parametrize(
    "request_kwargs, code, message",
    [
        ({}, grpc.StatusCode.INVALID_ARGUMENT, "need the table"),
        ({"table_plane": [0, 0, 0, 1]}, grpc.StatusCode.INVALID_ARGUMENT, "non-zero"),
        ({"frame_ref": frames_pb2.FrameRef(frame_id="sha256:gone")}, grpc.StatusCode.NOT_FOUND, "not stored"),
    ],
)
def test_bad_requests(stubs, nominal_scenes, request_kwargs, code, message):
    _, planner = stubs
    with pytest.raises(grpc.RpcError) as info:
        planner.PlanGrasps(_request(nominal_scenes[0], **request_kwargs), timeout=10)
    assert info.value.code() == code and message in info.value.details()


def test_unknown_class_is_invalid(stubs, nominal_scenes):
    _, planner = stubs
    req = _request(nominal_scenes[0], table_plane=_plane(nominal_scenes[0]))
    req.poses[0].class_name = "banana"
    with pytest.raises(grpc.RpcError) as info:
        planner.PlanGrasps(req, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "banana" in info.value.details()
