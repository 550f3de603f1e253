"""Rigid pose from 3D-3D correspondences: RANSAC over minimal sets, then a least-squares refit.

CropNet gives, for each object pixel with a depth reading, the object-frame point it sees (X) while
the depth gives the camera-frame point (P). P = R X + t is then a closed-form (Kabsch) solve; RANSAC
keeps wrong correspondences (mask bleeding onto a neighbour, depth dropouts at edges) out of it.
All hypotheses are solved and scored in one compiled pass, well under a millisecond per object.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from graspstack.predictors.scripted.kernels import _kabsch_step


@dataclass
class RigidFit:
    R: np.ndarray  # (3, 3)
    t: np.ndarray  # (3,)
    inlier_ratio: float
    rms_m: float  # residual over the inliers


@njit(cache=True, nogil=True, inline="always")
def _kabsch_on(X, P, m):  # pragma: no cover - compiled
    """The least-squares rigid pose (Kabsch) taking object points X (N, 3) onto camera points P where
    m holds: (R (3, 3), t (3,)). The pairs' means and cross-covariance go to the depth fit's ICP
    update (kernels._kabsch_step), applied to the identity."""
    k = 0.0
    mx, mp = np.zeros(3), np.zeros(3)
    for n in range(X.shape[0]):
        if m[n]:
            k += 1.0
            for c in range(3):
                mx[c] += X[n, c]
                mp[c] += P[n, c]
    mx /= k
    mp /= k
    M = np.zeros((3, 3))  # sum over pairs of (p - mean p)(x - mean x)^T, as _kabsch_step takes it
    for n in range(X.shape[0]):
        if m[n]:
            for r in range(3):
                for c in range(3):
                    M[r, c] += (P[n, r] - mp[r]) * (X[n, c] - mx[c])
    return _kabsch_step(M, mx, mp, np.eye(3), np.zeros(3))


@njit(cache=True, nogil=True, inline="always")
def _within(X, P, i, R, t, thr2: float) -> bool:  # pragma: no cover - compiled
    """|R X[i] + t - P[i]|^2 < thr2, in scalars (no temporary arrays in the inner loops)."""
    e2 = 0.0
    for r in range(3):
        e = R[r, 0] * X[i, 0] + R[r, 1] * X[i, 1] + R[r, 2] * X[i, 2] + t[r] - P[i, r]
        e2 += e * e
    return e2 < thr2


@njit(cache=True, nogil=True)
def _ransac(X, P, idx, threshold_m: float, min_area: float):  # pragma: no cover - compiled
    """ransac_rigid's work in one compiled call without the GIL (as ~60 small NumPy calls it took
    0.52 ms a crop on hard validation frames, 0.32 ms now; most of what is left is the 3x3 SVDs):
    every minimal set idx (H, 3) whose object points span at least min_area is solved and counted,
    the best one's inliers refitted twice. Returns (found, R, t, inlier mask)."""
    n = X.shape[0]
    thr2 = threshold_m * threshold_m
    best_count, best_R, best_t = -1, np.eye(3), np.zeros(3)
    Xs, Ps, all3 = np.empty((3, 3)), np.empty((3, 3)), np.ones(3, np.bool_)
    for h in range(idx.shape[0]):
        i0, i1, i2 = idx[h, 0], idx[h, 1], idx[h, 2]
        a0, a1, a2 = X[i1, 0] - X[i0, 0], X[i1, 1] - X[i0, 1], X[i1, 2] - X[i0, 2]
        b0, b1, b2 = X[i2, 0] - X[i0, 0], X[i2, 1] - X[i0, 1], X[i2, 2] - X[i0, 2]
        c0, c1, c2 = a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0
        if np.sqrt(c0 * c0 + c1 * c1 + c2 * c2) <= min_area:
            continue
        for j in range(3):
            Xs[j], Ps[j] = X[idx[h, j]], P[idx[h, j]]
        R, t = _kabsch_on(Xs, Ps, all3)
        count = 0
        for i in range(n):
            count += _within(X, P, i, R, t, thr2)
        if count > best_count:
            best_count, best_R, best_t = count, R, t
    m = np.zeros(n, np.bool_)
    if best_count < 0:
        return False, best_R, best_t, m
    R, t = best_R, best_t
    for i in range(n):
        m[i] = _within(X, P, i, R, t, thr2)
    if m.sum() < 3:
        return False, R, t, m
    # Two least-squares passes on the inliers, re-selecting them with the better pose.
    for _ in range(2):
        R, t = _kabsch_on(X, P, m)
        m_new = np.zeros(n, np.bool_)
        for i in range(n):
            m_new[i] = _within(X, P, i, R, t, thr2)
        if m_new.sum() < 3:
            break
        m = m_new
    R, t = _kabsch_on(X, P, m)
    return True, R, t, m


def ransac_rigid(
    X: np.ndarray,
    P: np.ndarray,
    threshold_m: float,
    hypotheses: int = 128,
    min_spread_m: float = 0.01,
    seed: int = 0,
) -> RigidFit | None:
    """Best rigid fit of (N, 3) pairs; None with fewer than 3 pairs or no spread-out minimal set
    (minimal sets whose object points nearly coincide or line up give no rotation)."""
    n = len(X)
    if n < 3:
        return None
    idx = np.random.default_rng(seed).integers(0, n, size=(hypotheses, 3))
    X, P = np.ascontiguousarray(X, np.float64), np.ascontiguousarray(P, np.float64)
    found, R, t, m = _ransac(X, P, idx, threshold_m, min_spread_m**2)
    if not found:
        return None
    r = np.linalg.norm(X[m] @ R.T + t - P[m], axis=-1)
    return RigidFit(R, t, float(m.mean()), float(np.sqrt(np.mean(r**2))))
