"""Locust users that behave like the lab robots (lab/robot.py), on real lab frames.

Each robot loops: stream a frame to the camera service, ask the pose service by the frame's
reference, ask the grasp service with those poses and the table plane from its calibration, then
think briefly (the arm moving). Every call carries a deadline and is reported to locust as
request_type "grpc", name "Service/Method", so locust's stats, CSV and HTML give p50/p95/p99 per method.

Run through `make load` (the system must be up), or by hand from the repository root:
    .venv/bin/locust -f loadtests/locustfile.py --headless -u 4 -r 2 -t 60s --csv runs/load/load

Environment: GRASPSTACK_LOAD_FRAMES (scene folders, default runs/load/frames),
GRASPSTACK_LOAD_CAMERA / _POSE / _GRASP (host:port, default the local system's ports),
GRASPSTACK_LOAD_DEADLINE_S (per call, default 1.0), GRASPSTACK_LOAD_THINK_S (mean pause, default 0.25).
"""

from __future__ import annotations

import os
import random
import sys

import grpc
from locust import between, events, task

from graspstack.v1 import camera_pb2_grpc, grasp_pb2, grasp_pb2_grpc, pose_pb2, pose_pb2_grpc
from loadtests.frames import frames_dir, load_frames
from loadtests.grpc_user import GrpcUser

TARGETS = {
    "camera": os.environ.get("GRASPSTACK_LOAD_CAMERA", "127.0.0.1:50051"),
    "pose": os.environ.get("GRASPSTACK_LOAD_POSE", "127.0.0.1:50052"),
    "grasp": os.environ.get("GRASPSTACK_LOAD_GRASP", "127.0.0.1:50053"),
}
DEADLINE_S = float(os.environ.get("GRASPSTACK_LOAD_DEADLINE_S", "1.0"))
THINK_S = float(os.environ.get("GRASPSTACK_LOAD_THINK_S", "0.25"))


@events.init.add_listener
def _load_frames_once(environment, **_kwargs) -> None:
    # Fail before any user starts: a run without frames would report nothing, not a failure.
    try:
        frames = load_frames(frames_dir())
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f"locustfile: {err}")
    print(f"locustfile: {len(frames)} lab frames from {frames_dir()}", file=sys.stderr)


class Robot(GrpcUser):
    wait_time = between(0.5 * THINK_S, 1.5 * THINK_S)

    def on_start(self) -> None:
        self.frames = load_frames(frames_dir())
        self.robot_id = f"load-robot-{id(self):x}"
        self.rng = random.Random(id(self))  # robots see different scenes at any moment
        self.camera = camera_pb2_grpc.CameraIngestionStub(self.channel(TARGETS["camera"]))
        self.pose = pose_pb2_grpc.PoseEstimationStub(self.channel(TARGETS["pose"]))
        self.grasp = grasp_pb2_grpc.GraspPlanningStub(self.channel(TARGETS["grasp"]))

    @task
    def pick(self) -> None:
        lab_frame = self.rng.choice(self.frames)
        try:
            summary = self.camera.StreamFrames(iter([lab_frame.proto(self.robot_id)]), timeout=DEADLINE_S)
            if len(summary.refs) != 1:
                raise RuntimeError(f"camera answered {len(summary.refs)} refs for one frame")
            ref = summary.refs[0]
            answer = self.pose.EstimatePoses(pose_pb2.EstimatePosesRequest(frame_ref=ref), timeout=DEADLINE_S)
            self.grasp.PlanGrasps(
                grasp_pb2.PlanGraspsRequest(
                    poses=list(answer.objects),
                    frame_ref=ref,
                    table_plane=list(lab_frame.table_plane),
                    max_grasps=5,
                ),
                timeout=DEADLINE_S,
            )
        except grpc.RpcError:
            # Already reported as a failure by the interceptor; like the lab robot, give up this
            # pick and start the next cycle with a new frame.
            return
