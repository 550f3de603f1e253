"""Grasp planning service (50053): ranked parallel-jaw grasps for estimated poses."""

from __future__ import annotations

import numpy as np

from graspstack.catalogue import CATALOGUE
from graspstack.grasping.candidates import grasp_candidates
from graspstack.grasping.planner import TablePlane, plan_grasps
from graspstack.ingest import FrameError, FrameStore, decode_frame
from graspstack.predictors.scripted.table import back_project, denoise_depth, table_plane
from graspstack.v1 import grasp_pb2, grasp_pb2_grpc
from services.convert import pose_from_proto
from services.errors import NotFound, check_deadline, grpc_errors
from services.server import ServiceSpec
from services.settings import GraspSettings


class GraspPlanningServicer(grasp_pb2_grpc.GraspPlanningServicer):
    def __init__(self, store: FrameStore | None, default_max_grasps: int = 10):
        self.store = store
        self.default_max_grasps = default_max_grasps

    def _table(self, request: grasp_pb2.PlanGraspsRequest) -> TablePlane:
        if request.table_plane:
            if len(request.table_plane) != 4:
                raise FrameError("table_plane must be [nx, ny, nz, d] (4 values)")
            n = np.asarray(request.table_plane[:3], dtype=float)
            norm = np.linalg.norm(n)
            if not np.isfinite(norm) or norm < 1e-6:
                raise FrameError("table_plane normal must be a non-zero finite vector")
            n, d = n / norm, request.table_plane[3] / norm
            # Orient it up, towards the camera at the origin (height of the origin = d > 0).
            return TablePlane(n, d) if d > 0 else TablePlane(-n, -d)
        if request.HasField("frame_ref") and request.frame_ref.frame_id:
            if self.store is None:
                raise NotFound("this service has no frame store; send table_plane instead")
            raw = self.store.get(request.frame_ref.frame_id)
            if raw is None:
                raise NotFound(f"frame {request.frame_ref.frame_id!r} is not stored (expired, or never sent)")
            frame = decode_frame(raw)
            depth, valid = denoise_depth(frame.depth_m)
            plane = table_plane(back_project(depth, frame.intrinsics), valid)
            if plane is None:
                raise FrameError("the referenced frame has too little depth to find the table")
            return TablePlane(plane.normal, plane.offset)
        raise FrameError("need the table: give table_plane or a frame_ref to find it in")

    def PlanGrasps(self, request, context):
        with grpc_errors(context):
            check_deadline(context, "planning grasps")
            poses = [pose_from_proto(p) for p in request.poses]
            for p in poses:
                if p.class_name not in CATALOGUE:
                    raise FrameError(f"unknown class {p.class_name!r}; known: {', '.join(CATALOGUE)}")
            table = self._table(request)
            grasps = plan_grasps(poses, table, max_grasps=request.max_grasps or self.default_max_grasps)
            return grasp_pb2.PlanGraspsResponse(
                grasps=[
                    grasp_pb2.Grasp(
                        position_m=[float(v) for v in g.position_m],
                        quaternion_xyzw=[float(v) for v in g.quaternion_xyzw],
                        opening_m=float(g.opening_m),
                        quality=float(np.clip(g.score, 0.0, 1.0)),
                        object_index=g.object_index,
                        class_name=g.class_name,
                    )
                    for g in grasps
                ]
            )


def build(settings: GraspSettings | None = None) -> tuple[ServiceSpec, GraspSettings]:
    settings = settings or GraspSettings()
    for class_name in CATALOGUE:  # compute candidates before SERVING, not on a robot's first call
        grasp_candidates(class_name)
    store = FrameStore.from_url(settings.redis_url, timeout_s=settings.redis_timeout_s)
    servicer = GraspPlanningServicer(store, settings.max_grasps)
    spec = ServiceSpec(
        name="grasp",
        grpc_services=[grasp_pb2.DESCRIPTOR.services_by_name["GraspPlanning"].full_name],
        register=lambda server: grasp_pb2_grpc.add_GraspPlanningServicer_to_server(servicer, server),
        # Planning with a table plane needs nothing else, so the service stays ready without Redis
        # (requests by frame reference then fail UNAVAILABLE).
        ready=lambda: True,
    )
    return spec, settings
