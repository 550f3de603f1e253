"""Label Studio round trip: cases out as keypoint tasks with the model's answer pre-filled, and
keypoint annotations back in as poses (PnP, then depth to fix the distance along the ray).

Keypoints are the object model's 9 (bounding-box corners, then centre; graspstack.object_models),
labelled "<class>/k<i>". Which object a keypoint belongs to is carried by the result id
"o<object>-k<i>", which Label Studio keeps when a labeler moves a pre-filled point; points added
from scratch (other ids) are grouped per class, one object per class.

Pixel convention: our projections put pixel centres at integer coordinates (OpenCV); Label Studio
uses percentages of the image size from its top-left edge, so x% = (u + 0.5) / width * 100.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np

from graspstack.catalogue import CLASS_NAMES
from graspstack.flywheel.cases import HardCase
from graspstack.frames import Intrinsics, ObjectPose
from graspstack.geometry import matrix_to_quat, project_points, transform_points
from graspstack.object_models import object_model

FROM_NAME, TO_NAME = "keypoints", "image"
N_KEYPOINTS = 9
MIN_KEYPOINTS = 4  # PnP needs at least 4 correspondences to be well posed
DEPTH_GATE_M = 0.02  # depth readings further than this from the PnP surface are other things
_ID = re.compile(r"^o(\d+)-k(\d+)$")
_LABEL = re.compile(r"^(\w+)/k(\d+)$")


def label_config() -> str:
    """The Label Studio labeling interface for these tasks."""
    labels = "\n".join(f'    <Label value="{c}/k{k}"/>' for c in CLASS_NAMES for k in range(N_KEYPOINTS))
    return (
        "<View>\n"
        f'  <KeyPointLabels name="{FROM_NAME}" toName="{TO_NAME}" smart="false">\n{labels}\n'
        "  </KeyPointLabels>\n"
        f'  <Image name="{TO_NAME}" value="$image" zoom="true"/>\n'
        "</View>\n"
    )


def object_keypoints_px(pose: ObjectPose, intr: Intrinsics) -> np.ndarray:
    """The 9 keypoints of the posed object in pixels (9, 2)."""
    pts = transform_points(pose.as_transform(), object_model(pose.class_name).keypoints())
    return project_points(pts, intr.fx, intr.fy, intr.cx, intr.cy)


def keypoint_results(poses: Iterable[ObjectPose], intr: Intrinsics, with_score: bool = True) -> list[dict]:
    """Label Studio keypointlabels results for a list of posed objects."""
    results = []
    for o, pose in enumerate(poses):
        for k, (u, v) in enumerate(object_keypoints_px(pose, intr)):
            item = {
                "id": f"o{o}-k{k}",
                "from_name": FROM_NAME,
                "to_name": TO_NAME,
                "type": "keypointlabels",
                "original_width": intr.width,
                "original_height": intr.height,
                "image_rotation": 0,
                "value": {
                    "x": float((u + 0.5) / intr.width * 100),
                    "y": float((v + 0.5) / intr.height * 100),
                    "width": 0.4,
                    "keypointlabels": [f"{pose.class_name}/k{k}"],
                },
            }
            if with_score:
                item["score"] = float(pose.confidence)
            results.append(item)
    return results


def _image_name(case: HardCase) -> str:
    ext = ".jpg" if case.rgb[:3] == b"\xff\xd8\xff" else ".png"
    return case.case_id.split(":")[-1][:24] + ext


def export_tasks(cases: Iterable[HardCase], out_dir: str | Path, image_url_prefix: str = "images/") -> Path:
    """Write images/, tasks.json and label_config.xml under out_dir; returns the tasks file."""
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    tasks = []
    for case in cases:
        name = _image_name(case)
        (out / "images" / name).write_bytes(case.rgb)
        i = case.intrinsics
        score = min((p.confidence for p in case.poses), default=0.0)
        tasks.append(
            {
                "data": {
                    "image": image_url_prefix + name,
                    "case_id": case.case_id,
                    "frame_id": case.frame_id,
                    "trigger": case.trigger,
                    "model_version": case.model_version,
                    "intrinsics": asdict(i),
                },
                "predictions": [
                    {
                        "model_version": case.model_version,
                        "score": float(score),  # the least confident object: what makes it hard
                        "result": keypoint_results(case.poses, i),
                    }
                ],
            }
        )
    (out / "label_config.xml").write_text(label_config())
    path = out / "tasks.json"
    path.write_text(json.dumps(tasks, indent=1))
    return path


def annotated_keypoints(results: Iterable[dict]) -> dict[tuple[str, str], dict[int, tuple[float, float]]]:
    """Group keypoint results into objects: (object key, class) -> {keypoint index: (u, v) px}."""
    objects: dict[tuple[str, str], dict[int, tuple[float, float]]] = {}
    for r in results:
        if r.get("type") != "keypointlabels":
            continue
        value = r["value"]
        match = _LABEL.match((value.get("keypointlabels") or [""])[0])
        if match is None:
            continue
        cls, k = match.group(1), int(match.group(2))
        w, h = r["original_width"], r["original_height"]
        u, v = value["x"] / 100 * w - 0.5, value["y"] / 100 * h - 0.5
        id_match = _ID.match(str(r.get("id", "")))
        key = f"o{id_match.group(1)}" if id_match else "new"
        objects.setdefault((key, cls), {})[k] = (u, v)
    return objects


def _refine_with_depth(
    R: np.ndarray, t: np.ndarray, class_name: str, depth_m: np.ndarray, intr: Intrinsics
) -> np.ndarray:
    """Slide the object along its viewing ray so its visible surface meets the depth readings.

    PnP's weakest direction is distance (a pixel of keypoint noise moves a small object by
    centimetres in depth); the depth camera measures exactly that.
    """
    pts = transform_points(
        np.vstack([np.c_[R, t], [0, 0, 0, 1]]), object_model(class_name).sample_surface(3000)
    )
    uv = np.round(project_points(pts, intr.fx, intr.fy, intr.cx, intr.cy)).astype(int)
    inside = (uv[:, 0] >= 0) & (uv[:, 0] < intr.width) & (uv[:, 1] >= 0) & (uv[:, 1] < intr.height)
    uv, z = uv[inside], pts[inside, 2]
    order = np.argsort(z)  # z-buffer: the nearest model point per pixel is the visible one
    _, first = np.unique(uv[order, 1] * intr.width + uv[order, 0], return_index=True)
    uv, z = uv[order][first], z[order][first]
    measured = depth_m[uv[:, 1], uv[:, 0]]
    offset = measured - z
    good = (measured > 0) & (np.abs(offset) < DEPTH_GATE_M)  # occluders and holes say nothing
    if good.sum() < 30:
        return t
    dz = float(np.median(offset[good]))
    return t * (t[2] + dz) / t[2]


def pose_from_keypoints(
    class_name: str,
    keypoints: dict[int, tuple[float, float]],
    intr: Intrinsics,
    depth_m: np.ndarray | None = None,
) -> ObjectPose | None:
    """PnP on the labelled keypoints (at least 4), then depth along the ray. None if unsolvable."""
    if len(keypoints) < MIN_KEYPOINTS:
        return None
    idx = sorted(keypoints)
    obj = object_model(class_name).keypoints()[idx].astype(np.float64)
    img = np.array([keypoints[k] for k in idx], dtype=np.float64)
    K = intr.as_matrix()
    ok, rvec, tvec = cv2.solvePnP(obj, img, K, None, flags=cv2.SOLVEPNP_SQPNP)
    if not ok:
        return None
    rvec, tvec = cv2.solvePnPRefineLM(obj, img, K, None, rvec, tvec)
    R, t = cv2.Rodrigues(rvec)[0], tvec.reshape(3)
    if t[2] <= 0:
        return None
    if depth_m is not None:
        t = _refine_with_depth(R, t, class_name, depth_m, intr)
    return ObjectPose(class_name, t, matrix_to_quat(R), 1.0, {"keypoints": len(idx)})


def decode_depth(case: HardCase) -> np.ndarray | None:
    raw = cv2.imdecode(np.frombuffer(case.depth, np.uint8), cv2.IMREAD_UNCHANGED) if case.depth else None
    return None if raw is None else raw.astype(np.float32) * np.float32(case.depth_scale)


def poses_from_results(results: Iterable[dict], case: HardCase) -> list[ObjectPose]:
    depth = decode_depth(case)
    poses = []
    for (_, cls), kps in annotated_keypoints(results).items():
        pose = pose_from_keypoints(cls, kps, case.intrinsics, depth)
        if pose is not None:
            poses.append(pose)
    return poses


def import_annotations(tasks: list[dict], lookup: Callable[[str], HardCase]) -> dict[str, list[ObjectPose]]:
    """Label Studio export (JSON list of tasks) -> {case id: labelled poses}.

    Takes each task's latest annotation that was not cancelled; tasks without one are left out.
    lookup(case_id) gives the case (for intrinsics and depth).
    """
    out = {}
    for task in tasks:
        annotations = [a for a in task.get("annotations", []) if not a.get("was_cancelled")]
        if not annotations:
            continue
        case_id = task["data"]["case_id"]
        out[case_id] = poses_from_results(annotations[-1].get("result", []), lookup(case_id))
    return out
