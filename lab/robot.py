"""The lab robot: the first real client of the services, in the simulated cell.

Per scene it streams the frame to the camera service, asks the pose service by reference, asks
the grasp service, then executes the best grasp with the simulated gripper (approach, close, lift
10 cm, hold 1 s). It scores the poses against the cell's ground truth (exported as metrics, as a
real lab's instruments would) and reports success and latency per step.

`poses="ground-truth"` skips the pose service and plans on the true poses: the planner's ceiling.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import grpc
import numpy as np

from graspstack import metrics
from graspstack.flywheel.producer import CaseProducer
from graspstack.flywheel.triggers import TriggerConfig
from graspstack.frames import Frame, ObjectPose
from graspstack.geometry import pose_to_transform
from graspstack.grasping.planner import TablePlane
from graspstack.ingest.validate import encode_frame
from graspstack.metric import match_scene
from graspstack.v1 import camera_pb2_grpc, grasp_pb2, grasp_pb2_grpc, pose_pb2, pose_pb2_grpc
from lab.cell import LabCell
from lab.gripper import execute_grasp
from lab.scenes import RenderedScene, render_scene
from services.convert import pose_from_proto, pose_to_proto, raw_frame_to_proto

CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
]
TARGET_MATCH_M = 0.03  # a grasp aimed farther than this from every real object hits nothing


@dataclass
class Targets:
    camera: str = "127.0.0.1:50051"
    pose: str = "127.0.0.1:50052"
    grasp: str = "127.0.0.1:50053"


@dataclass
class SceneReport:
    scene: int
    objects: int
    success: bool
    reason: str = ""
    target_class: str | None = None
    model_version: str = ""
    within_spec: int = 0
    counted: int = 0
    position_errors_m: list[float] = field(default_factory=list)
    angle_errors_deg: list[float] = field(default_factory=list)
    latency_ms: dict[str, float] = field(default_factory=dict)
    poses: list[dict] = field(default_factory=list)


class LabRobot:
    def __init__(
        self,
        targets: Targets,
        poses: str = "service",
        stage: str = "lab",
        robot_id: str = "lab-robot-1",
        deadline_s: float = 5.0,
        canary: str | None = None,
        canary_weight: float = 0.0,
        hard_cases: CaseProducer | None = None,
    ):
        if poses not in ("service", "ground-truth"):
            raise ValueError("poses must be 'service' or 'ground-truth'")
        self.poses_from = poses
        self.stage = stage
        self.robot_id = robot_id
        self.deadline_s = deadline_s
        self.cell = LabCell()
        self._channels = {
            k: grpc.insecure_channel(v, options=CHANNEL_OPTIONS) for k, v in asdict(targets).items()
        }
        self.camera = camera_pb2_grpc.CameraIngestionStub(self._channels["camera"])
        self.pose = pose_pb2_grpc.PoseEstimationStub(self._channels["pose"])
        self.grasp = grasp_pb2_grpc.GraspPlanningStub(self._channels["grasp"])
        # The lab knows the truth: errors out of spec and failed grasps become hard cases.
        self.hard_cases = hard_cases
        self.trigger_config = TriggerConfig.load() if hard_cases else None
        # Canary: a share of the frames goes to a second pose service (the candidate version).
        self.canary_weight = canary_weight if canary else 0.0
        if canary:
            self._channels["canary"] = grpc.insecure_channel(canary, options=CHANNEL_OPTIONS)
            self.canary = pose_pb2_grpc.PoseEstimationStub(self._channels["canary"])

    def _pose_stub(self, index: int):
        # Golden-ratio sequence: an even, deterministic split at any weight, no random state.
        return self.canary if (index * 0.6180339887) % 1.0 < self.canary_weight else self.pose

    def close(self) -> None:
        for c in self._channels.values():
            c.close()
        self.cell.close()

    def _timed(self, step: str, latency: dict, fn, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            dt = time.perf_counter() - t0
            latency[step] = round(dt * 1e3, 2)
            metrics.ROBOT_STEP_SECONDS.labels(step, self.stage).observe(dt)

    def _score(
        self, rendered: RenderedScene, poses: list[ObjectPose], version: str, report: SceneReport
    ) -> None:
        result = match_scene(rendered.scene.ground_truth(), poses)
        for r in result.records:
            labels = (version, self.stage, r.class_name)
            metrics.POSE_EVALUATED.labels(*labels).inc()
            # The within-spec series exists from the first evaluated object, at 0 if need be: a
            # model with nothing within spec must read 0 to the gates and alerts, not "no data"
            # (a ratio over a missing numerator is empty, and an empty ratio fires nothing).
            within = metrics.POSE_WITHIN_SPEC.labels(*labels)
            report.counted += 1
            if r.within_spec:
                within.inc()
                report.within_spec += 1
            if r.matched:
                metrics.POSE_POSITION_ERROR_M.labels(*labels).observe(r.te_m)
                metrics.POSE_ANGLE_ERROR_DEG.labels(*labels).observe(r.re_deg)
                report.position_errors_m.append(round(r.te_m, 5))
                report.angle_errors_deg.append(round(r.re_deg, 3))

    def pick(self, rendered: RenderedScene, index: int) -> SceneReport:
        scene = rendered.scene
        report = SceneReport(index, len(scene.objects), False)
        latency = report.latency_ms
        frame = raw_frame_to_proto(
            encode_frame(Frame(rendered.rgb, rendered.depth_m, scene.intrinsics_obj())),
            robot_id=self.robot_id,
        )
        T_world_cam = pose_to_transform(scene.T_world_cam.position_m, scene.T_world_cam.quaternion_xyzw)
        try:
            summary = self._timed(
                "camera", latency, self.camera.StreamFrames, iter([frame]), timeout=self.deadline_s
            )
            ref = summary.refs[0]
            if self.poses_from == "ground-truth":
                poses, version = scene.ground_truth(), "ground-truth"
            else:
                answer = self._timed(
                    "pose",
                    latency,
                    self._pose_stub(index).EstimatePoses,
                    pose_pb2.EstimatePosesRequest(frame_ref=ref),
                    timeout=self.deadline_s,
                )
                poses, version = [pose_from_proto(p) for p in answer.objects], answer.model_version
            report.model_version = version
            report.poses = [p.to_json() for p in poses]
            self._score(rendered, poses, version, report)
            # The robot knows its camera's calibration, hence the table plane in the camera frame.
            plane = TablePlane.from_T_world_cam(T_world_cam)
            plan = self._timed(
                "grasp",
                latency,
                self.grasp.PlanGrasps,
                grasp_pb2.PlanGraspsRequest(
                    poses=[pose_to_proto(p) for p in poses],
                    frame_ref=ref,
                    table_plane=[*plane.normal, plane.offset],
                    max_grasps=5,
                ),
                timeout=self.deadline_s,
            )
        except grpc.RpcError as err:
            report.reason = f"{err.code().name}: {err.details()}"
            return report
        self._execute(rendered, plan, poses, T_world_cam, report)
        self._count(report)
        self._report_hard_cases(rendered, frame, ref, poses, report)
        return report

    def _execute(self, rendered: RenderedScene, plan, poses, T_world_cam, report: SceneReport) -> None:
        """The best grasp, in the cell; the report says whether it held the object."""
        scene = rendered.scene
        if not plan.grasps:
            report.reason = "no grasp planned" if poses else "no object found"
            return
        best = plan.grasps[0]
        report.target_class = best.class_name
        aimed_at = np.asarray(poses[best.object_index].position_m)
        bodies = self.cell.bodies_of_kind("object")
        gaps = [np.linalg.norm(np.asarray(o.position_m) - aimed_at) for o in scene.objects]
        if not gaps or min(gaps) > TARGET_MATCH_M:
            report.reason = "grasp aimed at no real object"
            return
        body = bodies[int(np.argmin(gaps))]
        T_cam_gripper = pose_to_transform(best.position_m, best.quaternion_xyzw)
        outcome = execute_grasp(self.cell, T_world_cam @ T_cam_gripper, best.opening_m, body.body_id)
        report.success, report.reason = outcome.success, outcome.reason

    def _report_hard_cases(self, rendered: RenderedScene, frame, ref, poses, report: SceneReport) -> None:
        if self.hard_cases is None or report.model_version == "ground-truth":
            return
        from graspstack.ingest.validate import RawFrame

        raw = RawFrame(frame.rgb, frame.depth, frame.depth_scale, rendered.scene.intrinsics_obj())
        self.hard_cases.report(
            self.trigger_config,
            frame_id=ref.frame_id,
            model_version=report.model_version,
            intrinsics=raw.intrinsics,
            poses=poses,
            rgb=raw.rgb,
            depth=raw.depth,
            depth_scale=raw.depth_scale,
            gt_errors=match_scene(rendered.scene.ground_truth(), poses).records,
            ground_truth=rendered.scene.ground_truth(),
            grasp_failed=not report.success,
            robot_id=self.robot_id,
            stage=self.stage,
        )

    def _count(self, report: SceneReport) -> None:
        metrics.GRASP_ATTEMPTS.labels(report.model_version, self.stage).inc()
        successes = metrics.GRASP_SUCCESSES.labels(report.model_version, self.stage)  # 0 is a value
        if report.success:
            successes.inc()

    def run(self, scenes: int, seed: int, slice_name: str, progress: bool = True) -> dict:
        from tqdm import tqdm

        reports = []
        for i in tqdm(range(scenes), desc=f"robot {slice_name}", unit="scene", disable=not progress):
            reports.append(self.pick(render_scene(self.cell, slice_name, seed, i), i))
        return summarize(reports, slice_name, seed, self.poses_from)


def _pct(values: list[float]) -> dict:
    if not values:
        return {}
    a = np.asarray(values)
    return {f"p{q}": round(float(np.percentile(a, q)), 2) for q in (50, 95, 99)}


def summarize(reports: list[SceneReport], slice_name: str, seed: int, poses_from: str) -> dict:
    counted = sum(r.counted for r in reports)
    steps = sorted({k for r in reports for k in r.latency_ms})
    return {
        "slice": slice_name,
        "seed": seed,
        "scenes": len(reports),
        "poses_from": poses_from,
        "model_versions": sorted({r.model_version for r in reports if r.model_version}),
        "grasp_success_rate": round(float(np.mean([r.success for r in reports])), 4) if reports else None,
        "pose_within_spec_rate": round(sum(r.within_spec for r in reports) / counted, 4) if counted else None,
        "objects_counted": counted,
        "latency_ms": {s: _pct([r.latency_ms[s] for r in reports if s in r.latency_ms]) for s in steps},
        "failures": {
            reason: sum(1 for r in reports if not r.success and r.reason == reason)
            for reason in sorted({r.reason for r in reports if not r.success})
        },
        "scenes_detail": [asdict(r) for r in reports],
    }
