"""Annotations beside the contract files: instance masks, 2D keypoints and visible fractions."""

from __future__ import annotations

import cv2
import numpy as np

from graspstack.frames import Intrinsics
from graspstack.geometry import project_points, transform_points
from graspstack.object_models import ObjectModel

_SUBPIXEL_BITS = 4
_SUPERSAMPLE = 3


def silhouette(model: ObjectModel, T_cam_obj: np.ndarray, intr: Intrinsics, pad: int = 0) -> np.ndarray:
    """Boolean mask of the pixels whose centre sees the object, were nothing in front of it.

    The canvas extends `pad` pixels beyond each image border, so parts of the object outside the
    image still count: the visible fraction then covers truncation as well as occlusion. Triangles
    are filled on a 3x finer grid whose every third pixel is an image pixel centre, so a pixel counts
    when its centre is covered (as in the renderer) rather than when any part of it is touched.
    """
    k = _SUPERSAMPLE
    pts = transform_points(T_cam_obj, model.vertices)
    h, w = intr.height + 2 * pad, intr.width + 2 * pad
    canvas = np.zeros((h * k, w * k), dtype=np.uint8)
    tri_ok = (pts[model.faces][:, :, 2] > 0.01).all(axis=1)
    # Pixel (u, v) of the padded image has its centre at fine-grid pixel (k*u + k//2, k*v + k//2).
    uv = project_points(pts, intr.fx, intr.fy, intr.cx + pad, intr.cy + pad) * k + k // 2
    fixed = np.round(uv * (1 << _SUBPIXEL_BITS)).astype(np.int64)
    fixed = np.clip(fixed, -(1 << 28), 1 << 28).astype(np.int32)  # OpenCV's fixed-point range
    for tri in fixed[model.faces[tri_ok]]:
        cv2.fillConvexPoly(canvas, tri, 1, lineType=cv2.LINE_8, shift=_SUBPIXEL_BITS)
    return canvas[k // 2 :: k, k // 2 :: k].astype(bool)


def visible_fraction(
    visible_pixels: int, model: ObjectModel, T_cam_obj: np.ndarray, intr: Intrinsics
) -> float:
    full = int(silhouette(model, T_cam_obj, intr, pad=max(intr.width, intr.height) // 4).sum())
    return float(min(1.0, visible_pixels / full)) if full else 0.0


def keypoints_2d(model: ObjectModel, T_cam_obj: np.ndarray, intr: Intrinsics) -> np.ndarray:
    """Pixel coordinates of the model's 9 keypoints (bbox corners, then centre)."""
    return project_points(transform_points(T_cam_obj, model.keypoints()), intr.fx, intr.fy, intr.cx, intr.cy)


def mask_bbox(mask: np.ndarray) -> list[int] | None:
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return None
    return [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
