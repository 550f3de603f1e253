"""Compiled inner loops of the depth fit: the score and the ICP correspondences.

The fit scores and moves a handful of poses at a time over a few hundred points, thousands of times a
frame. As numpy expressions each call built a dozen (poses x points) temporaries and spent most of its
time making them (0.29 ms a score of 13 poses x 250 points); a loop compiled by numba visits each
point once (0.06 ms) and gives the same numbers to rounding. Functions take plain arrays (numba
compiles one version per dtype signature, cached on disk): fit.py keeps the meaning of each.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, inline="always")
def _nearest_sample(p0, p1, p2, origin, inv_voxel, nearest, dense, far):
    """(distance, index) of the model sample nearest an object-frame point, via the voxel grid; points
    outside the grid are `far` away and get index 0."""
    s0, s1, s2 = nearest.shape
    i = int(np.rint((p0 - origin[0]) * inv_voxel))
    j = int(np.rint((p1 - origin[1]) * inv_voxel))
    k = int(np.rint((p2 - origin[2]) * inv_voxel))
    if 0 <= i < s0 and 0 <= j < s1 and 0 <= k < s2:
        idx = nearest[i, j, k]
        d0, d1, d2 = dense[idx, 0] - p0, dense[idx, 1] - p1, dense[idx, 2] - p2
        return np.sqrt(d0 * d0 + d1 * d1 + d2 * d2), idx
    return far, 0


@njit(cache=True, nogil=True, inline="always")
def _to_object(Q, n, R, t, h):
    """Observed point n of Q (table frame) in the object frame of pose h: R^T (q - t)."""
    q0, q1, q2 = Q[n, 0] - t[h, 0], Q[n, 1] - t[h, 1], Q[n, 2] - t[h, 2]
    p0 = q0 * R[h, 0, 0] + q1 * R[h, 1, 0] + q2 * R[h, 2, 0]
    p1 = q0 * R[h, 0, 1] + q1 * R[h, 1, 1] + q2 * R[h, 2, 1]
    p2 = q0 * R[h, 0, 2] + q1 * R[h, 1, 2] + q2 * R[h, 2, 2]
    return p0, p1, p2


@njit(cache=True, nogil=True, inline="always")
def transform_point(R, t, h, x, y, z):
    """Object-frame point (x, y, z) in the frame pose h is given in: R x + t (the table frame in the
    fit; the inverse of _to_object). RANSAC's inlier count uses it too."""
    a0 = R[h, 0, 0] * x + R[h, 0, 1] * y + R[h, 0, 2] * z + t[h, 0]
    a1 = R[h, 1, 0] * x + R[h, 1, 1] * y + R[h, 1, 2] * z + t[h, 1]
    a2 = R[h, 2, 0] * x + R[h, 2, 1] * y + R[h, 2, 2] * z + t[h, 2]
    return a0, a1, a2


@njit(cache=True, nogil=True)
def score_poses(Q, R, t, origin, inv_voxel, nearest, dense, sparse, T_ct, depth, intr, tol, far):
    """Per pose (R (H, 3, 3), t (H, 3), table frame): (surface term + 2 x free-space share, inlier
    ratio, free-space share) for observed points Q (N, 3, table frame). intr = (fx, fy, cx, cy)."""
    H, N, M = R.shape[0], Q.shape[0], sparse.shape[0]
    rows, cols = depth.shape
    fx, fy, cx, cy = intr[0], intr[1], intr[2], intr[3]
    score, inliers, violation = np.empty(H), np.empty(H), np.empty(H)
    for h in range(H):
        surface, inside_tol = 0.0, 0
        for n in range(N):
            p0, p1, p2 = _to_object(Q, n, R, t, h)
            d, _ = _nearest_sample(p0, p1, p2, origin, inv_voxel, nearest, dense, far)
            surface += min(d / tol, 2.0)  # saturated: a stray point costs a bounded amount
            inside_tol += d < tol
        seen, violated = 0, 0
        for m in range(M):
            a0, a1, a2 = transform_point(R, t, h, sparse[m, 0], sparse[m, 1], sparse[m, 2])  # model point
            c0 = T_ct[0, 0] * a0 + T_ct[0, 1] * a1 + T_ct[0, 2] * a2 + T_ct[0, 3]  # ... camera frame
            c1 = T_ct[1, 0] * a0 + T_ct[1, 1] * a1 + T_ct[1, 2] * a2 + T_ct[1, 3]
            c2 = T_ct[2, 0] * a0 + T_ct[2, 1] * a1 + T_ct[2, 2] * a2 + T_ct[2, 3]
            z = max(c2, 1e-6)
            u, v = int(np.rint(fx * c0 / z + cx)), int(np.rint(fy * c1 / z + cy))
            if 0 <= u < cols and 0 <= v < rows and depth[v, u] > 0:
                seen += 1
                violated += z + 2.0 * tol < depth[v, u]  # model point in front of what is seen
        share = violated / max(seen, 1)
        score[h], inliers[h], violation[h] = surface / N + 2.0 * share, inside_tol / N, share
    return score, inliers, violation


@njit(cache=True, nogil=True)
def matched_pairs(Q, R, t, origin, inv_voxel, nearest, dense, trim, far):
    """One ICP step's statistics per pose: observed points Q (N, 3) paired with their nearest model
    samples (in the table frame), pairs farther than trim left out. Returns (weight sum (H,), model
    mean (H, 3), observed mean (H, 3), cross-covariance sum over pairs of (q - q_mean)(a - a_mean)^T
    (H, 3, 3)); means over at least one pair."""
    H, N = R.shape[0], Q.shape[0]
    wsum = np.zeros(H)
    a_bar, b_bar, M = np.zeros((H, 3)), np.zeros((H, 3)), np.zeros((H, 3, 3))
    A = np.empty((N, 3))
    w = np.empty(N)
    for h in range(H):
        for n in range(N):
            p0, p1, p2 = _to_object(Q, n, R, t, h)
            d, idx = _nearest_sample(p0, p1, p2, origin, inv_voxel, nearest, dense, far)
            # the model sample, back in the table frame
            A[n, 0], A[n, 1], A[n, 2] = transform_point(R, t, h, dense[idx, 0], dense[idx, 1], dense[idx, 2])
            w[n] = 1.0 if d < trim else 0.0
            wsum[h] += w[n]
        norm = max(wsum[h], 1.0)
        for n in range(N):
            for r in range(3):
                a_bar[h, r] += w[n] * A[n, r]
                b_bar[h, r] += w[n] * Q[n, r]
        for r in range(3):
            a_bar[h, r] /= norm
            b_bar[h, r] /= norm
        for n in range(N):
            if w[n] > 0:
                for r in range(3):
                    for c in range(3):
                        M[h, r, c] += (Q[n, r] - b_bar[h, r]) * (A[n, c] - a_bar[h, c])
    return wsum, a_bar, b_bar, M


@njit(cache=True, nogil=True)
def _kabsch_step(M, a_bar, b_bar, R, t):
    """One ICP update of pose (R (3, 3), t (3,)) from its pairs' statistics: the rotation taking the
    model points onto the observed ones (SVD of the cross-covariance M, reflection removed), applied
    about the model points' mean a_bar, which then lands on the observed mean b_bar."""
    U, _, Vt = np.linalg.svd(M)
    D = np.ones(3)
    D[2] = np.sign(np.linalg.det(U @ Vt))
    Rd = U @ (D.reshape(3, 1) * Vt)
    return Rd @ R, Rd @ (t - a_bar) + b_bar


@njit(cache=True, nogil=True)
def free_icp(Q, R, t, origin, inv_voxel, nearest, dense, hull, iters, trim, touch_table, far):
    """Point-to-point ICP (Kabsch) of poses R (H, 3, 3), t (H, 3) onto observed points Q, `iters`
    steps with pairs farther than `trim` left out; with touch_table the lowest hull vertex is put back
    on the table (height 0) after every step. Returns new (R, t)."""
    R, t = R.copy(), t.copy()
    for _ in range(iters):
        _, a_bar, b_bar, M = matched_pairs(Q, R, t, origin, inv_voxel, nearest, dense, trim, far)
        for h in range(R.shape[0]):
            R[h], t[h] = _kabsch_step(M[h], a_bar[h], b_bar[h], R[h], t[h])
            if touch_table:
                low = np.inf
                for v in range(hull.shape[0]):
                    z = R[h, 2, 0] * hull[v, 0] + R[h, 2, 1] * hull[v, 1] + R[h, 2, 2] * hull[v, 2]
                    low = min(low, z)
                t[h, 2] = -low
    return R, t


@njit(cache=True, nogil=True)
def planar_icp(Q, R, t, origin, inv_voxel, nearest, dense, iters, trim_first, trim_last, rotate, far):
    """ICP of poses R (H, 3, 3), t (H, 3) that turns them about the table normal and moves them along
    the table only (2D Procrustes on the pairs' table-plane coordinates); the height stays. The trim
    distance shrinks linearly from trim_first to trim_last over the steps; with rotate=False only the
    position moves. Returns new (R, t)."""
    R, t = R.copy(), t.copy()
    for it in range(iters):
        trim = trim_first + (trim_last - trim_first) * it / max(iters - 1, 1)
        _, a_bar, b_bar, M = matched_pairs(Q, R, t, origin, inv_voxel, nearest, dense, trim, far)
        for h in range(R.shape[0]):
            # the turn maximising sum (Rz a) . b over centred pairs (M[i, j] sums b_i a_j)
            delta = np.arctan2(M[h, 1, 0] - M[h, 0, 1], M[h, 0, 0] + M[h, 1, 1]) if rotate else 0.0
            c, s = np.cos(delta), np.sin(delta)
            for col in range(3):
                r0, r1 = R[h, 0, col], R[h, 1, col]
                R[h, 0, col], R[h, 1, col] = c * r0 - s * r1, s * r0 + c * r1
            x, y = c * t[h, 0] - s * t[h, 1], s * t[h, 0] + c * t[h, 1]
            ax, ay = c * a_bar[h, 0] - s * a_bar[h, 1], s * a_bar[h, 0] + c * a_bar[h, 1]
            t[h, 0], t[h, 1] = x + b_bar[h, 0] - ax, y + b_bar[h, 1] - ay
    return R, t


@njit(cache=True, nogil=True)
def pattern_search(
    Q,
    R,
    t,
    origin,
    inv_voxel,
    nearest,
    dense,
    sparse,
    T_ct,
    depth,
    intr,
    tol,
    far,
    turns,
    shifts,
    pivot,
    rounds,
):
    """Pattern search on the score (score_poses) of each pose R (H, 3, 3), t (H, 3), independently.

    Per step s, the moves are turns[s, k] (3, 3), applied on the left (table frame) about the model
    point `pivot`, each with shifts[s, k] (3,). A pose takes its best move (or stays) up to `rounds`
    times per step, and goes on to the next, finer step once no move improves it. Returns new (R, t).
    """
    R, t = R.copy(), t.copy()
    K = turns.shape[1]
    cR = np.empty((K + 1, 3, 3))
    ct = np.empty((K + 1, 3))
    for h in range(R.shape[0]):
        for s in range(turns.shape[0]):
            for _ in range(rounds):
                p = R[h] @ pivot  # the pivot, turned with the pose: a turn keeps it in place
                cR[0], ct[0] = R[h], t[h]
                for k in range(K):
                    cR[k + 1] = turns[s, k] @ R[h]
                    ct[k + 1] = t[h] + (p - turns[s, k] @ p) + shifts[s, k]
                sc = score_poses(
                    Q, cR, ct, origin, inv_voxel, nearest, dense, sparse, T_ct, depth, intr, tol, far
                )[0]
                best = int(np.argmin(sc))
                if best == 0:
                    break
                R[h], t[h] = cR[best], ct[best]
    return R, t
