"""Render one lab scene: sample it, build it, settle it, photograph it, annotate it."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from graspstack.geometry import invert_transform, matrix_to_quat
from graspstack.object_models import object_model
from graspstack.scene_io import PinholeModel, PoseModel, SceneFile, SceneObject
from lab.annotate import keypoints_2d, mask_bbox, visible_fraction
from lab.cell import LabCell
from lab.envelope import RULES, sample_scene
from lab.sensor import add_depth_noise

MAX_ATTEMPTS = 12
DEPTH_SCALE = 0.001


@dataclass
class RenderedScene:
    rgb: np.ndarray
    depth_m: np.ndarray  # with sensor noise, as the robot sees it
    depth_clean_m: np.ndarray  # what the renderer drew, for ground-truth checks
    scene: SceneFile
    annotations: dict
    masks: np.ndarray  # uint8, k = index k-1 into scene.objects, 0 = anything else


def _pose_model(T: np.ndarray) -> PoseModel:
    return PoseModel(
        position_m=[float(v) for v in T[:3, 3]], quaternion_xyzw=[float(v) for v in matrix_to_quat(T[:3, :3])]
    )


def render_scene(cell: LabCell, slice_name: str, seed: int, index: int) -> RenderedScene:
    """Scene `index` of dataset `seed`. Nominal scenes that break the occlusion rule are redrawn."""
    rules = RULES[slice_name]
    for attempt in range(MAX_ATTEMPTS):
        spec = sample_scene(slice_name, seed, index, attempt)
        cell.reset(spec)
        cell.settle()
        result = _photograph(cell, spec)
        objects = result.scene.objects
        ok = bool(objects) and all(o.visible_fraction >= 1.0 - rules.max_occlusion for o in objects)
        if ok or rules.max_occlusion >= 1.0:
            return result
    # Rare: keep the last draw but take out the objects that break the rule, then re-photograph.
    for body, obj in zip(list(cell.bodies_of_kind("object")), objects, strict=True):
        if obj.visible_fraction < 1.0 - rules.max_occlusion:
            cell.remove(body)
    return _photograph(cell, spec)


def _photograph(cell: LabCell, spec) -> RenderedScene:
    T_world_cam = cell.camera_pose(spec)
    intr = cell.intrinsics(spec)
    rgb, depth_clean, seg = cell.render(T_world_cam, intr, spec)
    T_cam_world = invert_transform(T_world_cam)

    masks = np.zeros(seg.shape, dtype=np.uint8)
    objects, ann_objects = [], []
    for body in cell.bodies_of_kind("object"):
        model = object_model(body.name)
        T_cam_obj = T_cam_world @ cell.T_world_obj(body.body_id)
        body_mask = seg == body.body_id
        masks[body_mask] = len(objects) + 1
        pose = _pose_model(T_cam_obj)
        objects.append(
            SceneObject(
                class_name=body.name,
                position_m=pose.position_m,
                quaternion_xyzw=pose.quaternion_xyzw,
                visible_fraction=round(visible_fraction(int(body_mask.sum()), model, T_cam_obj, intr), 4),
            )
        )
        ann_objects.append(
            {
                "mask_id": len(objects),
                "class": body.name,
                "visible_pixels": int(body_mask.sum()),
                "bbox_xyxy": mask_bbox(body_mask),
                "keypoints_2d": np.round(keypoints_2d(model, T_cam_obj, intr), 3).tolist(),
            }
        )

    rules = RULES[spec.slice]
    rng = np.random.default_rng(spec.noise_seed)
    depth = add_depth_noise(
        depth_clean, rng, rules.depth_noise_factor, rules.depth_dropout, rules.dropout_on_edges
    )
    scene = SceneFile(
        width=intr.width,
        height=intr.height,
        intrinsics=PinholeModel(fx=intr.fx, fy=intr.fy, cx=intr.cx, cy=intr.cy),
        depth_scale=DEPTH_SCALE,
        T_world_cam=_pose_model(T_world_cam),
        objects=objects,
    )
    annotations = {
        "slice": spec.slice,
        "seed": spec.seed,
        "index": spec.index,
        "attempt": spec.attempt,
        "masks": "masks.png",
        "keypoints": "9 per object: object-frame bbox corners (x, y, z from min to max, "
        "z fastest), then the bbox centre",
        "objects": ann_objects,
        "distractors": [b.name for b in cell.bodies_of_kind("distractor")],
        "light": asdict(spec.light),
        "table_rgba": list(spec.table_rgba),
        "table_texture": spec.table_texture,
    }
    return RenderedScene(rgb, depth, depth_clean, scene, annotations, masks)
