"""Where a mug's handle points: a small regressor on a crop turned to the mug's own frame.

A mug's body is a cylinder, so the depth fixes its axis and position but only its handle (a few
percent of its surface, 1 cm thick) tells its turn about the axis; in the hard slice's 3-10 mm of
depth noise the depth score over that turn is flat, and the fit stopped 8-37 deg off for 9 of 19
mugs out of spec on hard validation scenes with the handle in sight. The colour image shows the
handle plainly. This net reads the handle's turn from the crop.

The turn is measured in a frame the pose's axis and the viewing ray fix, whatever the handle does:
e1 points from the axis toward the camera (across the axis), e2 = axis x e1. The handle's azimuth is
atan2(h . e2, h . e1), with h the model's +y (the handle's direction): 0 with the handle toward the
camera, 180 deg behind the body. e2 is across the viewing ray, so it always shows in the image at its
full length: the crop is turned so that e2 projects to the crop's +u, and it is centred on the body's
middle. The net regresses (cos, sin) of the azimuth with a squared loss, so where the handle is
hidden its answer shrinks toward the mean of the turns it could have: the vector's length is how
sure it is.
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import torch
from torch import nn

from graspstack.frames import Intrinsics
from graspstack.pose_model.crops import (
    CropWindow,
    turned_crop,
    window_for,
)
from graspstack.pose_model.network import eighth_body, numpy_forward
from graspstack.pose_model.object_map import Dispatch, here

HANDLE_PX = 64
HANDLE_MM = 160.0  # the body (88 mm) and the handle (to 81 mm off the axis) with some margin: 2.5 mm a px
# The window cut around a mug (for training, cached once): the turned crop's corners and the
# training jitter stay inside it, at 1.6 mm a pixel (the CropNet cache's 2.8 mm a pixel left the
# net 75% within 5 deg on held-out crops).
WINDOW_PX = 160
WINDOW_M = 0.26
HANDLE_CHANNELS = 5  # colour (standardised per crop), depth relative to the body's middle, valid
DEPTH_SCALE_M = 0.03
BODY_MIDDLE_OBJ = np.array([0.0, 0.0, 0.05])  # on the axis, half the mug's height up
# Seen within this of along its axis (|axis . ray|), a mug has no direction toward the camera across
# its axis to measure the turn from.
MAX_AXIS_ALONG_RAY = 0.97


class HandleNet(nn.Module):
    """(B, 5, 64, 64) -> (B, 2): the handle's azimuth as (cos, sin), shrunk toward zero where unsure.

    No global pooling: where the handle is in the crop is the answer."""

    def __init__(self, width: int = 24) -> None:
        super().__init__()
        w = width
        self.body = eighth_body(HANDLE_CHANNELS, w, last_conv=True)  # 64 -> 8
        self.head = nn.Linear(2 * w * 64, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).flatten(1))


def mug_frame(T_cam_obj: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(body middle, e1, e2) in the camera frame, or None when the axis is too near the viewing ray."""
    R, t = T_cam_obj[:3, :3], T_cam_obj[:3, 3]
    middle = R @ BODY_MIDDLE_OBJ + t
    axis = R[:, 2]
    toward = -middle / np.linalg.norm(middle)
    along = float(toward @ axis)
    if abs(along) > MAX_AXIS_ALONG_RAY:
        return None
    e1 = toward - along * axis
    e1 /= np.linalg.norm(e1)
    return middle, e1, np.cross(axis, e1)


def handle_azimuth_deg(R_cam_obj: np.ndarray, e1: np.ndarray, e2: np.ndarray) -> float:
    h = R_cam_obj[:, 1]
    return math.degrees(math.atan2(float(h @ e2), float(h @ e1)))


def crop_geometry(
    T_cam_obj: np.ndarray, intr: Intrinsics
) -> tuple[np.ndarray, np.ndarray, float, float] | None:
    """(body middle in full-resolution px, unit image direction of e2, the middle's camera z, the
    pose's handle azimuth in degrees), or None when the mug's frame is undefined (mug_frame)."""
    frame = mug_frame(T_cam_obj)
    if frame is None:
        return None
    middle, e1, e2 = frame
    uv = lambda p: np.array([intr.fx * p[0] / p[2] + intr.cx, intr.fy * p[1] / p[2] + intr.cy])  # noqa: E731
    c_px = uv(middle)
    d = uv(middle + 0.01 * e2) - c_px
    azimuth = handle_azimuth_deg(T_cam_obj[:3, :3], e1, e2)
    return c_px, d / max(float(np.linalg.norm(d)), 1e-9), float(middle[2]), azimuth


# The crop the net reads, as wayround.canonical_crop but of HANDLE_PX over HANDLE_MM.
handle_crop = partial(turned_crop, px=HANDLE_PX, side_mm=HANDLE_MM, depth_scale_m=DEPTH_SCALE_M)


def mug_window(centre_px: np.ndarray, z_m: float, intr: Intrinsics) -> CropWindow:
    """The window around a mug's middle that its crop is turned out of, in training and in use, so
    that a crop cut here is resampled the way the training ones were."""
    return window_for(centre_px, z_m, WINDOW_M, intr, WINDOW_PX)


class Handle:
    """The trained net; `measure` reads one mug pose's handle off its frame."""

    def __init__(self, net: HandleNet, dispatch: Dispatch | None = None) -> None:
        """dispatch: where the forward pass runs (object_map.ObjectMap.on_caller; default: here)."""
        self.net = net.eval()
        self._forward = (dispatch or here)(numpy_forward(self.net))

    def measure(
        self, rgb: np.ndarray, depth_m: np.ndarray, intr: Intrinsics, T_cam_obj: np.ndarray
    ) -> tuple[float, float] | None:
        """(turn about the model's z axis, degrees, that puts the pose's handle where the net sees it;
        the net's sureness, the length of its (cos, sin) answer), or None where the frame is
        undefined."""
        geometry = crop_geometry(T_cam_obj, intr)
        if geometry is None:
            return None
        centre, axis, z, azimuth = geometry
        w = mug_window(centre, z, intr)
        rgb_w, depth_w = w.cut(rgb, np.asarray(depth_m, np.float32))
        x = handle_crop(rgb_w, depth_w, w, centre, axis, z, intr.fx)
        c, s = self._forward(x[None])[0]
        seen = math.degrees(math.atan2(float(s), float(c)))
        turn = (seen - azimuth + 180.0) % 360.0 - 180.0
        return turn, float(math.hypot(c, s))
