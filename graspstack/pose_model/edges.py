"""Aligning a resting object's outline with the colour image: yaw and table position.

The depth fit pins a resting object's height and tilt to a fraction of a degree, but a lego is 3.2 cm
across: a yaw error of 7 deg moves its corners by ~2.5 mm, within the depth's noise and the mixed
pixels along its border, so the depth score hardly changes and lego yaws came out 5-9 deg off. The
colour image's edges do not get noisier with distance: the outline is there to a pixel (~1.2 mm at
0.7 m). So the winner's outline (the convex hull of the model's projected hull vertices) is moved in
yaw about the table normal and along the table until the colour gradient across it is strongest.

The strength of an outline is the mean, over points sampled along it every pixel, of the colour
gradient's component across the outline (per channel, root of the sum of squares): an edge that
follows the outline counts, texture crossing it little. Outline points where the depth just outside
is nearer than the object (an occluder's edge, not this object's) are left out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
from numba import njit

from graspstack.frames import Intrinsics
from graspstack.metric import angular_error_deg
from graspstack.pose_model.refine import _nearest_resting
from graspstack.predictors.scripted.fit import _rz, model_cloud
from graspstack.predictors.scripted.resting import RestingPose
from graspstack.predictors.scripted.table import Plane

RESTING_TILT_DEG = 3.0  # aligned only when this close to a resting pose: yaw is then its one free turn
MARGIN_PX = 12  # the gradient window reaches this far beyond the outline's box
OCCLUDER_M = 0.01  # depth just outside the outline nearer than the object by this: not our edge
PROBE_PX = 3.0  # how far outside the outline the occlusion test looks
OUTLINE_REACH_PX = 3  # how far (px, either axis) an outline pixel's nearest sample can sit (silhouette)
SILHOUETTE_STRIDE = 3  # every third dense sample: the same accuracy on validation, a cheaper outline
# Coarse to fine grids around the best pose so far: (yaw half-range deg, yaw step deg, shift half-range m,
# shift step m), each holding the pose so far at its centre. Each is one vectorised evaluation; the
# outline is built anew before each. The first, coarsest level reaches resting objects the depth fit
# left 10-20 deg off in yaw (teddies whose correspondences were off, legos the depth cannot turn),
# which the +-9 deg grid that began the search could not: hard validation +7 / -1 (legos +4 / -1,
# teddies +2, a duck), nominal and diagnostic unchanged; a +-24 deg reach gained nothing more.
GRIDS = (
    (18.0, 6.0, 0.002, 0.002),
    (9.0, 3.0, 0.001, 0.001),
    (3.0, 1.0, 0.0005, 0.0005),
    (1.0, 0.25, 0.00025, 0.00025),
)


@dataclass
class ColourGradient:
    """Smoothed per-channel colour gradients of one window of the frame."""

    gx: np.ndarray  # (H, W, 3) float32
    gy: np.ndarray
    origin: np.ndarray  # (2,) full-resolution (u, v) of the window's corner

    @classmethod
    def around(cls, rgb: np.ndarray, box: tuple[int, int, int, int]) -> ColourGradient:
        """Gradients of rgb over box = (u0, v0, u1, v1), clipped to the image."""
        h, w = rgb.shape[:2]
        u0, v0 = max(box[0], 0), max(box[1], 0)
        u1, v1 = min(box[2], w), min(box[3], h)
        # A one-pixel blur widens each edge's basin to ~2 px: the grid's corners move ~0.5 px a step.
        img = cv2.GaussianBlur(rgb[v0:v1, u0:u1].astype(np.float32) / 255.0, (5, 5), 1.0)
        gx = cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=3) / 8.0
        gy = cv2.Sobel(img, cv2.CV_32F, 0, 1, ksize=3) / 8.0
        return cls(gx, gy, np.array([u0, v0], np.float64))

    @classmethod
    def around_points(cls, rgb: np.ndarray, uv: np.ndarray) -> ColourGradient:
        """Gradients of a square window centred on projected points uv (N, 2), reaching MARGIN_PX
        beyond half their wider spread: room for the searches to move the outline."""
        pad = MARGIN_PX + 0.5 * np.ptp(uv, axis=0).max()
        lo, hi = uv.mean(axis=0) - pad, uv.mean(axis=0) + pad
        return cls.around(rgb, (int(lo[0]), int(lo[1]), int(hi[0]) + 1, int(hi[1]) + 1))


def _project(P: np.ndarray, intr: Intrinsics) -> np.ndarray:
    z = np.maximum(P[..., 2], 1e-6)
    return np.stack([intr.fx * P[..., 0] / z + intr.cx, intr.fy * P[..., 1] / z + intr.cy], axis=-1)


def hull_outline(P: np.ndarray, uv: np.ndarray, step_px: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The convex hull of uv (K, 2), the projections of points P (K, 3): points along it every
    step_px, given as points on the 3D segments between P's hull vertices (a segment projects onto
    the segment between its ends' projections, so they stay on the outline while the pose moves a
    little), and the hull's outward normals there. Returns (M, 3) points and (M, 2) normals."""
    order = cv2.convexHull(uv.astype(np.float32), returnPoints=False).ravel()
    a2, a3 = uv[order], P[order]
    d2, d3 = np.roll(a2, -1, axis=0) - a2, np.roll(a3, -1, axis=0) - a3
    length = np.linalg.norm(d2, axis=1)
    counts = np.maximum((length / step_px).astype(int), 1)
    edge = np.repeat(np.arange(len(order)), counts)
    frac = np.concatenate([(np.arange(k) + 0.5) / k for k in counts])[:, None]
    n = np.stack([d2[:, 1], -d2[:, 0]], axis=1) / np.maximum(length[:, None], 1e-9)
    # Outward: away from the polygon's centre (the hull may come either way round).
    n = np.where((((a2 + 0.5 * d2) - a2.mean(axis=0)) * n).sum(axis=1, keepdims=True) < 0, -n, n)
    return a3[edge] + frac * d3[edge], n[edge]


@njit(cache=True, nogil=True, inline="always")
def gradient_across(gx, gy, u, v, nx, ny):
    """The colour gradient's component along image direction (nx, ny) at window point (u, v), per
    channel, root of the sum of squares; bilinear between the four pixels around it (u, v must be
    inside the window by at least a pixel)."""
    i, j = int(v), int(u)
    fu, fv = u - j, v - i
    sq = 0.0
    for ch in range(3):
        ax = (1 - fv) * ((1 - fu) * gx[i, j, ch] + fu * gx[i, j + 1, ch]) + fv * (
            (1 - fu) * gx[i + 1, j, ch] + fu * gx[i + 1, j + 1, ch]
        )
        ay = (1 - fv) * ((1 - fu) * gy[i, j, ch] + fu * gy[i, j + 1, ch]) + fv * (
            (1 - fu) * gy[i + 1, j, ch] + fu * gy[i + 1, j + 1, ch]
        )
        across = ax * nx + ay * ny
        sq += across * across
    return np.sqrt(sq)


@njit(cache=True, nogil=True)
def outline_strengths(P, R, t, intr, gx, gy, origin, normals, keep):
    """An outline's strength at C camera poses (R (C, 3, 3), t (C, 3)) of its object-frame points P
    (K, 3), those with keep: the mean over them of the colour gradient across the outline
    (gradient_across along the outward image normals; points outside the gradient window left out).
    One compiled pass per pose and point: 0.3 ms a grid of 200 poses (numpy expressions with
    cv2.remap took ~1 ms)."""
    C, K = R.shape[0], P.shape[0]
    h, w = gx.shape[0], gx.shape[1]
    fx, fy, cx, cy = intr[0], intr[1], intr[2], intr[3]
    out = np.zeros(C)
    for c in range(C):
        total, used = 0.0, 0
        for k in range(K):
            if not keep[k]:
                continue
            X = R[c, 0, 0] * P[k, 0] + R[c, 0, 1] * P[k, 1] + R[c, 0, 2] * P[k, 2] + t[c, 0]
            Y = R[c, 1, 0] * P[k, 0] + R[c, 1, 1] * P[k, 1] + R[c, 1, 2] * P[k, 2] + t[c, 1]
            Z = max(R[c, 2, 0] * P[k, 0] + R[c, 2, 1] * P[k, 1] + R[c, 2, 2] * P[k, 2] + t[c, 2], 1e-6)
            u, v = fx * X / Z + cx - origin[0], fy * Y / Z + cy - origin[1]
            if not (u >= 0.0 and u < w - 1 and v >= 0.0 and v < h - 1):
                continue
            total += gradient_across(gx, gy, u, v, normals[k, 0], normals[k, 1])
            used += 1
        out[c] = total / max(used, 1)
    return out


def silhouette(uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The outer outline of projected surface samples uv (N, 2), one pixel apart: for each outline
    pixel the index of the sample nearest it (the point of the object that makes the outline there)
    and the outward normal (M, 2). For shapes whose convex hull is not their outline (a duck's neck)."""
    lo = np.floor(uv.min(axis=0)).astype(np.int64) - 2
    px = np.round(uv).astype(np.int64) - lo
    size = px.max(axis=0) + 3
    mask = np.zeros((size[1], size[0]), np.uint8)
    mask[px[:, 1], px[:, 0]] = 1
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))  # gaps between samples
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    c = max(contours, key=len).reshape(-1, 2).astype(np.float64)
    tangent = np.roll(c, -2, axis=0) - np.roll(c, 2, axis=0)
    n = np.stack([tangent[:, 1], -tangent[:, 0]], axis=1)
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-9)
    probe = np.round(c + 2.0 * n).astype(np.int64)
    ok = (probe[:, 0] >= 0) & (probe[:, 0] < size[0]) & (probe[:, 1] >= 0) & (probe[:, 1] < size[1])
    outside = ~ok
    outside[ok] = mask[probe[ok, 1], probe[ok, 0]] == 0
    if outside.mean() < 0.5:
        n = -n
    nearest = _nearest_samples(uv, px, mask.shape, c, lo.astype(np.float64), OUTLINE_REACH_PX)
    return nearest, n


@njit(cache=True, nogil=True)
def _nearest_samples(uv, px, shape_hw, outline, lo, reach: int):  # pragma: no cover - compiled
    """For each outline pixel (M, 2, mask frame) the index of the sample uv (N, 2; its pixel px, mask
    frame) nearest it, the first on a tie. The nearest sample to an outline pixel lies within 2.2 px
    of it (the pixel holds a sample, or the closing filled it next to one), so its own pixel is
    within `reach` px either axis: the samples are listed per pixel and only those around each outline
    pixel are measured. (A k-d tree over the samples near the outline gave the same indices on 262
    outlines of hard validation frames, in 0.62 ms a silhouette against 0.36 ms.)"""
    h, w = shape_hw
    first = np.full((h, w), -1, np.int64)  # per pixel, a linked list of its samples
    after = np.empty(len(uv), np.int64)
    for i in range(len(uv)):
        after[i] = first[px[i, 1], px[i, 0]]
        first[px[i, 1], px[i, 0]] = i
    out = np.empty(len(outline), np.int64)
    for m in range(len(outline)):
        cu, cv = int(outline[m, 0]), int(outline[m, 1])
        qu, qv = outline[m, 0] + lo[0], outline[m, 1] + lo[1]
        best, best_i = np.inf, -1
        for y in range(max(cv - reach, 0), min(cv + reach + 1, h)):
            for x in range(max(cu - reach, 0), min(cu + reach + 1, w)):
                i = first[y, x]
                while i >= 0:
                    du, dv = uv[i, 0] - qu, uv[i, 1] - qv
                    d = du * du + dv * dv
                    if d < best or (d == best and i < best_i):
                        best, best_i = d, i
                    i = after[i]
        out[m] = best_i
    return out


def _unoccluded(pts: np.ndarray, normals: np.ndarray, depth_m: np.ndarray, z_obj: float) -> np.ndarray:
    """Outline points whose outside neighbour is not nearer than the object (no occluder there)."""
    probe = np.round(pts + PROBE_PX * normals).astype(np.int64)
    h, w = depth_m.shape
    ok = (probe[:, 0] >= 0) & (probe[:, 0] < w) & (probe[:, 1] >= 0) & (probe[:, 1] < h)
    d = np.zeros(len(pts))
    d[ok] = depth_m[probe[ok, 1], probe[ok, 0]]
    return ~ok | (d <= 0) | (d > z_obj - OCCLUDER_M)


def align_to_edges(
    T_cam_obj: np.ndarray,
    hull_obj: np.ndarray,
    T_cam_table: np.ndarray,
    rgb: np.ndarray,
    depth_m: np.ndarray,
    intr: Intrinsics,
    surface_obj: np.ndarray | None = None,
) -> tuple[np.ndarray, float, float]:
    """T_cam_obj turned about the table normal through its centre and moved along the table so that
    its outline lies on the colour image's strongest edges. Returns (pose, strength before, after).
    The outline is the convex hull of hull_obj's projection, or with surface_obj (dense surface
    samples) the outer outline of their projection (silhouette)."""
    centre_cam = T_cam_obj[:3, :3] @ hull_obj.mean(axis=0) + T_cam_obj[:3, 3]
    Rt = T_cam_table[:3, :3]
    # Object pose in a table frame whose origin is under the object's centre.
    T_ct = T_cam_table.copy()
    T_ct[:3, 3] = centre_cam
    T_to = np.linalg.inv(T_ct) @ T_cam_obj
    H = hull_obj @ T_to[:3, :3].T + T_to[:3, 3]  # hull in that frame, turning about its origin

    grad = ColourGradient.around_points(rgb, _project(H @ Rt.T + centre_cam, intr))
    z_obj = float(centre_cam[2])

    def project_points(P: np.ndarray, yaw_deg: np.ndarray, shift: np.ndarray) -> np.ndarray:
        """Frame points P (K, 3) at C poses (yaw deg (C,), table shift (C, 2)): pixels (C, K, 2)."""
        # Turns about the frame's z axis, written out: a batched 3x3 matmul is several times slower.
        c, s = np.cos(np.radians(yaw_deg))[:, None], np.sin(np.radians(yaw_deg))[:, None]
        x = c * P[:, 0] - s * P[:, 1] + shift[:, :1]
        y = s * P[:, 0] + c * P[:, 1] + shift[:, 1:]
        cam = x[..., None] * Rt[:, 0] + y[..., None] * Rt[:, 1] + (P[:, 2:3] * Rt[:, 2] + centre_cam)
        return _project(cam, intr)

    S = None if surface_obj is None else surface_obj @ T_to[:3, :3].T + T_to[:3, 3]

    def outline_at(yaw_deg: float, shift: np.ndarray):
        """The outline at one pose, for strengths() at poses near it: its points (frame, at yaw 0 and
        no shift), their outward normals there and which of them no occluder hides."""
        yaw, sh = np.array([yaw_deg]), shift[None]
        if S is None:
            points, normals = hull_outline(H, project_points(H, yaw, sh)[0])
        else:
            nearest, normals = silhouette(project_points(S, yaw, sh)[0])
            points = S[nearest]
        uv = project_points(points, yaw, sh)[0]
        return points, normals, _unoccluded(uv, normals, depth_m, z_obj)

    # The kernel's fixed argument, converted once per alignment rather than once per grid.
    pinhole = np.array([intr.fx, intr.fy, intr.cx, intr.cy], np.float64)

    def strengths(yaw_deg: np.ndarray, shift: np.ndarray, shape) -> np.ndarray:
        # The outline's points move with the pose; their normals are kept (the turns are small).
        # A pose here is a yaw about the frame's z axis and a shift along the table: in the camera,
        # rotation Rt Rz(yaw) and translation Rt (shift, 0) + the frame's origin.
        points, normals, keep = shape
        R = Rt @ _rz(np.radians(yaw_deg))
        t = shift @ Rt[:, :2].T + centre_cam
        return outline_strengths(
            np.ascontiguousarray(points, np.float64),
            np.ascontiguousarray(R, np.float64),
            np.ascontiguousarray(t, np.float64),
            pinhole,
            grad.gx,
            grad.gy,
            grad.origin,
            np.ascontiguousarray(normals, np.float64),
            np.ascontiguousarray(keep, np.bool_),
        )

    cur_yaw, cur_shift = 0.0, np.zeros(2)
    before = cur = 0.0
    drawn_at, shape = None, None
    for level, (yaw_range, yaw_step, shift_range, shift_step) in enumerate(GRIDS):
        # The outline where the search now is; a level that kept the pose keeps its outline (the
        # coarse first grid mostly does, and drawing a silhouette is ~0.7 ms).
        if drawn_at != (cur_yaw, cur_shift[0], cur_shift[1]):
            shape, drawn_at = outline_at(cur_yaw, cur_shift), (cur_yaw, cur_shift[0], cur_shift[1])
        dy = np.arange(-yaw_range, yaw_range + 1e-9, yaw_step)
        ds = np.arange(-shift_range, shift_range + 1e-12, shift_step)
        yy, sx, sy = np.meshgrid(dy, ds, ds, indexing="ij")
        yaw = cur_yaw + yy.ravel()
        shift = cur_shift + np.stack([sx.ravel(), sy.ravel()], axis=1)
        s = strengths(yaw, shift, shape)
        if level == 0:  # the grid is centred on the pose so far: its middle is where the search started
            before = float(s[len(s) // 2])
        k = int(np.argmax(s))
        cur_yaw, cur_shift, cur = float(yaw[k]), shift[k].copy(), float(s[k])
    M = np.eye(4)
    M[:3, :3] = _rz(np.radians(cur_yaw))
    M[:2, 3] = cur_shift
    return T_ct @ M @ T_to, before, cur


def _turned_half_about_normal(
    T_cam_obj: np.ndarray, T_cam_table: np.ndarray, centre_obj: np.ndarray
) -> np.ndarray:
    """T_cam_obj turned 180 deg about the table normal through the object's centre."""
    return turned_about_normal(T_cam_obj, T_cam_table, centre_obj, 180.0)


def turned_about_normal(
    T_cam_obj: np.ndarray, T_cam_table: np.ndarray, centre_obj: np.ndarray, deg: float
) -> np.ndarray:
    """T_cam_obj turned by deg about the table normal through the object's centre."""
    R = T_cam_table[:3, :3] @ _rz(np.radians(deg)) @ T_cam_table[:3, :3].T
    c = T_cam_obj[:3, :3] @ centre_obj + T_cam_obj[:3, 3]
    T = np.eye(4)
    T[:3, :3] = R @ T_cam_obj[:3, :3]
    T[:3, 3] = R @ (T_cam_obj[:3, 3] - c) + c
    return T


def is_resting(T_cam_obj: np.ndarray, resting: list[RestingPose], plane: Plane) -> bool:
    """Whether the pose is within RESTING_TILT_DEG of one of the class's resting poses: yaw and table
    position are then its only free turns (align_resting_to_edges); otherwise it leans."""
    T_cam_table = plane.frame(T_cam_obj[:3, 3])
    return _nearest_resting(resting, T_cam_table[:3, :3].T @ T_cam_obj[:3, :3])[1] <= RESTING_TILT_DEG


def align_resting_to_edges(
    T_cam_obj: np.ndarray,
    class_name: str,
    plane: Plane,
    resting: list[RestingPose],
    rgb: np.ndarray,
    depth_m: np.ndarray,
    intr: Intrinsics,
    try_flip: bool = False,
    silhouette_outline: bool = False,
    way_round: Callable[[np.ndarray, np.ndarray], float | None] | None = None,
) -> tuple[np.ndarray, float] | None:
    """align_to_edges for a pose within RESTING_TILT_DEG of one of the class's resting poses (an
    object leaning on another has more than yaw and table position free). Returns (pose, ratio of the
    outline's edge strength after to before) or None when the pose is not resting.

    try_flip also aligns the pose turned 180 deg about the table normal, where that is not a symmetry
    of the class, and keeps the stronger outline: a lego lying on its side looks the same to the
    depth both ways round (the studs are 1.7 mm), but its outline has the studs' bumps at one end.
    way_round(T_a, T_b), when given and not None, decides instead: > 0 keeps T_a (wayround.py).
    """
    if not is_resting(T_cam_obj, resting, plane):
        return None
    T_cam_table = plane.frame(T_cam_obj[:3, 3])
    cloud = model_cloud(class_name)
    surface = cloud.dense[::SILHOUETTE_STRIDE] if silhouette_outline else None
    T, before, after = align_to_edges(T_cam_obj, cloud.hull, T_cam_table, rgb, depth_m, intr, surface)
    if try_flip:
        # The aligned pose turned (its yaw is the better start), about the surface's centre: the hull's
        # vertices crowd on the studs, and a turn about their mean would put the brick millimetres off.
        T_flip = _turned_half_about_normal(T, T_cam_table, cloud.centre)
        if angular_error_deg(class_name, T_cam_obj[:3, :3], T_flip[:3, :3]) > 90.0:
            # A wider shift grid for this start lets 7 of 7 test legos turned about their centre come
            # back (5 of 7 without) but lost 1-2 legos of the validation and diagnostic scenes.
            T2, _, after2 = align_to_edges(T_flip, cloud.hull, T_cam_table, rgb, depth_m, intr, surface)
            margin = way_round(T, T2) if way_round is not None else None
            if (after2 > after) if margin is None else (margin < 0):
                T, after = T2, after2
    return T, after / max(before, 1e-9)
