"""Aligning a resting object's outline with the colour image: a lego's yaw, which the depth cannot pin."""

from __future__ import annotations

import numpy as np
import pytest

from graspstack.metric import angular_error_deg, within_spec
from graspstack.pose_model.edges import OUTLINE_REACH_PX, _nearest_samples, align_resting_to_edges
from graspstack.predictors.scripted.fit import _rz, model_cloud
from graspstack.predictors.scripted.priors import load_priors


def _moved(
    T: np.ndarray,
    plane,
    yaw_deg: float,
    shift_m: tuple[float, float],
    tilt_deg: float = 0.0,
    pivot_obj: np.ndarray | None = None,
):
    """T_cam_obj turned about the table normal (and tilted about a table axis) through pivot_obj (the
    object's origin by default), and shifted along the table."""
    pivot = T[:3, 3] if pivot_obj is None else T[:3, :3] @ pivot_obj + T[:3, 3]
    T_ct = plane.frame(pivot)
    T_ct[:3, 3] = pivot
    T_to = np.linalg.inv(T_ct) @ T
    c, s = np.cos(np.radians(tilt_deg)), np.sin(np.radians(tilt_deg))
    tilt = np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
    T_to[:3, :3] = tilt @ _rz(np.radians(yaw_deg)) @ T_to[:3, :3]
    T_to[:2, 3] += shift_m
    return T_ct @ T_to


def _resting_objects(scene_objects, scenes, classes: set[str], min_pixels: int = 150):
    """(scene, plane, T_gt, class) of resting, mostly visible objects of the classes."""
    resting_up = load_priors().resting
    for r, _, _, _, plane, k, gt, T in scene_objects(scenes):
        if gt.class_name not in classes or int((r.masks == k + 1).sum()) < min_pixels:
            continue
        up = (plane.frame(T[:3, 3])[:3, :3].T @ T[:3, :3]).T @ [0.0, 0.0, 1.0]
        if max(float(p.up_obj @ up) for p in resting_up[gt.class_name]) > np.cos(np.radians(2.0)):
            yield r, plane, T, gt.class_name


@pytest.fixture(scope="module")
def more_nominal_scenes(lab_cell):
    """Scenes after the shared ones, which hold only two legos lying on their side and four ducks."""
    from lab.scenes import render_scene

    return [render_scene(lab_cell, "nominal", 4242, i) for i in range(6, 18)]


@pytest.mark.parametrize(
    "classes, silhouette",
    [
        ({"lego", "jenga"}, False),  # measured: 28 of 28 within spec, median error 0.15 deg
        ({"duck"}, True),  # measured: 13 of 13, median 0.4 deg; a duck's convex hull is not its outline
    ],
)
def test_a_resting_object_turned_6_6_degrees_and_shifted_comes_back_to_its_outline(
    scene_objects, nominal_scenes, more_nominal_scenes, hard_scenes, classes, silhouette
):
    resting = load_priors().resting
    before, after, errors = [], [], []
    for r, plane, T_gt, name in _resting_objects(
        scene_objects, nominal_scenes + more_nominal_scenes + hard_scenes, classes
    ):
        start = _moved(T_gt, plane, yaw_deg=6.6, shift_m=(0.0013, -0.0007))
        out = align_resting_to_edges(
            start,
            name,
            plane,
            resting[name],
            r.rgb,
            r.depth_m,
            r.scene.intrinsics_obj(),
            silhouette_outline=silhouette,
        )
        assert out is not None  # resting: aligned
        T, gain = out
        assert gain >= 1.0  # the search keeps the start when nothing is better
        for pose, ok in ((start, before), (T, after)):
            te = float(np.linalg.norm(pose[:3, 3] - T_gt[:3, 3]))
            ok.append(within_spec(te, angular_error_deg(name, T_gt[:3, :3], pose[:3, :3])))
        errors.append(angular_error_deg(name, T_gt[:3, :3], T[:3, :3]))
    assert len(after) >= 10 and not any(before)
    assert np.mean(after) >= 0.85 and np.median(errors) < 1.5


def test_a_pose_tilted_off_every_resting_pose_is_left_alone(scene_objects, nominal_scenes):
    resting = load_priors().resting
    r, plane, T_gt, name = next(_resting_objects(scene_objects, nominal_scenes, {"lego", "jenga"}))
    tilted = _moved(T_gt, plane, yaw_deg=0.0, shift_m=(0.0, 0.0), tilt_deg=10.0)
    assert (
        align_resting_to_edges(tilted, name, plane, resting[name], r.rgb, r.depth_m, r.scene.intrinsics_obj())
        is None
    )


def test_a_lego_on_its_side_the_wrong_way_round_is_turned_by_its_outline(
    scene_objects, nominal_scenes, more_nominal_scenes, hard_scenes
):
    """The depth cannot tell which end of a lying lego has the studs; its outline can."""
    resting = load_priors().resting
    plain, flipped = [], []
    scenes = nominal_scenes + more_nominal_scenes + hard_scenes
    for r, plane, T_gt, name in _resting_objects(scene_objects, scenes, {"lego"}):
        up = (plane.frame(T_gt[:3, 3])[:3, :3].T @ T_gt[:3, :3]).T @ [0.0, 0.0, 1.0]
        if abs(up[2]) > 0.5:
            continue  # studs up or down: turning it half about the vertical is a symmetry
        # As the depth fit has it: the brick's body where the depth is, the studs at the wrong end.
        start = _moved(T_gt, plane, yaw_deg=183.0, shift_m=(0.0004, 0.0), pivot_obj=model_cloud(name).centre)
        for try_flip, out in ((False, plain), (True, flipped)):
            T, _ = align_resting_to_edges(
                start, name, plane, resting[name], r.rgb, r.depth_m, r.scene.intrinsics_obj(), try_flip
            )
            te = float(np.linalg.norm(T[:3, 3] - T_gt[:3, 3]))
            out.append(within_spec(te, angular_error_deg(name, T_gt[:3, :3], T[:3, :3])))
    assert len(flipped) >= 5 and not any(plain)
    # Measured: 5 of 7. The other two come back 176-178 deg off: their outline both ways round is
    # within 5% in strength, and the turned start lands 1-2 mm off the brick (edges.py).
    assert np.mean(flipped) >= 0.7


def test_each_outline_pixel_gets_the_sample_nearest_it():
    # Surface samples projected into a 60 x 40 px window; outline pixels: pixels that hold a sample,
    # as the silhouette's outline pixels do (or have one next to them, after its closing).
    rng = np.random.default_rng(0)
    uv = rng.uniform([200.0, 100.0], [260.0, 140.0], (1500, 2))
    lo = np.floor(uv.min(axis=0)).astype(np.int64) - 2
    px = np.round(uv).astype(np.int64) - lo
    shape = (int(px[:, 1].max()) + 3, int(px[:, 0].max()) + 3)
    outline = np.unique(px[rng.choice(len(px), 120, replace=False)], axis=0).astype(np.float64)
    got = _nearest_samples(uv, px, shape, outline, lo.astype(np.float64), OUTLINE_REACH_PX)
    brute = np.argmin(np.linalg.norm(uv[None] - (outline + lo)[:, None], axis=-1), axis=1)
    np.testing.assert_array_equal(got, brute)
