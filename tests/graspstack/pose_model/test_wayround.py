"""The lego way-round net: its crop is turned to the pose's stud axis; the shipped net tells
side-lying legos of rendered scenes from their half-turned twins, and turns a lego fitted a few
degrees off in yaw back to its studs."""

from __future__ import annotations

import numpy as np
import pytest

from graspstack.frames import Intrinsics
from graspstack.geometry import rot_y
from graspstack.pose_model.crops import CropWindow
from graspstack.pose_model.edges import _turned_half_about_normal
from graspstack.pose_model.registry import active_version, load_frame_network
from graspstack.pose_model.wayround import MIN_AXIS_SHARE, WAY_PX, WayRound, canonical_crop, stud_axis_px
from graspstack.predictors.scripted.fit import model_cloud

INTR = Intrinsics(550.0, 550.0, 320.0, 240.0, 640, 480)


def test_the_crop_turns_the_axis_to_plus_u():
    rgb = np.zeros((480, 640, 3), np.uint8)
    depth = np.full((480, 640), 0.6, np.float32)
    axis = np.array([0.6, -0.8])  # up and to the right in the image
    centre = np.array([320.0, 240.0])
    bright = centre + 12 * axis
    rgb[int(bright[1]) - 3 : int(bright[1]) + 4, int(bright[0]) - 3 : int(bright[0]) + 4] = 255
    window = CropWindow(0.0, 0.0, 1.0, 640)  # the frame itself
    toward = canonical_crop(rgb, depth, window, centre, axis, 0.6, INTR.fx)[0]
    away = canonical_crop(rgb, depth, window, centre, -axis, 0.6, INTR.fx)[0]
    # The spot 12 px along the axis at 0.6 m is 12 / (550 * 1.25 mm / 0.6 m) ~ 10.5 crop px from the
    # middle: on the crop's +u side when turned to the axis, on its -u side when turned away.
    mid = (WAY_PX - 1) / 2.0
    for crop, side in ((toward, 1.0), (away, -1.0)):
        rows, cols = np.nonzero(crop > 0.5 * crop.max())
        row, col = rows.mean(), cols.mean()  # the spot's middle
        assert abs(row - mid) <= 2.0 and abs((col - mid) - side * 10.5) <= 2.0, (row, col)


def test_the_stud_axis_shows_only_when_it_is_off_the_viewing_ray():
    T = np.eye(4)
    T[:3, 3] = [0.0, 0.0, 0.6]
    k = np.array([INTR.fx, INTR.fy, INTR.cx, INTR.cy])
    assert stud_axis_px(T, k)[2] < 0.05  # studs toward the camera: no image direction
    T[:3, :3] = rot_y(90.0)  # object +z along camera +x
    centre, axis, share = stud_axis_px(T, k)
    assert share > 0.95 and axis[0] > 0.99
    assert np.allclose(centre, [320.0, 240.0], atol=1.0)


@pytest.fixture(scope="module")
def lego_scenes(lab_cell):
    from lab.scenes import render_scene

    return [render_scene(lab_cell, s, 4343, i) for s in ("nominal", "hard") for i in range(16)]


def _side_lying_legos(scene_objects, scenes):
    """(scene, intrinsics, plane, T_gt) of mostly visible legos on their side, studs in the image."""
    for r, intr, _, valid, plane, i, gt, T in scene_objects(scenes):
        if gt.class_name != "lego" or int(((r.masks == i + 1) & valid).sum()) < 150:
            continue
        up_obj = T[:3, :3].T @ plane.frame(T[:3, 3])[:3, 2]
        k = np.array([intr.fx, intr.fy, intr.cx, intr.cy])
        if abs(up_obj[2]) <= 0.1 and stud_axis_px(T, k)[2] >= MIN_AXIS_SHARE:
            yield r, intr, plane, T


def test_the_shipped_net_turns_a_lego_fitted_off_in_yaw_back_to_its_studs(scene_objects, lego_scenes):
    from graspstack.metric import angular_error_deg
    from graspstack.pose_model.edges import turned_about_normal
    from graspstack.pose_model.infer import ModelPredictor

    pred = ModelPredictor()
    centre = model_cloud("lego").centre
    before, after = [], []
    for r, intr, plane, T in _side_lying_legos(scene_objects, lego_scenes):
        look = pred.way_round.look(r.rgb, r.depth_m, intr)
        for deg in (-8.0, 8.0):
            off = turned_about_normal(T, plane.frame(T[:3, 3]), centre, deg)
            back = pred._turn_to_stud_axis(off, plane, look)
            before.append(angular_error_deg("lego", T[:3, :3], off[:3, :3]))
            after.append(angular_error_deg("lego", T[:3, :3], back[:3, :3]))
    assert len(after) >= 16
    assert np.allclose(before, 8.0, atol=0.1)
    assert np.mean(np.array(after) < 4.0) >= 0.8, np.round(after, 1)


def test_the_shipped_net_tells_a_side_lying_lego_from_its_flip(scene_objects, lego_scenes):
    net = load_frame_network("wayround", active_version())
    assert net is not None, "the active version ships no way-round net"
    chooser = WayRound(net)
    right = total = 0
    for r, intr, plane, T in _side_lying_legos(scene_objects, lego_scenes):
        flipped = _turned_half_about_normal(T, plane.frame(T[:3, 3]), model_cloud("lego").centre)
        margin = chooser.look(r.rgb, r.depth_m, intr).prefer_first(T, flipped)
        total += 1
        right += margin is not None and margin > 0
    assert total >= 8, f"only {total} side-lying legos in the rendered scenes"
    assert right / total >= 0.85, f"{right} of {total} side-lying legos the right way round"
