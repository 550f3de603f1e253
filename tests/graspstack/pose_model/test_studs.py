"""The lego studs net's frame and the search it steers: a direction turns with the crop, and the
resting-pose search asked for a stud axis answers a pose whose studs point that way."""

from __future__ import annotations

import numpy as np

from graspstack.metric import angular_error_deg
from graspstack.pose_model.refine import refit_within, z_axis_within
from graspstack.pose_model.studs import UPRIGHT, in_crop_frame
from graspstack.predictors.scripted.fit import fit_segment
from graspstack.predictors.scripted.priors import load_priors


def test_a_direction_in_the_crop_frame_turns_with_the_crop():
    v = np.array([0.6, -0.8, 0.3])
    assert np.allclose(in_crop_frame(v, UPRIGHT), v)  # upright: the camera's own frame
    # A crop turned so that the image direction v's (x, y) is its +u sees v along +u.
    axis = v[:2] / np.linalg.norm(v[:2])
    assert np.allclose(in_crop_frame(v, axis), [1.0, 0.0, 0.3])
    # Turned a quarter the other way round, v lies along the crop's +v.
    assert np.allclose(in_crop_frame(v, np.array([axis[1], -axis[0]])), [0.0, 1.0, 0.3])


def _legos(scene_objects, scenes):
    for r, intr, frame_points, valid, plane, k, gt, T in scene_objects(scenes):
        pts = frame_points[(r.masks == k + 1) & valid]
        if gt.class_name == "lego" and len(pts) >= 100:
            yield r, intr, pts, plane, T


def test_the_search_asked_for_a_stud_axis_answers_studs_that_way(scene_objects, nominal_scenes):
    resting = load_priors().resting["lego"]
    n = 0
    for r, intr, pts, plane, T in _legos(scene_objects, nominal_scenes):
        n += 1
        right = refit_within(pts, "lego", plane, resting, r.depth_m, intr, z_axis_within(T[:3, 2], 0.5))
        assert angular_error_deg("lego", T[:3, :3], right.T_cam_obj[:3, :3]) < 5.0
        assert np.linalg.norm(right.T_cam_obj[:3, 3] - T[:3, 3]) < 0.01
        # Asked for the studs the other way, it answers a pose whose studs point that way, and the
        # depth explains it no better than the truth's face.
        wrong = refit_within(pts, "lego", plane, resting, r.depth_m, intr, z_axis_within(-T[:3, 2], 0.5))
        assert float(wrong.T_cam_obj[:3, 2] @ -T[:3, 2]) >= 0.5
        assert wrong.hypothesis == "axis-search" and wrong.score >= right.score - 0.05
    assert n >= 2  # the two legos of the six nominal scenes


def test_no_resting_pose_near_the_asked_axis_gives_no_fit(scene_objects, nominal_scenes):
    """A lego rests on a face or on its side, so its stud axis is vertical or level: none lies 45 deg
    up from the table."""
    resting = load_priors().resting["lego"]
    r, intr, pts, plane, T = next(_legos(scene_objects, nominal_scenes))
    up = plane.frame(T[:3, 3])[:3, 2]
    level = np.cross(up, [1.0, 0.0, 0.0])
    slanted = (up + level / np.linalg.norm(level)) / np.sqrt(2.0)
    only = z_axis_within(slanted, np.cos(np.radians(20.0)))
    assert fit_segment(pts, plane, "lego", resting, r.depth_m, intr, light=True, only=only) is None


def test_the_net_disputes_another_face_but_leaves_a_side_lying_legos_way_round_to_the_edges():
    from graspstack.pose_model.infer import _studs_disputed
    from graspstack.predictors.scripted.table import Plane

    resting = load_priors().resting["lego"]
    plane = Plane(np.array([0.0, 0.0, -1.0]), 0.8, 0.001)  # seen straight down from 0.8 m: up is -z
    table = plane.frame(np.array([0.0, 0.0, 0.8]))

    def pose(pose_index: int) -> np.ndarray:
        T = np.eye(4)
        T[:3, :3] = table[:3, :3] @ resting[pose_index].rotation()
        T[:3, 3] = table[:3, 3] + resting[pose_index].height_m * table[:3, 2]
        return T

    up = table[:3, 2]
    flat = max(range(len(resting)), key=lambda k: float(resting[k].up_obj[2]))  # studs up
    side = min(range(len(resting)), key=lambda k: abs(float(resting[k].up_obj[2])))
    T_flat, T_side = pose(flat), pose(side)
    assert not _studs_disputed(T_flat, T_flat[:3, 2], plane, resting)  # the net agrees
    assert _studs_disputed(T_flat, -up, plane, resting)  # it sees the studs down
    assert _studs_disputed(T_flat, table[:3, 0], plane, resting)  # it sees the lego on its side
    assert _studs_disputed(T_side, up, plane, resting)  # a quarter round: studs up
    # The other way round on its side is the way-round net's to choose, after the edges.
    assert not _studs_disputed(T_side, -T_side[:3, 2], plane, resting)


def test_the_shipped_net_reads_the_stud_axis_of_rendered_legos(scene_objects, nominal_scenes, hard_scenes):
    """The active version's studs net, looking at each lego at its true pose, seldom disputes it: its
    axis lies within 60 deg of the studs' (STUDS_AGREE_COS) for most legos and never points the other
    way. Measured on these 5 legos: 4 within 46 deg (3 within 15), one at 64 deg; on held-out training
    crops 90.6% lie within 45 deg."""
    from graspstack.pose_model.infer import (
        STUDS_AGREE_COS,
        STUDS_MIN_SURENESS,
        ModelPredictor,
        _studs_disputed,
    )

    predictor = ModelPredictor()
    assert predictor.studs is not None  # the shipped version checks legos' faces
    resting = predictor.resting["lego"]
    cos, disputed = [], 0
    for r, intr, _, plane, T in _legos(scene_objects, nominal_scenes + hard_scenes):
        seen = predictor.studs.measure(r.rgb, r.depth_m, intr, T)
        sureness = float(np.linalg.norm(seen))
        cos.append(float(T[:3, 2] @ seen) / sureness)
        disputed += sureness >= STUDS_MIN_SURENESS and _studs_disputed(T, seen / sureness, plane, resting)
    assert len(cos) >= 4
    assert np.mean(np.array(cos) >= STUDS_AGREE_COS) >= 0.75, cos
    assert min(cos) > 0.0, cos  # the truth never looks upside down
    assert disputed <= 0.25 * len(cos), cos
