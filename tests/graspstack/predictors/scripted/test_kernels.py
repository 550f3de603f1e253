"""The compiled score and ICP pairs against the same quantities written as numpy expressions (the
form they had before they were compiled), on a rendered object's depth and poses around its truth."""

from __future__ import annotations

import numpy as np
import pytest

from graspstack.predictors.scripted.fit import (
    _lookup,
    _pairs,
    _rz,
    _score,
    model_cloud,
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
                _pairs(cloud, Q, R, t, trim), _pairs_numpy(Q, R, t, cloud, trim), strict=True
            ):
                np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
