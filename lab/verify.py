"""Check ground truth against the images: re-render each object's depth from its reported T_cam_obj.

The re-render is independent of PyBullet: the object's mesh (read from its URDF), our own pinhole
projection and a point-splat z-buffer. If the reported pose were in the wrong frame (inertial instead
of link frame, OpenGL instead of OpenCV camera), the two depths would disagree by centimetres.
"""

from __future__ import annotations

import numpy as np

from graspstack.frames import Intrinsics
from graspstack.geometry import project_points, transform_points
from graspstack.object_models import object_model

SURFACE_SAMPLES = 80_000


def splat_depth(class_name: str, T_cam_obj: np.ndarray, intr: Intrinsics) -> np.ndarray:
    """Depth image (0 = empty) of one object alone: nearest sampled surface point per pixel."""
    pts = transform_points(T_cam_obj, object_model(class_name).sample_surface(SURFACE_SAMPLES, seed=7))
    uv = np.round(project_points(pts, intr.fx, intr.fy, intr.cx, intr.cy)).astype(np.int64)
    ok = (uv[:, 0] >= 0) & (uv[:, 0] < intr.width) & (uv[:, 1] >= 0) & (uv[:, 1] < intr.height)
    ok &= pts[:, 2] > 0
    zbuf = np.full(intr.height * intr.width, np.inf)
    np.minimum.at(zbuf, uv[ok, 1] * intr.width + uv[ok, 0], pts[ok, 2])
    zbuf[np.isinf(zbuf)] = 0.0
    return zbuf.reshape(intr.height, intr.width)


def depth_differences(
    depth_m: np.ndarray, masks: np.ndarray, objects: list[tuple[str, np.ndarray]], intr: Intrinsics
) -> np.ndarray:
    """Observed minus re-rendered depth (metres) over each object's visible pixels.

    objects[k] = (class name, T_cam_obj) for mask id k + 1.
    """
    diffs = [np.zeros(0)]
    for k, (name, T) in enumerate(objects):
        splat = splat_depth(name, T, intr)
        sel = (masks == k + 1) & (splat > 0) & (depth_m > 0)
        diffs.append(depth_m[sel] - splat[sel])
    return np.concatenate(diffs)


def verify_dataset(data, limit: int | None = None) -> dict:
    """Depth agreement over the scenes of a folder, per slice, on the depth images as stored."""
    from graspstack.scene_io import Scene, iter_scene_dirs

    per_slice: dict[str, list[np.ndarray]] = {}
    for n, scene_dir in enumerate(iter_scene_dirs(data)):
        if limit is not None and n >= limit:
            break
        scene = Scene(scene_dir)
        masks = scene.masks()
        if masks is None:
            continue
        frame = scene.frame()
        objects = [(p.class_name, p.as_transform()) for p in scene.ground_truth()]
        diffs = depth_differences(frame.depth_m, masks, objects, frame.intrinsics)
        per_slice.setdefault(scene.slice, []).append(diffs)
    if not per_slice:
        raise ValueError(f"no annotated scenes under {data}")
    out: dict = {"slices": {}}
    for name, chunks in per_slice.items():
        d = np.concatenate(chunks)
        out["slices"][name] = {
            "pixels": int(d.size),
            "median_abs_mm": round(float(np.median(np.abs(d))) * 1e3, 3),
            "median_signed_mm": round(float(np.median(d)) * 1e3, 3),
        }
    out["median_abs_mm"] = max(s["median_abs_mm"] for s in out["slices"].values())
    return out
