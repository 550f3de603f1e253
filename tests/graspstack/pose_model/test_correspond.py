"""Rigid fits from 3D-3D correspondences: exact on clean pairs, robust to a share of wrong ones."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from graspstack.pose_model.correspond import _kabsch_on, ransac_rigid


def _pairs(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-0.05, 0.05, (n, 3))
    R = Rotation.random(random_state=seed).as_matrix()
    t = np.array([0.05, -0.02, 0.7])
    return X, X @ R.T + t, R, t


def test_kabsch_recovers_an_exact_transform():
    X, P, R, t = _pairs(50)
    R_est, t_est = _kabsch_on(X, P, np.ones(len(X), bool))
    assert np.allclose(R_est, R, atol=1e-9) and np.allclose(t_est, t, atol=1e-9)
    assert np.isclose(np.linalg.det(R_est), 1.0)


def test_ransac_ignores_wrong_correspondences():
    X, P, R, t = _pairs(300, seed=3)
    rng = np.random.default_rng(4)
    P = P + rng.normal(0, 0.002, P.shape)  # sensor noise
    wrong = rng.random(len(P)) < 0.35  # a neighbour's pixels, edge dropouts
    P[wrong] += rng.uniform(-0.05, 0.05, (wrong.sum(), 3))
    fit = ransac_rigid(X, P, threshold_m=0.01)
    assert fit is not None
    angle = np.degrees(np.arccos(np.clip((np.trace(R.T @ fit.R) - 1) / 2, -1, 1)))
    assert angle < 1.0 and np.linalg.norm(fit.t - t) < 0.002
    assert 0.55 < fit.inlier_ratio < 0.75


def test_ransac_needs_three_spread_points():
    X, P, _, _ = _pairs(2)
    assert ransac_rigid(X, P, 0.01) is None
    same = np.zeros((10, 3))
    assert ransac_rigid(same, same, 0.01) is None
