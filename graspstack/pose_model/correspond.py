"""Rigid pose from 3D-3D correspondences: RANSAC over minimal sets, then a least-squares refit.

CropNet gives, for each object pixel with a depth reading, the object-frame point it sees (X) while
the depth gives the camera-frame point (P). P = R X + t is then a closed-form (Kabsch) solve; RANSAC
keeps wrong correspondences (mask bleeding onto a neighbour, depth dropouts at edges) out of it.
All hypotheses are solved and scored at once (batched SVD), a few milliseconds per object.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from graspstack.predictors.scripted.kernels import transform_point


@dataclass
class RigidFit:
    R: np.ndarray  # (3, 3)
    t: np.ndarray  # (3,)
    inlier_ratio: float
    rms_m: float  # residual over the inliers


def kabsch(X: np.ndarray, P: np.ndarray, w: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(..., N, 3) object points X and camera points P (weights (..., N)) -> R (..., 3, 3), t (..., 3)."""
    if w is None:
        w = np.ones(X.shape[:-1])
    w = w / np.maximum(w.sum(-1, keepdims=True), 1e-12)
    mx = (w[..., None] * X).sum(-2)
    mp = (w[..., None] * P).sum(-2)
    H = (w[..., None] * (X - mx[..., None, :])).swapaxes(-1, -2) @ (P - mp[..., None, :])
    U, _, Vt = np.linalg.svd(H)
    d = np.sign(np.linalg.det(np.swapaxes(Vt, -1, -2) @ np.swapaxes(U, -1, -2)))
    D = np.zeros(H.shape)
    D[..., 0, 0], D[..., 1, 1], D[..., 2, 2] = 1.0, 1.0, d
    R = np.swapaxes(Vt, -1, -2) @ D @ np.swapaxes(U, -1, -2)
    t = mp - (R @ mx[..., None])[..., 0]
    return R, t


@njit(cache=True, nogil=True)
def _inlier_counts(X, P, R, t, threshold_m: float) -> np.ndarray:
    """Per hypothesis (R (H, 3, 3), t (H, 3)), how many pairs |R X + t - P| < threshold_m: one compiled
    pass instead of an (H, N, 3) array of residuals."""
    H, N = R.shape[0], X.shape[0]
    out = np.zeros(H, np.int64)
    thr2 = threshold_m * threshold_m
    for h in range(H):
        count = 0
        for n in range(N):
            a0, a1, a2 = transform_point(R, t, h, X[n, 0], X[n, 1], X[n, 2])
            e0, e1, e2 = a0 - P[n, 0], a1 - P[n, 1], a2 - P[n, 2]
            count += e0 * e0 + e1 * e1 + e2 * e2 < thr2
        out[h] = count
    return out


def ransac_rigid(
    X: np.ndarray,
    P: np.ndarray,
    threshold_m: float,
    hypotheses: int = 128,
    min_spread_m: float = 0.01,
    seed: int = 0,
) -> RigidFit | None:
    """Best rigid fit of (N, 3) pairs; None with fewer than 3 pairs or no spread-out minimal set."""
    n = len(X)
    if n < 3:
        return None
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(hypotheses, 3))
    Xs = X[idx]
    # Minimal sets whose object points nearly coincide or line up give no rotation: skip them.
    a = Xs[:, 1] - Xs[:, 0]
    b = Xs[:, 2] - Xs[:, 0]
    area = np.linalg.norm(np.cross(a, b), axis=-1)
    good = area > min_spread_m**2
    if not good.any():
        return None
    R, t = kabsch(Xs[good], P[idx[good]])
    X, P = np.ascontiguousarray(X, np.float64), np.ascontiguousarray(P, np.float64)
    best = int(np.argmax(_inlier_counts(X, P, np.ascontiguousarray(R), np.ascontiguousarray(t), threshold_m)))
    m = np.linalg.norm(X @ R[best].T + t[best] - P, axis=-1) < threshold_m
    if m.sum() < 3:
        return None
    # Two least-squares passes on the inliers, re-selecting them with the better pose.
    for _ in range(2):
        R1, t1 = kabsch(X[m], P[m])
        r = np.linalg.norm(X @ R1.T + t1 - P, axis=-1)
        m_new = r < threshold_m
        if m_new.sum() < 3:
            break
        m = m_new
    R1, t1 = kabsch(X[m], P[m])
    r = np.linalg.norm(X[m] @ R1.T + t1 - P[m], axis=-1)
    return RigidFit(R1, t1, float(m.mean()), float(np.sqrt(np.mean(r**2))))
