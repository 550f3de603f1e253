"""Aligning a leaning object's outline with the colour image, in all six degrees of freedom.

A resting object has only yaw and its table position free, and edges.py aligns those. An object that
leans on another has all six free, and on hard scenes the depth fit leaves leaning ducks and mugs
5-20 deg off while their position is within a few millimetres: the depth is noise at that scale, the
colour outline is not. Here the depth fit's pose takes a pattern search (turns about the camera axes
through the object's centre, shifts along them) on the outline's strength, with the depth score kept
from getting worse by more than a margin, so the outline can only choose among poses the depth
explains about as well.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from graspstack.frames import Intrinsics
from graspstack.geometry import rot_x, rot_y, rot_z
from graspstack.pose_model.edges import (
    SILHOUETTE_STRIDE,
    ColourGradient,
    _project,
    _unoccluded,
    outline_strengths,
    silhouette,
)
from graspstack.predictors.scripted.fit import lookup_grid, model_cloud, score_context, score_tolerance
from graspstack.predictors.scripted.kernels import score_poses
from graspstack.predictors.scripted.table import Plane

# (shift m, turn deg) per step of the search; a step ends when no move improves the objective.
LEVELS = ((0.002, 2.0), (0.001, 1.0), (0.0005, 0.5))
ROUNDS = 4
DEPTH_POINTS = 500  # the depth score's points, at most (a random subset): a crop has 60-350 cells
MIN_OUTLINE_POINTS = 20  # fewer unoccluded outline points than this: nothing to align
# The objective: the outline's strength relative to the start, less DEPTH_WEIGHT x the depth score's
# rise (surface + free space); no move may raise that score more than DEPTH_MARGIN above the start.
# On hard validation scenes (ducks, teddies, mugs) a tighter hold gained less: margin 0.03 / weight 2:
# +4 objects net, 0.06 / 1: +12, 0.1 / 0.5: +15, 0.2 / 0.25: +14. With legos too, at weight 0.5:
# margin 0 (no rise at all): +7, 0.1: +21, 0.15: the same poses as 0.1.
DEPTH_MARGIN = 0.1
DEPTH_WEIGHT = 0.5
# Passes per class, each with the outline drawn anew at the last pass's pose and the depth held to
# the first start's score. A leaning duck's outline changes as it turns (its head and tail swing in
# and out of the silhouette), and one pass stopped where the first outline was met though the truth
# was stronger still (10 of 12 failed leaning ducks on hard validation scenes). Two passes for ducks:
# hard validation ducks 176 -> 182 of 198, nothing lost; nominal and diagnostic unchanged. Three: one
# more duck. Teddies, mugs and legos: nothing gained, a mug lost.
OUTLINE_PASSES = {"duck": 2}


@njit(cache=True, nogil=True, inline="always")
def _mat_mat(A, B, out):
    """out = A @ B for 3x3 matrices, written out: numba's @ on small arrays calls BLAS and allocates
    (written out, the search took 1.85 ms an object instead of 2.1)."""
    for i in range(3):
        for j in range(3):
            out[i, j] = A[i, 0] * B[0, j] + A[i, 1] * B[1, j] + A[i, 2] * B[2, j]


@njit(cache=True, nogil=True, inline="always")
def _mat_vec(A, x, out):
    for i in range(3):
        out[i] = A[i, 0] * x[0] + A[i, 1] * x[1] + A[i, 2] * x[2]


@njit(cache=True, nogil=True)
def _search(
    P, normals, keep, gx, gy, origin, intr, turns, shifts, rounds, R, t, centre, depth_args, hold, d_ref
):
    """The pattern search of align_free_to_edges on one outline (object points P, image normals,
    keep): per step s, moves turns[s, k] about the object's centre and shifts[s, k] in the camera
    frame; the objective is the strength relative to the start's less weight x the depth score's rise,
    and moves raising it more than margin are out (hold = (margin, weight): arguments, not globals,
    which numba would freeze into the compiled code). The rise is measured from d_ref, or from the
    start's depth score where d_ref < 0. Returns (R, t, strength before, after, the score held to)."""
    margin, weight = hold
    K = turns.shape[1]
    H = 2 * K + 1
    cR, ct = np.empty((H, 3, 3)), np.empty((H, 3))
    R, t = R.copy(), t.copy()
    c, Rc, turned_c = np.empty(3), np.empty(3), np.empty(3)
    before, after, d0 = -1.0, 0.0, 0.0
    for s in range(turns.shape[0]):
        for _ in range(rounds):
            _mat_vec(R, centre, Rc)
            c[:] = Rc + t  # the object's centre in the camera: turns keep it in place
            cR[0], ct[0] = R, t
            for k in range(K):
                cR[1 + k], ct[1 + k] = R, t + shifts[s, k]
                _mat_mat(turns[s, k], R, cR[1 + K + k])
                _mat_vec(cR[1 + K + k], centre, turned_c)
                ct[1 + K + k] = c - turned_c
            st = outline_strengths(P, cR, ct, intr, gx, gy, origin, normals, keep)
            d = score_poses(depth_args[0], cR, ct, *depth_args[1:])[0]
            if before < 0.0:
                if st[0] <= 1e-9:
                    return R, t, 0.0, 0.0, 0.0
                before, d0 = st[0], (d[0] if d_ref < 0.0 else d_ref)
            best, best_j = 0, -np.inf
            for h in range(H):
                if d[h] > d0 + margin:
                    continue
                j = st[h] / before - weight * max(d[h] - d0, 0.0)
                if j > best_j:
                    best, best_j = h, j
            after = st[best]
            if best == 0:
                break
            R[:], t[:] = cR[best], ct[best]
    return R, t, before, after, d0


def compile_kernel() -> None:
    """Compile (or load from numba's cache) the search for the argument types a frame passes, on a
    synthetic duck over a flat table, so the first leaning object a service meets does not pay."""
    intr = Intrinsics(500.0, 500.0, 80.0, 60.0, 160, 120)
    table = Plane(np.array([0.0, 0.0, -1.0]), 0.7, 0.006)
    T = np.eye(4)
    T[:3, 3] = [0.0, 0.0, 0.6]
    depth = np.full((intr.height, intr.width), 0.7, np.float32)
    rgb = np.zeros((intr.height, intr.width, 3), np.uint8)
    rgb[40:80, 60:100] = 200  # an edge for the outline to find
    points = model_cloud("duck").dense[::50] + T[:3, 3]
    align_free_to_edges(T, "duck", table, points, rgb, depth, intr)


def align_free_to_edges(
    T_cam_obj: np.ndarray,
    class_name: str,
    plane: Plane,
    points_cam: np.ndarray,
    rgb: np.ndarray,
    depth_m: np.ndarray,
    intr: Intrinsics,
) -> tuple[np.ndarray, float] | None:
    """T_cam_obj moved in six degrees of freedom to where its silhouette lies on the colour image's
    strongest edges while the depth explains it nearly as well. Returns (pose, strength after /
    before), or None when the object shows no outline to align."""
    cloud = model_cloud(class_name)
    S = cloud.dense[::SILHOUETTE_STRIDE]
    centre = cloud.centre
    tol = score_tolerance(plane, points_cam)
    if DEPTH_POINTS and len(points_cam) > DEPTH_POINTS:
        points_cam = points_cam[np.random.default_rng(0).permutation(len(points_cam))[:DEPTH_POINTS]]
    R, t = T_cam_obj[:3, :3].copy(), T_cam_obj[:3, 3].copy()
    turns = np.stack(
        [[rot(s * deg) for rot in (rot_x, rot_y, rot_z) for s in (1.0, -1.0)] for _, deg in LEVELS]
    )
    shifts = np.stack([np.concatenate([np.eye(3), -np.eye(3)]) * m for m, _ in LEVELS])
    pinhole = np.array([intr.fx, intr.fy, intr.cx, intr.cy], np.float64)
    # score_poses' arguments less the poses, which the search makes. The score does not depend on the
    # frame the points and poses are given in, so the search scores its camera-frame candidates with
    # the camera points and an identity "table frame" instead of converting every candidate.
    Q = np.ascontiguousarray(points_cam, np.float64)
    depth_args = (Q, *lookup_grid(cloud), *score_context(cloud, np.eye(4), depth_m, intr, tol))
    S_centre = np.ascontiguousarray(centre, np.float64)
    gain, d_ref, searched = 1.0, -1.0, 0
    for _ in range(OUTLINE_PASSES.get(class_name, 1)):
        uv = _project(S @ R.T + t, intr)
        grad = ColourGradient.around_points(rgb, uv)
        # One outline per pass, drawn at its start and kept while the pose moves (a few pixels in
        # all): drawing it anew each step cost 2 ms an object and changed 3 hard validation objects
        # each way.
        nearest, normals = silhouette(uv)
        keep = _unoccluded(uv[nearest], normals, depth_m, float((R @ centre + t)[2]))
        if keep.sum() < MIN_OUTLINE_POINTS:
            break
        R_next, t_next, before, after, d_next = _search(
            np.ascontiguousarray(S[nearest], np.float64),
            np.ascontiguousarray(normals, np.float64),
            keep,
            grad.gx,
            grad.gy,
            grad.origin,
            pinhole,
            turns,
            shifts,
            ROUNDS,
            R,
            t,
            S_centre,
            depth_args,
            (float(DEPTH_MARGIN), float(DEPTH_WEIGHT)),
            d_ref,  # every pass holds the depth score to the first start's, so the hold cannot drift
        )
        if before <= 0.0:  # no outline strength at the start: nothing to pull it
            break
        R, t, d_ref, searched = R_next, t_next, d_next, searched + 1
        gain *= after / before
    if not searched:
        return None
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, t
    return T, gain
