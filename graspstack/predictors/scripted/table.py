"""Back-projection of depth and the table plane fit (RANSAC, then least squares on the inliers)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

from graspstack.frames import Intrinsics


@dataclass(frozen=True)
class Plane:
    """Points p with normal @ p + offset = 0; normal is unit and points towards the camera (up)."""

    normal: np.ndarray
    offset: float
    noise_scale: float  # robust std of depth residuals divided by z^2 (sensor noise grows as z^2)

    def height(self, points: np.ndarray) -> np.ndarray:
        """Signed distance above the table for (..., 3) points."""
        return points @ self.normal + self.offset

    def frame(self, anchor: np.ndarray) -> np.ndarray:
        """T_cam_table: z along the normal, origin under anchor on the plane, x arbitrary but fixed."""
        T = np.eye(4)
        T[:3, :3] = self._axes
        T[:3, 3] = anchor - self.height(anchor) * self.normal
        return T

    @cached_property
    def _axes(self) -> np.ndarray:
        """The table frame's axes in the camera (columns): the same for every anchor, and a hard
        frame asks for ~30 frames (np.cross on 3-vectors costs ~20 us)."""
        z = self.normal
        ref = np.array([1.0, 0.0, 0.0]) if abs(z[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
        x = np.cross(ref, z)
        x /= np.linalg.norm(x)
        return np.stack([x, np.cross(z, x), z], axis=1)

    def depth_sigma(self, z: np.ndarray | float) -> np.ndarray | float:
        return self.noise_scale * np.asarray(z) ** 2


def back_project(depth_m: np.ndarray, intr: Intrinsics) -> np.ndarray:
    """HxWx3 camera-frame points (OpenCV axes); pixels without a reading come out as (0, 0, 0)."""
    h, w = depth_m.shape
    u = (np.arange(w, dtype=np.float32) - intr.cx) / intr.fx
    v = (np.arange(h, dtype=np.float32) - intr.cy) / intr.fy
    return np.stack([depth_m * u[None, :], depth_m * v[:, None], depth_m], axis=-1)


COUNT_BLOCK = 131072  # point-hypothesis pairs per inlier-count product: 512 KB, no page faults per call


def fit_plane(
    points: np.ndarray, iterations: int = 150, threshold_m: float = 0.006, seed: int = 0
) -> tuple[Plane, np.ndarray]:
    """RANSAC plane through (N, 3) points, refit to its inliers. Returns the plane and the inlier mask.

    The table fills most of every frame in the envelope, so the plane with most support is the table;
    ties with a large object face are broken towards the plane farther from the camera.
    """
    rng = np.random.default_rng(seed)
    n = len(points)
    if n < 3:
        raise ValueError("need at least 3 points to fit a plane")
    # Every hypothesis at once: one (N, iterations) product instead of a Python loop per draw.
    idx = rng.integers(0, n, size=(iterations, 3))
    a, b, c = points[idx[:, 0]], points[idx[:, 1]], points[idx[:, 2]]
    normals = np.cross(b - a, c - a)
    norms = np.linalg.norm(normals, axis=1)
    ok = norms >= 1e-9
    if not ok.any():
        raise ValueError("degenerate points: no plane")
    normals = normals / np.where(ok, norms, 1.0)[:, None]
    offsets = -np.sum(normals * a, axis=1)
    counts = np.empty(iterations, np.int64)
    step = max(1, COUNT_BLOCK // n)  # hypotheses per product: its temporaries stay in cache
    for s in range(0, iterations, step):
        d = points @ normals[s : s + step].T
        d += offsets[s : s + step]
        counts[s : s + step] = np.count_nonzero(np.abs(d, out=d) < threshold_m, axis=0)
    score = np.where(ok, counts + 1e-3 * np.abs(offsets), -1.0)  # prefer the farther plane among equals
    best = int(np.argmax(score))  # the first of equals, as the draws come
    normal, offset = normals[best], float(offsets[best])
    inliers = np.abs(points @ normal + offset) < threshold_m
    # Least squares refit twice, tightening to the residual spread so the estimate is not biased
    # by object feet or sensor noise at the far edge.
    for _ in range(2):
        p = points[inliers]
        centroid = p.mean(axis=0)
        normal = np.linalg.svd(p - centroid, full_matrices=False)[2][2]
        offset = -normal @ centroid
        resid = points @ normal + offset
        inliers = np.abs(resid) < threshold_m
    if offset < 0:  # orient the normal towards the camera: camera origin must be above the table
        normal, offset = -normal, -offset
    p = points[inliers]
    r = np.abs(p @ normal + offset) / np.maximum(p[:, 2], 1e-3) ** 2
    noise_scale = 1.4826 * float(np.median(r))
    return Plane(normal, float(offset), noise_scale), inliers


PLANE_SAMPLES = 6000


def denoise_depth(depth_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """5x5 median (cuts depth noise ~2.5x yet keeps object borders sharp) and the valid-pixel mask."""
    raw = depth_m.astype(np.float32)
    depth = cv2.medianBlur(raw, 5)
    valid = (raw > 0) & (depth > 0)
    return np.where(valid, depth, 0.0).astype(np.float32), valid


def table_plane(
    points: np.ndarray,
    valid: np.ndarray,
    threshold_m: float = 0.008,
    samples: int = PLANE_SAMPLES,
    iterations: int = 150,
) -> Plane | None:
    """The table under the objects, from HxWx3 points; None when the frame has too little depth."""
    # Drawing pixel indices rather than copying every valid point first (`points[valid]` copies
    # ~300k points, 4 ms): the same sample, bit for bit, since boolean indexing is in this order.
    idx = np.flatnonzero(valid)
    if len(idx) < 100:
        return None
    pick = idx[np.random.default_rng(0).integers(0, len(idx), size=min(samples, len(idx)))]
    return fit_plane(points.reshape(-1, 3)[pick], iterations=iterations, threshold_m=threshold_m)[0]
