"""Stable resting poses of each class, found by dropping it many times in the lab cell (offline).

An object settled on the table is fixed, up to a rotation about the table normal (yaw) and a
translation along the table, by which "up" direction of its own frame points at the sky. So each
resting pose is stored as that up vector `u` (object frame) and the height of the object origin
above the table; at inference a pose is `Rz(yaw) @ R0` with R0 the smallest rotation taking u to z.
Only `drop_resting_poses` needs the simulator; everything else here is plain numpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from graspstack.catalogue import CLASS_NAMES


@dataclass(frozen=True)
class RestingPose:
    up_obj: np.ndarray  # unit vector, object frame, that points along the table normal
    height_m: float  # object-frame origin above the table top
    frequency: float  # share of drops that ended in this pose

    def rotation(self) -> np.ndarray:
        """R0: the table-frame orientation with yaw 0 (smallest rotation taking up_obj to +z)."""
        return self._rotation.copy()  # a copy: callers may write into it

    @cached_property
    def _rotation(self) -> np.ndarray:
        # Fixed per pose, and asked for per hypothesis and per snap (~20 times an object).
        return rotation_between(self.up_obj, np.array([0.0, 0.0, 1.0]))


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest rotation R with R @ a = b (unit vectors)."""
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    v, c = np.cross(a, b), float(a @ b)
    if c < -1 + 1e-9:  # opposite: turn 180 deg about any axis perpendicular to a
        axis = np.cross(a, [1.0, 0, 0]) if abs(a[0]) < 0.9 else np.cross(a, [0, 1.0, 0])
        axis /= np.linalg.norm(axis)
        return 2 * np.outer(axis, axis) - np.eye(3)
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1 + c)


def cluster_up_vectors(
    ups: np.ndarray, heights: np.ndarray, max_angle_deg: float = 5.0, min_share: float = 0.01
) -> list[RestingPose]:
    """Greedy clustering of settled up vectors; clusters rarer than min_share are dropped (tipping)."""
    cos_tol = np.cos(np.radians(max_angle_deg))
    left = np.ones(len(ups), dtype=bool)
    poses = []
    while left.any():
        # Seed each cluster at the up vector with the most neighbours among those left.
        sim = ups[left] @ ups[left].T > cos_tol
        seed = ups[left][int(sim.sum(axis=1).argmax())]
        member = left & (ups @ seed > cos_tol)
        mean = ups[member].mean(axis=0)
        member = left & (ups @ (mean / np.linalg.norm(mean)) > cos_tol)
        mean = ups[member].mean(axis=0)
        share = member.sum() / len(ups)
        if share >= min_share:
            height = float(np.median(heights[member]))
            poses.append(RestingPose(mean / np.linalg.norm(mean), height, float(share)))
        left &= ~member
    return sorted(poses, key=lambda p: -p.frequency)


def drop_resting_poses(drops_per_class: int = 80, seed: int = 0) -> dict[str, list[RestingPose]]:
    """Drop each class alone from random orientations onto the nominal table and cluster how it settles.

    This is the generator of the `resting_poses` section of models/baselines/scripted_priors.json.
    """
    import dataclasses

    from lab.cell import LabCell
    from lab.envelope import DropSpec, sample_scene

    rng = np.random.default_rng(seed)
    cell = LabCell()
    result: dict[str, list[RestingPose]] = {}
    try:
        for cls in CLASS_NAMES:
            ups, heights = [], []
            for i in range(drops_per_class):
                q = rng.normal(size=4)
                q /= np.linalg.norm(q)
                xy = rng.uniform(-0.1, 0.1, size=2)
                drop = DropSpec(
                    "object",
                    cls,
                    (float(xy[0]), float(xy[1])),
                    float(rng.uniform(0.06, 0.2)),
                    tuple(float(v) for v in q),
                )
                spec = dataclasses.replace(sample_scene("nominal", seed, i), drops=[drop])
                cell.reset(spec)
                cell.settle()
                if not cell.bodies:
                    continue
                T = cell.T_world_obj(cell.bodies[0].body_id)
                ups.append(T[:3, :3].T @ np.array([0.0, 0.0, 1.0]))
                heights.append(T[2, 3])
            result[cls] = cluster_up_vectors(np.array(ups), np.array(heights))
    finally:
        cell.close()
    return result
