"""The compiled score, ICP pairs, ICP loops and pattern search against the same computations written
as numpy expressions (the form they had before they were compiled), on a rendered object's depth and
poses around its truth."""

from __future__ import annotations

import numpy as np
import pytest

from graspstack.geometry import rot_x, rot_y, rot_z
from graspstack.predictors.scripted import kernels
from graspstack.predictors.scripted.fit import (
    FAR_M,
    POLISH_LEVELS,
    _free_icp,
    _lookup,
    _on_model,
    _planar_icp,
    _polish,
    _rz,
    _score,
    model_cloud,
    pattern_search,
    score_tolerance,
)


def _score_numpy(Q, R, t, cloud, T_ct, depth_m, intr, tol):
    P = (Q[None] - t[:, None]) @ R
    d = _lookup(cloud, P)[0]
    surface = np.minimum(d / tol, 2.0).mean(axis=1)
    inliers = (d < tol).mean(axis=1)
    S = cloud.sparse @ R.transpose(0, 2, 1) + t[:, None]
    C = S @ T_ct[:3, :3].T + T_ct[:3, 3]
    z = np.maximum(C[..., 2], 1e-6)
    u = np.round(intr.fx * C[..., 0] / z + intr.cx).astype(np.int64)
    v = np.round(intr.fy * C[..., 1] / z + intr.cy).astype(np.int64)
    inside = (u >= 0) & (u < depth_m.shape[1]) & (v >= 0) & (v < depth_m.shape[0])
    D = np.zeros_like(z)
    D[inside] = depth_m[v[inside], u[inside]]
    seen = inside & (D > 0)
    violation = (seen & (z + 2.0 * tol < D)).sum(axis=1) / np.maximum(seen.sum(axis=1), 1)
    return surface + 2.0 * violation, inliers, violation


def _pairs_numpy(Q, R, t, cloud, trim):
    d, idx = _lookup(cloud, (Q[None] - t[:, None]) @ R)
    A = cloud.dense[idx] @ R.transpose(0, 2, 1) + t[:, None]
    w = (d < trim).astype(np.float64)
    wsum = np.maximum(w.sum(axis=1), 1.0)
    a_bar = (w[:, None] @ A)[:, 0] / wsum[:, None]
    b_bar = (w @ Q) / wsum[:, None]
    M = (w[..., None] * (Q[None] - b_bar[:, None])).transpose(0, 2, 1) @ (A - a_bar[:, None])
    return w.sum(axis=1), a_bar, b_bar, M


def _free_icp_numpy(Q, R, t, cloud, iters, trim, touch_table):
    H = len(R)
    for _ in range(iters):
        _, a_bar, b_bar, M = _pairs_numpy(Q, R, t, cloud, trim)
        U, _, Vt = np.linalg.svd(M)
        D = np.ones((H, 3))
        D[:, 2] = np.sign(np.linalg.det(U @ Vt))
        Rd = U @ (D[:, :, None] * Vt)
        R = Rd @ R
        t = (Rd @ (t - a_bar)[..., None])[..., 0] + b_bar
        if touch_table:
            t[:, 2] = -(cloud.hull @ R.transpose(0, 2, 1))[..., 2].min(axis=1)
    return R, t


def _planar_icp_numpy(Q, R, t, cloud, iters, trims, rotate=True):
    for it in range(iters):
        trim = trims[0] + (trims[1] - trims[0]) * it / max(iters - 1, 1)
        _, a3, b3, M = _pairs_numpy(Q, R, t, cloud, trim)
        delta = np.arctan2(M[:, 1, 0] - M[:, 0, 1], M[:, 0, 0] + M[:, 1, 1]) if rotate else np.zeros(len(R))
        Rd = _rz(delta)
        R = Rd @ R
        t_new = (Rd @ t[..., None])[..., 0]
        t_new[:, :2] += b3[:, :2] - (Rd[:, :2, :2] @ a3[:, :2, None])[..., 0]
        t_new[:, 2] = t[:, 2]
        t = t_new
    return R, t


def _polish_numpy(Q, R, t, cloud, T_ct, depth_m, intr, tol, levels, rounds):
    """The table polish as it was: every pose takes its best move (or stays), `rounds` times a step."""
    moves = [(1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)]
    for step_m, step_deg in levels:
        turns = _rz(np.radians(np.array([m[2] * step_deg for m in moves])))[:, None]
        shifts = np.array([[m[0] * step_m, m[1] * step_m, 0.0] for m in moves])[:, None]
        for _ in range(rounds):
            cR = np.concatenate([R[None], turns @ R[None]])
            ct = np.concatenate([t[None], t[None] + shifts])
            sc = _score_numpy(Q, cR.reshape(-1, 3, 3), ct.reshape(-1, 3), cloud, T_ct, depth_m, intr, tol)[0]
            best = sc.reshape(len(cR), len(R)).argmin(axis=0)
            R, t = cR[best, np.arange(len(R))], ct[best, np.arange(len(R))]
    return R, t


@pytest.fixture(scope="module")
def observed(scene_objects, nominal_scenes):
    """Per object of the first nominal scene: table-frame points, truth (R, t) and the scoring context."""
    out = []
    for r, intr, frame_points, valid, plane, k, gt, T_gt in scene_objects(nominal_scenes[:1]):
        pts = frame_points[(r.masks == k + 1) & valid]
        if len(pts) < 50:
            continue
        T_ct = plane.frame(pts.mean(axis=0))
        Q = (pts - T_ct[:3, 3]) @ T_ct[:3, :3]
        T_to = np.linalg.inv(T_ct) @ T_gt
        cloud = model_cloud(gt.class_name)
        out.append((Q[:400], T_to, cloud, T_ct, r.depth_m, intr, score_tolerance(plane, pts)))
    assert len(out) >= 3
    return out


def _around(T_to, n=9, seed=0):
    """n poses around T_to: turned up to 20 deg about the table normal, moved up to 2 cm; and one far
    off the model's voxel grid."""
    rng = np.random.default_rng(seed)
    R = _rz(np.radians(rng.uniform(-20, 20, n))) @ T_to[:3, :3]
    t = T_to[:3, 3] + rng.uniform(-0.02, 0.02, (n, 3))
    t[-1] += 1.0
    return R, t


def test_the_compiled_score_is_the_numpy_score(observed):
    for Q, T_to, cloud, T_ct, depth, intr, tol in observed:
        R, t = _around(T_to)
        for got, want in zip(
            _score(Q, R, t, cloud, T_ct, depth, intr, tol),
            _score_numpy(Q, R, t, cloud, T_ct, depth, intr, tol),
            strict=True,
        ):
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
        # off the grid every observed point is FAR_M away: no inliers, a saturated surface term
        score, inliers, violation = _score(Q, R[-1:], t[-1:], cloud, T_ct, depth, intr, tol)
        assert inliers[0] == 0.0 and score[0] - 2.0 * violation[0] == pytest.approx(2.0)


def test_the_compiled_icp_pairs_are_the_numpy_pairs(observed):
    for Q, T_to, cloud, *_ in observed:
        R, t = _around(T_to, seed=1)
        for trim in (0.004, 0.03):
            for got, want in zip(
                kernels.matched_pairs(*_on_model(cloud, Q, R, t), trim, FAR_M),
                _pairs_numpy(Q, R, t, cloud, trim),
                strict=True,
            ):
                np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_the_compiled_icp_loops_are_the_numpy_loops(observed):
    for Q, T_to, cloud, *_ in observed:
        R, t = _around(T_to, seed=2)
        R, t = R[:-1], t[:-1]  # the far-off pose has no pairs: nothing for ICP to move
        for touch_table in (False, True):
            for got, want in zip(
                _free_icp(Q, R, t, cloud, 6, 0.015, touch_table),
                _free_icp_numpy(Q, R, t, cloud, 6, 0.015, touch_table),
                strict=True,
            ):
                np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
        for rotate in (False, True):
            for got, want in zip(
                _planar_icp(Q, R, t, cloud, 8, (0.03, 0.006), rotate),
                _planar_icp_numpy(Q, R, t, cloud, 8, (0.03, 0.006), rotate),
                strict=True,
            ):
                np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)


def test_the_compiled_table_polish_is_the_numpy_polish(observed):
    """The compiled search stops a pose at a step once no move improves it; the numpy one kept trying
    the same moves (a pose that stays is offered the same moves again), so the answers are the same."""
    for Q, T_to, cloud, T_ct, depth, intr, tol in observed:
        R, t = _around(T_to, n=4, seed=3)
        got = _polish(Q, R, t, cloud, T_ct, depth, intr, tol, POLISH_LEVELS, 3)
        want = _polish_numpy(Q, R, t, cloud, T_ct, depth, intr, tol, POLISH_LEVELS, 3)
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(g, w, rtol=0, atol=1e-9)


def test_a_pattern_search_turn_keeps_its_pivot_in_place(observed):
    """A search with turns only (about the model's centre) moves the pose's centre nowhere, lowers its
    score, and undoes a 6 deg tilt to within the search's finest step of where the score is lowest."""
    Q, T_to, cloud, T_ct, depth, intr, tol = observed[0]
    R0 = rot_x(6.0) @ T_to[:3, :3]
    t0 = T_to[:3, 3] + T_to[:3, :3] @ cloud.centre - R0 @ cloud.centre  # tilted about the centre
    levels = ((4.0,), (2.0,), (1.0,))
    turns = np.stack([[rot(s * d) for rot in (rot_x, rot_y, rot_z) for s in (1.0, -1.0)] for (d,) in levels])
    shifts = np.zeros((*turns.shape[:2], 3))
    R, t = pattern_search(
        Q, R0[None], t0[None], cloud, T_ct, depth, intr, tol, turns, shifts, cloud.centre, 3
    )
    np.testing.assert_allclose(R[0] @ cloud.centre + t[0], R0 @ cloud.centre + t0, atol=1e-12)
    before = _score(Q, R0[None], t0[None], cloud, T_ct, depth, intr, tol)[0][0]
    after = _score(Q, R, t, cloud, T_ct, depth, intr, tol)[0][0]
    assert after < before
    assert np.degrees(np.arccos(np.clip((np.trace(R[0].T @ T_to[:3, :3]) - 1) / 2, -1, 1))) < 3.0
