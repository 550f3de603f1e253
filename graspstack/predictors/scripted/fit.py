"""Pose of one segment: resting pose and yaw search, then ICP constrained to the table.

Everything happens in a table frame (z = table normal, origin on the table under the segment). A
settled object's pose there is `Rz(yaw) @ R0` at height h for one of its resting poses (R0, h), so
only yaw and the position along the table are unknown: 3 degrees of freedom, searched on a yaw grid
and refined by planar point-to-point ICP. A hypothesis is scored by two terms:

- surface: observed points must lie on the model surface (mean truncated distance, observed to model);
- free space: model points must not sit in front of what the camera sees through them (fraction of
  model points whose pixel shows something clearly farther away, e.g. the table beside the object).

The second term is what pins yaw when the surface fit alone is ambiguous; points hidden behind other
objects are never penalised by it, so partial occlusion costs little.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
from scipy.spatial import ConvexHull, cKDTree

from graspstack.catalogue import CATALOGUE
from graspstack.frames import Intrinsics
from graspstack.object_models import object_model
from graspstack.predictors.scripted import kernels
from graspstack.predictors.scripted.resting import RestingPose
from graspstack.predictors.scripted.table import Plane

YAW_STEP_DEG = 15.0
COARSE_POINTS = 250
FINE_POINTS = 1200
FREE_SPACE_POINTS = 300
COARSE_ITERS = 4
FINE_ITERS = 12
TOP_K = 6
FREE_STARTS = 2
FREE_ITERS = 10
POLISH_STARTS = 3
POLISH_LIGHT_POINTS = 300
POLISH_LEVELS = ((0.008, 4.0), (0.004, 2.0), (0.002, 1.0), (0.001, 0.5))  # (position m, yaw deg) steps


VOXEL_M = 0.002
GRID_MARGIN_M = 0.03
FAR_M = 1.0  # distance reported for points outside the lookup grid


@dataclass(frozen=True)
class ModelCloud:
    dense: np.ndarray  # (M, 3) object-frame surface samples for nearest-neighbour queries
    origin: np.ndarray  # lookup grid corner, object frame
    nearest: np.ndarray  # (X, Y, Z) int32 index into dense of the sample nearest each voxel centre
    distance: np.ndarray  # (X, Y, Z) float32 distance from each voxel centre to that sample
    sparse: np.ndarray  # (S, 3) subset for the free-space test
    hull: np.ndarray  # (K, 3) convex hull vertices: the lowest of them touches the table
    centre: np.ndarray  # (3,) mean of the dense samples: what turns of a fitted pose pivot about


@cache
def model_cloud(class_name: str) -> ModelCloud:
    model = object_model(class_name)
    dense = model.sample_surface(6000, seed=1)
    hull = model.vertices[ConvexHull(model.vertices).vertices]
    # Nearest-sample lookup on a voxel grid around the model: a table lookup per query instead of a
    # k-d tree search keeps the hundreds of thousands of queries per frame cheap. Built once per class.
    origin = model.bbox_min - GRID_MARGIN_M
    shape = np.ceil((model.extent + 2 * GRID_MARGIN_M) / VOXEL_M).astype(int) + 1
    centres = origin + VOXEL_M * np.stack(np.meshgrid(*(np.arange(n) for n in shape), indexing="ij"), -1)
    distance, nearest = cKDTree(dense).query(centres.reshape(-1, 3))
    return ModelCloud(
        dense,
        origin,
        nearest.reshape(shape).astype(np.int32),
        distance.reshape(shape).astype(np.float32),
        model.sample_surface(FREE_SPACE_POINTS, seed=2),
        hull,
        dense.mean(axis=0),
    )


def score_tolerance(plane: Plane, points_cam: np.ndarray) -> float:
    """Distance (m) within which an observed point counts as on the model surface: three sigma of
    the depth noise at the object's median depth, never under 4 mm."""
    return max(0.004, 3.0 * float(plane.depth_sigma(float(np.median(points_cam[:, 2])))))


def _lookup(cloud: ModelCloud, P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distance, index of nearest model sample) for (..., 3) object-frame points, via the voxel grid.

    The distance is exact from the nearest sample to the query point (only the choice of sample is
    quantised); points outside the grid get FAR_M and index 0.
    """
    ijk = np.rint((P - cloud.origin) * (1.0 / VOXEL_M)).astype(np.intp)
    i, j, k = ijk[..., 0], ijk[..., 1], ijk[..., 2]
    s0, s1, s2 = cloud.nearest.shape
    # The lookup runs thousands of times per frame: one unsigned comparison per axis checks both
    # bounds (a negative index wraps to a huge one), and is twice as fast as a reduction over the
    # length-3 axis; one flat index instead of three fancy indices.
    inside = (i.astype(np.uintp) < s0) & (j.astype(np.uintp) < s1) & (k.astype(np.uintp) < s2)
    flat = (i * s1 + j) * s2 + k
    idx = cloud.nearest.ravel()[np.where(inside, flat, 0)]
    diff = cloud.dense[idx] - P
    d = np.sqrt(np.einsum("...i,...i->...", diff, diff))
    return np.where(inside, d, FAR_M), idx


@dataclass
class Fit:
    T_cam_obj: np.ndarray
    score: float  # lower is better: surface term + free-space term
    inlier_ratio: float  # observed points within tolerance of the model surface
    free_space_violation: float  # share of model points in front of observed free space
    resting_index: int


def _rz(theta: np.ndarray) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    R = np.zeros((*np.shape(theta), 3, 3))
    R[..., 0, 0], R[..., 0, 1], R[..., 1, 0], R[..., 1, 1], R[..., 2, 2] = c, -s, s, c, 1.0
    return R


def _planar_icp(
    Q: np.ndarray,
    R: np.ndarray,
    t: np.ndarray,
    cloud: ModelCloud,
    iters: int,
    trims: tuple[float, float],
    rotate: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Refine (H, 3, 3) rotations and (H, 3) translations about table z and along the table.

    Point-to-point ICP from observed points Q (N, 3, table frame) to the model; correspondences
    farther than the trim distance (shrinking from trims[0] to trims[1]) are ignored. With
    rotate=False only the position moves, so a yaw grid keeps its spread for scoring.
    """
    trim_first, trim_last = trims
    return kernels.planar_icp(
        *_on_model(cloud, Q, R, t), int(iters), float(trim_first), float(trim_last), bool(rotate), FAR_M
    )


def _free_icp(
    Q: np.ndarray, R: np.ndarray, t: np.ndarray, cloud: ModelCloud, iters: int, trim: float, touch_table: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Unconstrained point-to-point ICP (Kabsch) for objects that lean or sit off their resting poses.

    With touch_table the object is kept standing on the table (its lowest point at height 0) after
    every step: the depth noise otherwise lets a partial view sink into or float above the table.
    """
    hull = np.ascontiguousarray(cloud.hull, np.float64)
    return kernels.free_icp(
        *_on_model(cloud, Q, R, t), hull, int(iters), float(trim), bool(touch_table), FAR_M
    )


def _score(
    Q: np.ndarray,
    R: np.ndarray,
    t: np.ndarray,
    cloud: ModelCloud,
    T_ct: np.ndarray,
    depth_m: np.ndarray,
    intr: Intrinsics,
    tol: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(score, inlier ratio, free-space violation) of poses (R (H, 3, 3), t (H, 3), table frame) for
    observed points Q (N, 3, table frame): lower scores explain the depth better (kernels.score_poses)."""
    return kernels.score_poses(*_on_model(cloud, Q, R, t), *score_context(cloud, T_ct, depth_m, intr, tol))


def _on_model(cloud: ModelCloud, Q: np.ndarray, R: np.ndarray, t: np.ndarray) -> tuple:
    """The kernels' leading arguments: points and poses as contiguous float64, and the model's
    nearest-sample lookup grid."""
    as_f64 = (np.ascontiguousarray(a, np.float64) for a in (Q, R, t))
    return (*as_f64, *lookup_grid(cloud))


def lookup_grid(cloud: ModelCloud) -> tuple:
    """The model's nearest-sample lookup as the kernels take it: grid corner, inverse voxel size,
    nearest-sample indices and the samples."""
    return cloud.origin, 1.0 / VOXEL_M, cloud.nearest, cloud.dense


def score_context(
    cloud: ModelCloud, T_ct: np.ndarray, depth_m: np.ndarray, intr: Intrinsics, tol: float
) -> tuple:
    """kernels.score_poses' arguments after the lookup grid: the free-space samples, the table
    frame, the depth image, the pinhole (fx, fy, cx, cy), the tolerance and the far distance."""
    k = np.array([intr.fx, intr.fy, intr.cx, intr.cy], np.float64)
    return cloud.sparse, np.ascontiguousarray(T_ct, np.float64), depth_m, k, float(tol), FAR_M


def yaw_period_deg(class_name: str, R0: np.ndarray) -> float:
    """Smallest table yaw that maps a resting pose onto itself up to the class's symmetry.

    Rz(a) @ R0 shows the same object as R0 when R0^T Rz(a) R0 is one of the class's symmetries: for
    a lego standing upright that is every 90 deg, so a yaw search needs only a quarter of the circle.
    """
    syms = CATALOGUE[class_name].symmetries
    for period in (90.0, 180.0):
        M = R0.T @ _rz(np.radians(period)) @ R0
        # Resting poses come from simulated drops, a fraction of a degree off the ideal faces.
        if any(np.trace(S.T @ M) > 1.0 + 2.0 * np.cos(np.radians(3.0)) for S in syms):
            return period
    return 360.0


def _same_as_earlier(class_name: str, resting: list[RestingPose], k: int) -> bool:
    """Whether resting pose k is an earlier one turned by a symmetry of the class."""
    syms = CATALOGUE[class_name].symmetries
    up = resting[k].up_obj
    cos_tol = np.cos(np.radians(3.0))
    return any(float((S @ up) @ resting[j].up_obj) > cos_tol for j in range(k) for S in syms)


def fit_segment(
    points_cam: np.ndarray,
    plane: Plane,
    class_name: str,
    resting: list[RestingPose],
    depth_m: np.ndarray,
    intr: Intrinsics,
    seed: int = 0,
    light: bool = False,
    polish: bool = True,
    only: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Fit | None:
    """Best resting pose, yaw and position on the table for one segment's camera-frame points.

    light=True (the pose model's second opinion on small objects) polishes one start with a shorter
    pattern search: about a third of the time. polish=False leaves the pattern search out (for a
    caller that sets yaw and table position its own way). `only`, a test of camera-frame
    rotations (H, 3, 3) -> (H,) bool, limits the search to the (resting pose, yaw) cells it passes
    (the pose model's studs net: the lego's face it sees); None is returned when none passes.
    """
    rng = np.random.default_rng(seed)
    cloud = model_cloud(class_name)
    T_ct = plane.frame(points_cam.mean(axis=0))
    Q_all = (points_cam - T_ct[:3, 3]) @ T_ct[:3, :3]
    Q_coarse = Q_all[rng.permutation(len(Q_all))[:COARSE_POINTS]]
    Q_fine = Q_all[rng.permutation(len(Q_all))[:FINE_POINTS]]
    tol = score_tolerance(plane, points_cam)

    R_list, t_list, k_list, yaw_list = [], [], [], []
    for k, pose in enumerate(resting):
        if _same_as_earlier(class_name, resting, k):
            continue  # a lego on any of its four sides is one pose up to its symmetry: search it once
        yaws = np.radians(np.arange(0.0, yaw_period_deg(class_name, pose.rotation()), YAW_STEP_DEG))
        yaw_list.append(yaws)
        R = _rz(yaws) @ pose.rotation()
        centre = R @ cloud.centre
        t = np.zeros((len(yaws), 3))
        t[:, :2] = Q_all[:, :2].mean(axis=0) - centre[:, :2]
        t[:, 2] = pose.height_m
        R_list.append(R)
        t_list.append(t)
        k_list += [k] * len(yaws)
    R, t, ks = np.concatenate(R_list), np.concatenate(t_list), np.array(k_list)
    yaw_all = np.concatenate(yaw_list)
    if only is not None:
        near = only(T_ct[:3, :3] @ R)
        if not near.any():
            return None
        R, t, ks, yaw_all = R[near], t[near], ks[near], yaw_all[near]

    # Coarse: position only, so every (resting pose, yaw) cell of the grid is scored on its own.
    R, t = _planar_icp(Q_coarse, R, t, cloud, COARSE_ITERS, (0.03, 0.015), rotate=False)
    score = _score(Q_coarse, R, t, cloud, T_ct, depth_m, intr, tol)[0]
    keep = _distinct_best(score, ks, yaw_all, TOP_K)
    R, t, ks = R[keep], t[keep], ks[keep]
    R, t = _planar_icp(Q_fine, R, t, cloud, FINE_ITERS, (0.015, 2.0 * tol))
    score = _score(Q_fine, R, t, cloud, T_ct, depth_m, intr, tol)[0]
    # Free: objects leaning on others or resting in a pose the drops never produced.
    top = np.argsort(score)[:FREE_STARTS]
    R2, t2 = _free_icp(Q_fine, R[top], t[top], cloud, FREE_ITERS, 2.0 * tol, touch_table=True)
    R, t, ks = np.concatenate([R, R2]), np.concatenate([t, t2]), np.concatenate([ks, ks[top]])
    score = _score(Q_fine, R, t, cloud, T_ct, depth_m, intr, tol)[0]
    top = np.argsort(score)[: 1 if light else POLISH_STARTS]
    R, t, ks = R[top], t[top], ks[top]
    if polish and light:
        Q_light = Q_fine[:POLISH_LIGHT_POINTS]
        R, t = _polish(Q_light, R, t, cloud, T_ct, depth_m, intr, tol, POLISH_LEVELS[1:], 2)
    elif polish:
        R, t = _polish(Q_fine, R, t, cloud, T_ct, depth_m, intr, tol)
    score, inliers, violation = _score(Q_fine, R, t, cloud, T_ct, depth_m, intr, tol)
    i = int(np.argmin(score))
    T_table_obj = np.eye(4)
    T_table_obj[:3, :3], T_table_obj[:3, 3] = R[i], t[i]
    return Fit(T_ct @ T_table_obj, float(score[i]), float(inliers[i]), float(violation[i]), int(ks[i]))


def _polish(
    Q: np.ndarray,
    R: np.ndarray,
    t: np.ndarray,
    cloud: ModelCloud,
    T_ct: np.ndarray,
    depth_m: np.ndarray,
    intr: Intrinsics,
    tol: float,
    levels: tuple[tuple[float, float], ...] = POLISH_LEVELS,
    rounds: int = 3,
) -> tuple[np.ndarray, np.ndarray]:
    """Pattern search on the score itself over position along the table and yaw.

    ICP only sees the surface term, so on thin walls (the mug) it can settle with observed points on
    the wrong side of the wall, and on small or symmetric-looking shapes yaw is barely constrained;
    the free-space term settles both. Steps halve from 8 mm / 4 deg down to 1 mm / 0.5 deg.
    """
    # Per step: four shifts along the table, then a turn each way about the table normal (about the
    # model's origin). The order breaks ties between equally good moves, as it always has.
    steps_m = np.array([m for m, _ in levels])
    yaws = np.radians(np.array([d for _, d in levels]))
    turns = np.tile(np.eye(3), (len(levels), 6, 1, 1))
    turns[:, 4], turns[:, 5] = _rz(yaws), _rz(-yaws)
    shifts = np.zeros((len(levels), 6, 3))
    shifts[:, [0, 1, 2, 3], [0, 0, 1, 1]] = steps_m[:, None] * np.array([1.0, -1.0, 1.0, -1.0])
    return pattern_search(Q, R, t, cloud, T_ct, depth_m, intr, tol, turns, shifts, np.zeros(3), rounds)


def pattern_search(
    Q: np.ndarray,
    R: np.ndarray,
    t: np.ndarray,
    cloud: ModelCloud,
    T_ct: np.ndarray,
    depth_m: np.ndarray,
    intr: Intrinsics,
    tol: float,
    turns: np.ndarray,
    shifts: np.ndarray,
    pivot: np.ndarray,
    rounds: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Each pose (R (H, 3, 3), t (H, 3)) moved by the moves of each step in turn (turns (S, K, 3, 3)
    about the model point `pivot`, shifts (S, K, 3)) while one lowers its score, at most `rounds`
    times a step (kernels.pattern_search)."""
    as_f64 = (np.ascontiguousarray(a, np.float64) for a in (turns, shifts, pivot))
    return kernels.pattern_search(
        *_on_model(cloud, Q, R, t), *score_context(cloud, T_ct, depth_m, intr, tol), *as_f64, int(rounds)
    )


def _distinct_best(
    score: np.ndarray, ks: np.ndarray, yaws: np.ndarray, k: int, min_gap: float = np.radians(40.0)
) -> np.ndarray:
    """Indices of the k best hypotheses, skipping near-duplicates (same resting pose, similar yaw)."""
    chosen: list[int] = []
    for i in np.argsort(score):
        gap = np.abs((yaws[i] - yaws[chosen] + np.pi) % (2 * np.pi) - np.pi) if chosen else np.array([])
        if not np.any((ks[chosen] == ks[i]) & (gap < min_gap)):
            chosen.append(int(i))
        if len(chosen) == k:
            break
    return np.array(chosen)
