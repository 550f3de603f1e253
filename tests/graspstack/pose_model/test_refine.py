"""Depth refinement from starts that are off the way the networks' answers are: turned in yaw (the
resting-pose starts at yaw offsets recover it) or tilted off a resting pose (the snap sets it down)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from graspstack.geometry import make_transform, quat_to_matrix
from graspstack.metric import angular_error_deg, within_spec
from graspstack.pose_model.infer import POLISH_LEVELS_FROM_FIT
from graspstack.pose_model.refine import (
    FREE_POLISH_LEVELS,
    FREE_POLISH_ROUNDS,
    _nearest_resting,
    _polish_free,
    _restarts,
    _snap_to_resting,
    _sweep_about_axis,
    _turn_to_seen,
    refine_pose,
)
from graspstack.predictors.scripted.fit import _rz, _score, model_cloud, score_tolerance
from graspstack.predictors.scripted.priors import load_priors
from graspstack.predictors.scripted.table import back_project, fit_plane


def _turned(T: np.ndarray, plane, yaw_deg: float = 0.0, tilt_deg: float = 0.0) -> np.ndarray:
    """T_cam_obj turned about the table's normal, then tilted about a table axis, through its origin."""
    T_ct = plane.frame(T[:3, 3])
    T_to = np.linalg.inv(T_ct) @ T
    c, s = np.cos(np.radians(tilt_deg)), np.sin(np.radians(tilt_deg))
    tilt = np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
    T_to[:3, :3] = tilt @ _rz(np.radians(yaw_deg)) @ T_to[:3, :3]
    return T_ct @ T_to


def _within_spec_after_refine(
    scenes, start: Callable[[np.ndarray, object], np.ndarray], classes: set[str], **options
) -> list[bool]:
    resting = load_priors().resting
    out = []
    for r in scenes:
        frame_points = back_project(r.depth_m, r.scene.intrinsics_obj())
        valid = r.depth_m > 0
        plane, _ = fit_plane(frame_points[valid][::20], seed=0)
        for k, gt in enumerate(r.scene.ground_truth()):
            pts = frame_points[(r.masks == k + 1) & valid]
            if gt.class_name not in classes or len(pts) < 100:
                continue  # too few points says little
            T_gt = np.eye(4)
            T_gt[:3, :3], T_gt[:3, 3] = quat_to_matrix(gt.quaternion_xyzw), gt.position_m
            fit = refine_pose(
                start(T_gt, plane),
                pts,
                gt.class_name,
                plane,
                resting[gt.class_name],
                r.depth_m,
                r.scene.intrinsics_obj(),
                table_hypothesis=False,
                **options,
            )
            te = float(np.linalg.norm(fit.T_cam_obj[:3, 3] - gt.position_m))
            out.append(within_spec(te, angular_error_deg(gt.class_name, T_gt[:3, :3], fit.T_cam_obj[:3, :3])))
    return out


def test_starts_20_degrees_off_in_yaw_are_recovered_with_yaw_offsets(nominal_scenes):
    def start(T, plane):
        return _turned(T, plane, yaw_deg=20.0)

    # Not the lego: its yaw is ambiguous under its symmetry.
    classes = {"duck", "teddy", "mug", "jenga"}
    plain = _within_spec_after_refine(nominal_scenes, start, classes)
    offsets = (0.0, -20.0, 20.0)
    offset = _within_spec_after_refine(nominal_scenes, start, classes, resting_yaw_offsets_deg=offsets)
    assert len(offset) >= 10
    # Measured: 16 of 17 with the offsets (one duck, fitted free, stays 5.4 deg off), 13 without.
    assert np.mean(offset) >= 0.9 and sum(offset) > sum(plain)


def test_a_fit_tilted_off_a_resting_pose_is_set_down_unless_clearly_better(nominal_scenes):
    r = nominal_scenes[0]
    intr = r.scene.intrinsics_obj()
    frame_points = back_project(r.depth_m, intr)
    valid = r.depth_m > 0
    plane, _ = fit_plane(frame_points[valid][::20], seed=0)
    k, gt = max(enumerate(r.scene.ground_truth()), key=lambda kg: int((r.masks == kg[0] + 1).sum()))
    pts = frame_points[(r.masks == k + 1) & valid]
    T_ct = plane.frame(pts.mean(axis=0))
    Q = (pts - T_ct[:3, 3]) @ T_ct[:3, :3]
    T_gt = np.eye(4)
    T_gt[:3, :3], T_gt[:3, 3] = quat_to_matrix(gt.quaternion_xyzw), gt.position_m
    resting = load_priors().resting[gt.class_name]
    cloud = model_cloud(gt.class_name)
    tol = score_tolerance(plane, pts)

    def snap(tilt_deg: float, score: float, **margin):
        T_to = np.linalg.inv(T_ct) @ _turned(T_gt, plane, tilt_deg=tilt_deg)
        args = (cloud, resting, 15.0, T_ct, r.depth_m, intr, tol, POLISH_LEVELS_FROM_FIT, 2)
        return _snap_to_resting(Q, T_to[:3, :3], T_to[:3, 3], score, *args, **margin)

    snapped = snap(6.0, score=1.0)  # a tilted winner that explains the depth no better than flat
    assert snapped is not None
    T_cam = T_ct @ snapped[0]
    te = float(np.linalg.norm(T_cam[:3, 3] - gt.position_m))
    assert within_spec(te, angular_error_deg(gt.class_name, T_gt[:3, :3], T_cam[:3, :3]))
    assert snap(6.0, score=-1.0) is None  # the tilted fit is clearly better: it stays (leaning)
    assert snap(40.0, score=1.0) is None  # too far from any resting pose to be one
    # A tilted winner 0.15 better than the set-down fit stays at the default margin (0.1) and is set
    # down at a wider one (the lego's, 0.2).
    rest_score = snapped[1]
    assert snap(6.0, score=rest_score - 0.15) is None
    assert snap(6.0, score=rest_score - 0.15, margin=0.2) is not None


def test_the_snap_picks_between_resting_poses_a_few_degrees_apart(scene_objects, lab_cell):
    """A teddy on its back (resting pose 2) and on its back rolled 9 deg (pose 8), or the 6 deg pair
    (0 and 7): a fit tilted past the neighbour has the wrong one nearest, and the depth decides."""
    from graspstack.predictors.scripted.resting import rotation_between
    from lab.scenes import render_scene

    resting = load_priors().resting["teddy"]
    pairs = {0: 7, 2: 8}
    scenes = [render_scene(lab_cell, "nominal", 4243, i) for i in range(20)]
    back = []
    for r, intr, frame_points, valid, plane, k, gt, T_gt in scene_objects(scenes):
        pts = frame_points[(r.masks == k + 1) & valid]
        if gt.class_name != "teddy" or len(pts) < 500:
            continue
        T_ct = plane.frame(pts.mean(axis=0))
        T_to = np.linalg.inv(T_ct) @ T_gt
        near, off = _nearest_resting(resting, T_to[:3, :3])
        i = next(j for j, p in enumerate(resting) if p is near)
        if i not in pairs or off > 1.0:
            continue
        u, u_n = near.up_obj, resting[pairs[i]].up_obj
        beyond = u_n + 0.3 * (u_n - u)  # tilted a little past the neighbour: it is now the nearest
        R0 = T_to[:3, :3] @ rotation_between(beyond / np.linalg.norm(beyond), u)
        assert _nearest_resting(resting, R0)[0] is resting[pairs[i]]
        Q = (pts - T_ct[:3, 3]) @ T_ct[:3, :3]
        args = (model_cloud("teddy"), resting, 15.0, T_ct, r.depth_m, intr, score_tolerance(plane, pts))
        snapped = _snap_to_resting(Q, R0, T_to[:3, 3], 1.0, *args, POLISH_LEVELS_FROM_FIT, 2)
        assert snapped is not None
        T_cam = T_ct @ snapped[0]
        te = float(np.linalg.norm(T_cam[:3, 3] - gt.position_m))
        back.append(within_spec(te, angular_error_deg("teddy", T_gt[:3, :3], T_cam[:3, :3])))
    assert len(back) >= 3
    assert all(back)  # measured: 4 of 4 (set down on the nearest pose alone: 0 of 4)


def test_the_free_polish_takes_a_tilted_and_lifted_fit_back_to_the_depth(scene_objects, hard_scenes):
    """ICP stops where the surface term does; the six-degree-of-freedom polish on the whole score
    finishes the fit of objects that lean or lie on others (no resting pose to snap to)."""
    before, after, lowered = [], [], []
    for r, intr, frame_points, valid, plane, k, gt, T_gt in scene_objects(hard_scenes):
        pts = frame_points[(r.masks == k + 1) & valid]
        if gt.class_name == "lego" or len(pts) < 200:
            continue
        T_ct = plane.frame(pts.mean(axis=0))
        Q = (pts - T_ct[:3, 3]) @ T_ct[:3, :3]
        T_to = np.linalg.inv(T_ct) @ _turned(T_gt, plane, tilt_deg=7.0)
        T_to[2, 3] += 0.006  # and lifted off what it stands on
        cloud = model_cloud(gt.class_name)
        tol = score_tolerance(plane, pts)
        args = (cloud, T_ct, r.depth_m, intr, tol)
        R, t = _polish_free(Q, T_to[:3, :3], T_to[:3, 3], *args, FREE_POLISH_LEVELS, FREE_POLISH_ROUNDS)
        s0 = _score(Q, T_to[None, :3, :3], T_to[None, :3, 3], *args)[0][0]
        s1 = _score(Q, R[None], t[None], *args)[0][0]
        lowered.append(s1 <= s0)
        for T, out in ((T_to, before), (make_transform(R, t), after)):
            T_cam = T_ct @ T
            te = float(np.linalg.norm(T_cam[:3, 3] - gt.position_m))
            out.append(within_spec(te, angular_error_deg(gt.class_name, T_gt[:3, :3], T_cam[:3, :3])))
    assert len(after) >= 8 and all(lowered)
    assert not any(before)
    # Measured: 10 of 13 (raw hard-slice depth, no smoothing), none at the start.
    assert np.mean(after) >= 0.7


def _mugs_in_table_frame(scene_objects, scenes):
    """Per mostly visible mug: (its points in the table frame, the scoring context (cloud, T_ct,
    depth, intrinsics, tolerance), T_ct, the truth in the table frame, ground truth, T_cam_obj)."""
    for r, intr, frame_points, valid, plane, k, gt, T_gt in scene_objects(scenes):
        pts = frame_points[(r.masks == k + 1) & valid]
        if gt.class_name != "mug" or len(pts) < 200:
            continue
        T_ct = plane.frame(pts.mean(axis=0))
        Q = (pts - T_ct[:3, 3]) @ T_ct[:3, :3]
        Q = Q[np.random.default_rng(0).permutation(len(Q))[:500]]
        args = (model_cloud("mug"), T_ct, r.depth_m, intr, score_tolerance(plane, pts))
        yield Q, args, T_ct, np.linalg.inv(T_ct) @ T_gt, gt, T_gt


def test_the_sweep_about_a_mugs_axis_finds_its_handle(scene_objects, nominal_scenes, hard_scenes):
    """A mug's body looks the same at any turn about its axis; only the handle tells the turn. Fits
    turned 30, 90 and 180 deg about the axis from the truth come back when the handle is in sight."""
    back, lowered = [], []
    for Q, args, T_ct, T_to, gt, T_gt in _mugs_in_table_frame(scene_objects, nominal_scenes + hard_scenes):
        for turn_deg in (30.0, 90.0, 180.0):
            R0, t0 = T_to[:3, :3] @ _rz(np.radians(turn_deg)), T_to[:3, 3]
            s0 = float(_score(Q, R0[None], t0[None], *args)[0][0])
            swept = _sweep_about_axis(Q, R0, t0, s0, *args)
            assert swept is not None  # the truth's turn is among those swept: never worse than the start
            R, t, score = swept[0], swept[1], swept[2]
            lowered.append(score <= s0)
            T_cam = T_ct @ make_transform(R, t)
            te = float(np.linalg.norm(T_cam[:3, 3] - gt.position_m))
            back.append(within_spec(te, angular_error_deg("mug", T_gt[:3, :3], T_cam[:3, :3])))
    assert len(back) >= 18 and all(lowered)
    # Measured: 24 of 27 (8 of 9 mugs from every start; the ninth's handle is hidden behind its body).
    assert np.mean(back) >= 0.8


def test_restarts_turn_about_the_box_centre_by_each_angle_both_ways():
    rng = np.random.default_rng(3)
    R = quat_to_matrix(rng.normal(size=4))
    t, centre = np.array([0.1, -0.2, 0.03]), np.array([0.0, 0.01, 0.02])
    Rs, ts = _restarts(R, t, centre)
    assert Rs.shape == (24, 3, 3) and ts.shape == (24, 3)
    np.testing.assert_allclose(Rs @ centre + ts, np.tile(R @ centre + t, (24, 1)), atol=1e-12)
    turns = sorted(round(float(np.degrees(np.arccos((np.trace(Ri @ R.T) - 1) / 2))), 6) for Ri in Rs)
    assert turns == sorted([15.0, 30.0, 45.0, 90.0] * 6)


def test_restarts_recover_fits_that_icp_leaves_in_a_nearer_minimum(hard_scenes):
    """From a start tilted 30 deg (beyond ICP's reach for many objects), the restarts from turned
    starts find the pose the depth explains where plain ICP does not."""

    def start(T, plane):
        return _turned(T, plane, tilt_deg=30.0)

    classes = {"duck", "teddy", "mug", "jenga"}
    plain = _within_spec_after_refine(hard_scenes, start, classes, free_polish=("free", "resting"))
    multi = _within_spec_after_refine(
        hard_scenes, start, classes, free_polish=("free", "resting"), multi_start_above=0.5
    )
    assert len(multi) >= 10
    # Measured: 6 of 13 hard-scene objects within spec with the restarts, 4 without.
    assert sum(multi) >= sum(plain) + 2


def test_the_search_must_beat_the_seeded_fits_by_its_handicap(scene_objects, nominal_scenes):
    """A lego's resting-pose search always runs (fallback_score 0); with a handicap it replaces the
    fits seeded at the start only when it explains the depth better by more than that."""
    resting = load_priors().resting["lego"]
    hypotheses = {0.0: [], 1e9: []}
    for r, intr, frame_points, valid, plane, k, gt, T_gt in scene_objects(nominal_scenes):
        pts = frame_points[(r.masks == k + 1) & valid]
        if gt.class_name != "lego" or len(pts) < 100:
            continue
        start = _turned(T_gt, plane, yaw_deg=90.0)  # a start the seeded fits cannot turn back from
        for handicap, names in hypotheses.items():
            fit = refine_pose(
                start,
                pts,
                "lego",
                plane,
                resting,
                r.depth_m,
                intr,
                fallback_score=0.0,
                search_handicap=handicap,
                table_hypothesis=False,
            )
            names.append(fit.hypothesis.split("+")[0])
    assert len(hypotheses[0.0]) >= 2  # the two legos of the six nominal scenes
    assert "search" in hypotheses[0.0]  # from 90 deg off, the search explains the depth best
    assert "search" not in hypotheses[1e9]


def test_a_measured_turn_about_a_mugs_axis_is_taken_unless_the_depth_rules_it_out(
    scene_objects, nominal_scenes
):
    """A frame net's turn (refine._turn_to_seen) replaces a fit turned 30 deg off the truth when it asks
    for the truth's turn; it is refused when the net is unsure, or when the turned fit scores more than
    the margin worse than the fit (here: a fit said to score 1.0 better than it does). On nominal mugs
    even a half turn scores within the margin: the handle is a few percent of the surface."""
    taken, refused = [], []
    for Q, args, _, T_to, _, _ in _mugs_in_table_frame(scene_objects, nominal_scenes):
        R0, t0 = T_to[:3, :3] @ _rz(np.radians(30.0)), T_to[:3, 3]
        s0 = float(_score(Q, R0[None], t0[None], *args)[0][0])
        back = _turn_to_seen(lambda T: (-30.0, 0.95), Q, R0, t0, s0, *args)
        taken.append(back is not None and angular_error_deg("mug", T_to[:3, :3], back[0]) < 0.1)
        refused.append(_turn_to_seen(lambda T: (-30.0, 0.95), Q, R0, t0, s0 - 1.0, *args) is None)
        assert _turn_to_seen(lambda T: (-30.0, 0.5), Q, R0, t0, s0, *args) is None  # unsure: kept
    assert len(taken) >= 3 and all(taken) and all(refused)
