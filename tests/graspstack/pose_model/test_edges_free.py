"""Aligning a leaning object's outline in six degrees of freedom: objects leaning on others in hard
scenes, started turned 6 deg off their truth about the camera's axes, as the depth fit leaves such
objects."""

from __future__ import annotations

import numpy as np
import pytest

from graspstack.geometry import rot_x, rot_y, rot_z
from graspstack.metric import angular_error_deg, within_spec
from graspstack.pose_model.edges_free import DEPTH_MARGIN, align_free_to_edges, compile_kernel
from graspstack.pose_model.refine import _nearest_resting
from graspstack.predictors.scripted.fit import _score, model_cloud, score_tolerance
from graspstack.predictors.scripted.priors import load_priors


def _turned_about_centre(T: np.ndarray, R_turn: np.ndarray, centre_obj: np.ndarray) -> np.ndarray:
    c = T[:3, :3] @ centre_obj + T[:3, 3]
    out = np.eye(4)
    out[:3, :3] = R_turn @ T[:3, :3]
    out[:3, 3] = c - out[:3, :3] @ centre_obj
    return out


def _leaning_objects(scene_objects, scenes, classes: set[str], min_pixels: int = 400):
    """(scene, plane, object points, T_gt, class) of mostly visible objects off every resting pose."""
    resting = load_priors().resting
    for r, _, points, valid, plane, k, gt, T in scene_objects(scenes):
        mask = (r.masks == k + 1) & valid
        if gt.class_name not in classes or int(mask.sum()) < min_pixels:
            continue
        T_ct = plane.frame(T[:3, 3])
        if _nearest_resting(resting[gt.class_name], T_ct[:3, :3].T @ T[:3, :3])[1] > 10.0:
            yield r, plane, points[mask], T, gt.class_name


@pytest.fixture(scope="module")
def more_hard_scenes(lab_cell):
    from lab.scenes import render_scene

    return [render_scene(lab_cell, "hard", 4242, i) for i in range(3, 12)]


def test_a_leaning_object_turned_off_comes_back_to_its_outline(scene_objects, hard_scenes, more_hard_scenes):
    before, after, rises = [], [], []
    turns = (rot_x(6.0), rot_y(-6.0), rot_z(6.0) @ rot_x(-3.0))
    for n, (r, plane, pts, T_gt, name) in enumerate(
        _leaning_objects(scene_objects, hard_scenes + more_hard_scenes, {"duck", "teddy", "mug", "lego"})
    ):
        centre = model_cloud(name).centre
        start = _turned_about_centre(T_gt, turns[n % len(turns)], centre)
        intr = r.scene.intrinsics_obj()
        out = align_free_to_edges(start, name, plane, pts, r.rgb, r.depth_m, intr)
        assert out is not None
        T, _ = out
        for pose, ok in ((start, before), (T, after)):
            te = float(np.linalg.norm(pose[:3, 3] - T_gt[:3, 3]))
            ok.append(within_spec(te, angular_error_deg(name, T_gt[:3, :3], pose[:3, :3])))
        rises.append(_rise(start, T, name, plane, pts, r.depth_m, intr))
    assert len(after) >= 5 and not any(before)
    # Measured: 8 of 9 (7 of 7 ducks and teddies; one of the two mugs stays out of spec).
    assert np.mean(after) >= 0.75
    assert max(rises) <= DEPTH_MARGIN + 1e-9  # never a pose the depth explains much worse


def _rise(start, T, name, plane, pts, depth, intr) -> float:
    """How much worse the depth score of T is than start's, on the object's points."""
    cloud = model_cloud(name)
    T_ct = plane.frame(pts.mean(axis=0))
    Q = (pts - T_ct[:3, 3]) @ T_ct[:3, :3]
    tol = score_tolerance(plane, pts)
    P = np.stack([np.linalg.inv(T_ct) @ start, np.linalg.inv(T_ct) @ T])
    if len(Q) > 500:  # the search scores a fixed subsample; so must this check
        Q = Q[np.random.default_rng(0).permutation(len(Q))[:500]]
    s = _score(Q, P[:, :3, :3], P[:, :3, 3], cloud, T_ct, depth, intr, tol)[0]
    return float(s[1] - s[0])


def test_the_search_compiles_on_its_synthetic_frame():
    compile_kernel()  # raises if the kernel cannot be built for a frame's argument types
