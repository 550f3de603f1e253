"""Label Studio round trip: pre-filled keypoints out, annotations in, poses back via PnP + depth."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from graspstack.catalogue import CLASS_NAMES
from graspstack.flywheel.cases import HardCase
from graspstack.flywheel.labeling import Labeling
from graspstack.flywheel.labelstudio import export_tasks, import_annotations, keypoint_results
from graspstack.flywheel.sim_labeler import SimLabeler
from graspstack.frames import Intrinsics, ObjectPose
from graspstack.geometry import matrix_to_quat, project_points, quat_to_matrix, rot_x, rot_y, rot_z
from graspstack.metric import angular_error_deg
from graspstack.object_models import object_model
from graspstack.scene_io import encode_depth

INTR = Intrinsics(580.0, 580.0, 320.0, 240.0, 640, 480)


def _scene(seed: int) -> list[ObjectPose]:
    """One object of each class in a row across the image, at random orientations."""
    rng = np.random.default_rng(seed)
    poses = []
    for k, cls in enumerate(CLASS_NAMES):
        R = rot_z(rng.uniform(0, 360)) @ rot_y(rng.uniform(-40, 40)) @ rot_x(rng.uniform(120, 240))
        t = np.array([-0.24 + 0.12 * k, rng.uniform(-0.05, 0.05), rng.uniform(0.55, 0.75)])
        poses.append(ObjectPose(cls, t, matrix_to_quat(R), 0.3 + 0.1 * k))
    return poses


def _depth_png(poses: list[ObjectPose]) -> bytes:
    """What a depth camera would see of these objects: a z-buffer of dense surface samples."""
    depth = np.zeros((INTR.height, INTR.width), np.float32)
    for p in poses:
        pts = object_model(p.class_name).sample_surface(150_000, seed=1) @ p.as_transform()[:3, :3].T
        pts += p.position_m
        uv = np.round(project_points(pts, INTR.fx, INTR.fy, INTR.cx, INTR.cy)).astype(int)
        inside = (uv[:, 0] >= 0) & (uv[:, 0] < INTR.width) & (uv[:, 1] >= 0) & (uv[:, 1] < INTR.height)
        uv, z = uv[inside], pts[inside, 2].astype(np.float32)
        order = np.argsort(-z)  # far to near: the nearest point per pixel is written last and wins
        layer = np.zeros_like(depth)
        layer[uv[order, 1], uv[order, 0]] = z[order]
        depth = np.where((depth > 0) & ((layer == 0) | (depth < layer)), depth, layer)
    return cv2.imencode(".png", encode_depth(depth))[1].tobytes()


@pytest.fixture(scope="module")
def scene_case() -> HardCase:
    gt = _scene(3)
    model = [ObjectPose(p.class_name, p.position_m + 0.02, p.quaternion_xyzw, p.confidence) for p in gt]
    rgb = cv2.imencode(".png", np.zeros((INTR.height, INTR.width, 3), np.uint8))[1].tobytes()
    return HardCase(
        frame_id="sha256:" + "ab" * 32,
        trigger="low_confidence",
        model_version="pose-test",
        intrinsics=INTR,
        poses=model,
        rgb=rgb,
        depth=_depth_png(gt),
        ground_truth=gt,
    )


def _errors(gt: list[ObjectPose], got: list[ObjectPose]) -> list[tuple[str, float, float]]:
    by_class = {p.class_name: p for p in got}
    out = []
    for g in gt:
        p = by_class[g.class_name]
        te = float(np.linalg.norm(p.position_m - g.position_m))
        re = angular_error_deg(
            g.class_name, quat_to_matrix(g.quaternion_xyzw), quat_to_matrix(p.quaternion_xyzw)
        )
        out.append((g.class_name, te, re))
    return out


def test_export_prefills_the_models_keypoints_with_version_and_score(scene_case, tmp_path):
    path = export_tasks([scene_case], tmp_path)
    tasks = json.loads(path.read_text())
    assert (tmp_path / "label_config.xml").read_text().count("<Label ") == 45
    task = tasks[0]
    assert (tmp_path / task["data"]["image"]).read_bytes() == scene_case.rgb
    pred = task["predictions"][0]
    assert pred["model_version"] == "pose-test" and pred["score"] == pytest.approx(0.3)
    assert len(pred["result"]) == 9 * len(scene_case.poses)
    first = pred["result"][0]
    assert first["type"] == "keypointlabels" and first["value"]["keypointlabels"] == ["duck/k0"]
    assert all(0 <= r["value"]["x"] <= 100 and 0 <= r["value"]["y"] <= 100 for r in pred["result"])


def test_round_trip_recovers_poses_from_noiseless_keypoints(scene_case, tmp_path):
    tasks = json.loads(export_tasks([scene_case], tmp_path).read_text())
    # The labeler corrects the model: moves every pre-filled point to the true position.
    tasks[0]["annotations"] = [{"result": keypoint_results(scene_case.ground_truth, INTR)}]
    labelled = import_annotations(tasks, lambda _id: scene_case)
    for cls, te, re in _errors(scene_case.ground_truth, labelled[scene_case.case_id]):
        assert te < 0.01 and re < 2.0, (cls, te, re)


def test_simulated_labeler_with_click_noise_stays_near_the_truth(scene_case, store):
    labels = SimLabeler(noise_px=1.5, seed=7).label(scene_case)
    errors = _errors(scene_case.ground_truth, labels)
    big = [e for e in errors if e[0] in ("duck", "teddy", "mug", "jenga")]  # lego is 3 cm: a pixel is 1 mm
    assert all(te < 0.01 for _, te, _ in big), errors
    assert np.median([re for _, _, re in errors]) < 5.0, errors

    store.put(scene_case)
    labeling = Labeling(store)
    assert SimLabeler(seed=1).run(labeling) == 1
    assert len(labeling.labels(scene_case.case_id)) == len(CLASS_NAMES)
