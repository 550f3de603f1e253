"""Pictures of scenes: ground-truth (or predicted) poses drawn over the colour image."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from graspstack.frames import Intrinsics, ObjectPose
from graspstack.geometry import project_points, transform_points
from graspstack.object_models import object_model

# Bounding-box edges between the 8 corners of ObjectModel.keypoints() (x, y, z from min to max, z fastest).
_BOX_EDGES = [(0, 1), (2, 3), (4, 5), (6, 7), (0, 2), (1, 3), (4, 6), (5, 7), (0, 4), (1, 5), (2, 6), (3, 7)]
_AXIS_COLOURS = [(255, 0, 0), (0, 200, 0), (0, 0, 255)]  # x red, y green, z blue (RGB)


def draw_poses(
    rgb: np.ndarray, poses: list[ObjectPose], intr: Intrinsics, colour=(255, 255, 255)
) -> np.ndarray:
    """Each object's model bounding box, its frame axes (3 cm) and its class name."""
    img = rgb.copy()
    for pose in poses:
        T = pose.as_transform()
        model = object_model(pose.class_name)
        box = project_points(transform_points(T, model.keypoints()[:8]), intr.fx, intr.fy, intr.cx, intr.cy)
        for a, b in _BOX_EDGES:
            cv2.line(
                img,
                tuple(np.round(box[a]).astype(int)),
                tuple(np.round(box[b]).astype(int)),
                colour,
                1,
                cv2.LINE_AA,
            )
        axes = np.vstack([np.zeros(3), np.eye(3) * 0.03])
        uv = np.round(project_points(transform_points(T, axes), intr.fx, intr.fy, intr.cx, intr.cy)).astype(
            int
        )
        for k in range(3):
            cv2.line(img, tuple(uv[0]), tuple(uv[k + 1]), _AXIS_COLOURS[k], 2, cv2.LINE_AA)
        label = pose.class_name
        if "visible_fraction" in pose.extras:
            label += f" {pose.extras['visible_fraction']:.2f}"
        org = tuple(np.round(box.min(axis=0)).astype(int) + np.array([0, -4]))
        cv2.putText(img, label, org, cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(img, label, org, cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)
    return img


def save_rgb(path: str | Path, rgb: np.ndarray) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
