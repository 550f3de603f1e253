"""Depth refinement from a start whose yaw is off: the resting-pose starts at yaw offsets recover it."""

from __future__ import annotations

import numpy as np

from graspstack.geometry import quat_to_matrix
from graspstack.metric import angular_error_deg, within_spec
from graspstack.pose_model.refine import refine_pose
from graspstack.predictors.scripted.fit import _rz
from graspstack.predictors.scripted.priors import load_priors
from graspstack.predictors.scripted.table import back_project, fit_plane


def _turned_about_table_normal(T: np.ndarray, plane, degrees: float) -> np.ndarray:
    """T_cam_obj turned by `degrees` about the table's normal through the object's origin."""
    T_ct = plane.frame(T[:3, 3])
    T_to = np.linalg.inv(T_ct) @ T
    T_to[:3, :3] = _rz(np.radians(degrees)) @ T_to[:3, :3]
    return T_ct @ T_to


def _within_spec_from_turned_starts(scenes, offsets: tuple[float, ...]) -> list[bool]:
    resting = load_priors().resting
    out = []
    for r in scenes:
        frame_points = back_project(r.depth_m, r.scene.intrinsics_obj())
        valid = r.depth_m > 0
        plane, _ = fit_plane(frame_points[valid][::20], seed=0)
        for k, gt in enumerate(r.scene.ground_truth()):
            pts = frame_points[(r.masks == k + 1) & valid]
            if gt.class_name == "lego" or len(pts) < 200:
                continue  # lego's yaw is ambiguous under its symmetry; too few points says little
            T_gt = np.eye(4)
            T_gt[:3, :3], T_gt[:3, 3] = quat_to_matrix(gt.quaternion_xyzw), gt.position_m
            fit = refine_pose(
                _turned_about_table_normal(T_gt, plane, 20.0),
                pts,
                gt.class_name,
                plane,
                resting[gt.class_name],
                r.depth_m,
                r.scene.intrinsics_obj(),
                table_hypothesis=False,
                resting_yaw_offsets_deg=offsets,
            )
            te = float(np.linalg.norm(fit.T_cam_obj[:3, 3] - gt.position_m))
            out.append(within_spec(te, angular_error_deg(gt.class_name, T_gt[:3, :3], fit.T_cam_obj[:3, :3])))
    return out


def test_starts_20_degrees_off_in_yaw_are_recovered_with_yaw_offsets(nominal_scenes):
    plain = _within_spec_from_turned_starts(nominal_scenes, (0.0,))
    offset = _within_spec_from_turned_starts(nominal_scenes, (0.0, -20.0, 20.0))
    assert len(offset) >= 10
    # Measured: 16 of 17 with the offsets (one duck, fitted free, stays 5.4 deg off), 13 without.
    assert np.mean(offset) >= 0.9 and sum(offset) > sum(plain)
