"""The mug handle net: the frame its azimuth is measured in and the turn it asks for. No shipped
version has one (models/pose/README.md: measured, not shipped), so its training is checked in
test_train.py and its gain on validation scenes, not here."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from graspstack.frames import Intrinsics
from graspstack.geometry import rot_x
from graspstack.pose_model.handle import (
    Handle,
    HandleNet,
    crop_geometry,
    handle_azimuth_deg,
    mug_frame,
)
from graspstack.predictors.scripted.fit import _rz

INTR = Intrinsics(550.0, 550.0, 320.0, 240.0, 640, 480)


def _upright_mug_seen_from_above_at_an_angle() -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = rot_x(-120.0)  # the mug's axis tilted 30 deg off the camera's -y, toward the camera
    T[:3, 3] = [0.05, 0.02, 0.7]
    return T


def _turned(T: np.ndarray, deg: float) -> np.ndarray:
    out = T.copy()
    out[:3, :3] = T[:3, :3] @ _rz(np.radians(deg))
    return out


def test_the_azimuth_follows_a_turn_about_the_mugs_axis():
    T = _upright_mug_seen_from_above_at_an_angle()
    _, e1, e2 = mug_frame(T)
    start = handle_azimuth_deg(T[:3, :3], e1, e2)
    for deg in (-30.0, 10.0, 45.0):
        turned = handle_azimuth_deg(_turned(T, deg)[:3, :3], e1, e2)
        assert (turned - start - deg + 180.0) % 360.0 - 180.0 == pytest.approx(0.0, abs=1e-6)
    # The frame is the axis's and the camera's: turning the mug leaves it as it was.
    _, e1_turned, e2_turned = mug_frame(_turned(T, 45.0))
    assert np.allclose(e1_turned, e1) and np.allclose(e2_turned, e2)


def test_a_handle_toward_the_camera_has_azimuth_zero():
    T = _upright_mug_seen_from_above_at_an_angle()
    middle, e1, _ = mug_frame(T)
    assert float(e1 @ -middle) > 0.0  # e1 points toward the camera
    for deg in np.arange(0.0, 360.0, 5.0):  # the turn whose handle points most toward the camera
        h = _turned(T, deg)[:3, 1]
        if float(h @ e1) > 0.999:
            assert abs(handle_azimuth_deg(_turned(T, deg)[:3, :3], *mug_frame(T)[1:])) < 3.0
            break
    else:
        pytest.fail("no turn points the handle at the camera")


def test_a_mug_seen_along_its_axis_has_no_frame():
    T = np.eye(4)
    T[:3, :3] = rot_x(180.0)  # the axis toward the camera
    T[:3, 3] = [0.0, 0.0, 0.7]
    assert mug_frame(T) is None and crop_geometry(T, INTR) is None


def test_the_measured_turn_puts_the_handle_where_the_net_sees_it():
    net = HandleNet()
    with torch.no_grad():  # a net whose answer is fixed: the handle at 90 deg, fully sure
        net.head.weight.zero_()
        net.head.bias.copy_(torch.tensor([0.0, 1.0]))
    handle = Handle(net)
    rgb = np.full((480, 640, 3), 128, np.uint8)
    depth = np.full((480, 640), 0.7, np.float32)
    T = _upright_mug_seen_from_above_at_an_angle()
    turn, sure = handle.measure(rgb, depth, INTR, T)
    assert sure == pytest.approx(1.0, abs=1e-5)
    _, e1, e2 = mug_frame(T)
    assert handle_azimuth_deg(_turned(T, turn)[:3, :3], e1, e2) == pytest.approx(90.0, abs=1e-4)
