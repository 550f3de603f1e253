"""The facing nets' geometry: two regressed axes make a rotation, and the search's test keeps the
rotations near the one seen."""

from __future__ import annotations

import numpy as np

from graspstack.geometry import rot_x, rot_z, rotation_angle_deg
from graspstack.pose_model.facing import rotation_from_axes
from graspstack.pose_model.refine import rotation_within


def test_two_noisy_axes_make_the_nearest_rotation():
    R = rot_z(30.0) @ rot_x(50.0)
    noisy_x = 0.7 * R[:, 0] + 0.05 * R[:, 2]  # short (unsure) and not square to z
    R_seen = rotation_from_axes(noisy_x, 0.9 * R[:, 2])
    assert np.allclose(R_seen.T @ R_seen, np.eye(3), atol=1e-9) and np.linalg.det(R_seen) > 0.999
    assert np.allclose(R_seen[:, 2], R[:, 2]) and rotation_angle_deg(R_seen, R) < 5.0


def test_the_search_keeps_rotations_within_the_angle():
    R = rot_x(20.0)
    candidates = np.stack([R @ rot_z(d) for d in (0.0, 50.0, 70.0, 180.0)])
    assert rotation_within(R, 60.0)(candidates).tolist() == [True, True, False, False]
