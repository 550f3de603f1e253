"""Shared fixtures: rendered lab scenes are cheap (a fraction of a second) but shared per session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def lab_cell():
    from lab.cell import LabCell

    cell = LabCell()
    yield cell
    cell.close()


@pytest.fixture(scope="session")
def nominal_scenes(lab_cell):
    from lab.scenes import render_scene

    return [render_scene(lab_cell, "nominal", 4242, i) for i in range(6)]


@pytest.fixture(scope="session")
def hard_scenes(lab_cell):
    from lab.scenes import render_scene

    return [render_scene(lab_cell, "hard", 4242, i) for i in range(3)]


@pytest.fixture(scope="session")
def scene_objects():
    """A function over rendered scenes that yields, per ground-truth object, what the depth-fitting
    tests start from: (scene, intrinsics, back-projected frame points, valid-depth mask, the table
    plane fitted to the frame, object index, ground truth, T_cam_obj)."""
    import numpy as np

    from graspstack.geometry import make_transform, quat_to_matrix
    from graspstack.predictors.scripted.table import back_project, fit_plane

    def iterate(scenes):
        for r in scenes:
            intr = r.scene.intrinsics_obj()
            points = back_project(r.depth_m, intr)
            valid = r.depth_m > 0
            plane, _ = fit_plane(points[valid][::20], seed=0)
            for k, gt in enumerate(r.scene.ground_truth()):
                T = make_transform(quat_to_matrix(gt.quaternion_xyzw), np.asarray(gt.position_m))
                yield r, intr, points, valid, plane, k, gt, T

    return iterate
