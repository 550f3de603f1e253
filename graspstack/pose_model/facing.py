"""Which way a duck or a teddy faces: a small net per class that reads its rotation off a crop.

CropNet sometimes turns a teddy front to back, or a duck onto another side, and the depth cannot
always tell (a bear's back and front are both round, a duck's two flanks mirror each other); the
resting-pose search the fits then fall back on (infer.SEARCH_ABOVE_SCORE) scores by depth alone. Of
v12's hard-slice misses on 400 fresh scenes, 17 teddies and 14 ducks are more than 45 deg off. The
colour image shows the face, the beak, the ears.

Like the lego studs net (studs.py), the net looks at an upright crop centred on the pose's box centre
(one forward pass serves every hypothesis), here of the class's crop side (crops.crop_side_m), and
regresses two model axes (x and z) in the crop's frame with a squared loss, so that each shrinks where
it cannot tell. infer.py asks it about the winning fit; where it is sure and the fit is more than
FACING_AGREE_DEG off, the resting-pose search runs again over the poses near its rotation.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from graspstack.frames import Intrinsics
from graspstack.pose_model.crops import (
    CACHE_MARGIN,
    CACHE_PX,
    CropWindow,
    crop_side_m,
    turned_crop,
    window_for,
)
from graspstack.pose_model.geometry import bbox_centre_obj
from graspstack.pose_model.network import eighth_body, numpy_forward
from graspstack.pose_model.object_map import Dispatch, here
from graspstack.pose_model.studs import UPRIGHT

FACING_CLASSES = ("duck", "teddy")
FACING_PX = 48
FACING_CHANNELS = 5  # colour (standardised per crop), depth relative to the centre, valid
DEPTH_SCALE_M = 0.04


class FacingNet(nn.Module):
    """(B, 5, 48, 48) -> (B, 6): the model's x and z axes in the crop's frame (x along the crop's +u,
    y along its +v, z along the viewing direction), each as long as the net is sure."""

    def __init__(self, width: int = 24) -> None:
        super().__init__()
        w = width
        self.body = eighth_body(FACING_CHANNELS, w)  # 48 -> 6
        self.head = nn.Linear(2 * w * 36, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).flatten(1))


def facing_crop(rgb, depth_m, window: CropWindow, centre_px, axis, z: float, fx: float, class_name: str):
    """The net's crop of a class: the class's crop side, at FACING_PX (crops.turned_crop)."""
    side_mm = 1000.0 * crop_side_m(class_name)
    return turned_crop(rgb, depth_m, window, centre_px, axis, z, fx, FACING_PX, side_mm, DEPTH_SCALE_M)


def class_window(class_name: str, centre_px: np.ndarray, z_m: float, intr: Intrinsics) -> CropWindow:
    """The window the training crops were cached in (crops.scene_crops)."""
    return window_for(centre_px, z_m, crop_side_m(class_name) * CACHE_MARGIN, intr, CACHE_PX)


def box_centre(class_name: str, T_cam_obj: np.ndarray, intr: Intrinsics) -> tuple[np.ndarray, float]:
    """The class's box centre projected (full-resolution px) and its depth (m)."""
    c = T_cam_obj[:3, :3] @ bbox_centre_obj(class_name) + T_cam_obj[:3, 3]
    return np.array([intr.fx * c[0] / c[2] + intr.cx, intr.fy * c[1] / c[2] + intr.cy]), float(c[2])


def rotation_from_axes(x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """The rotation whose z column is z's direction and whose x column is x made square to it."""
    z = z / max(float(np.linalg.norm(z)), 1e-9)
    x = x - (x @ z) * z
    x = x / max(float(np.linalg.norm(x)), 1e-9)
    return np.stack([x, np.cross(z, x), z], axis=1)


class Facing:
    """A class's trained net; `measure` reads the rotation of the object a pose stands for."""

    def __init__(self, class_name: str, net: FacingNet, dispatch: Dispatch | None = None) -> None:
        """dispatch: where the forward pass runs (object_map.ObjectMap.on_caller; default: here)."""
        self.class_name = class_name
        self.net = net.eval()
        self._forward = (dispatch or here)(numpy_forward(self.net))

    def measure(
        self, rgb: np.ndarray, depth_m: np.ndarray, intr: Intrinsics, T_cam_obj: np.ndarray
    ) -> tuple[np.ndarray, float]:
        """(the net's camera-frame rotation, its sureness: the shorter of its two axes' lengths)."""
        centre, z = box_centre(self.class_name, T_cam_obj, intr)
        w = class_window(self.class_name, centre, z, intr)
        rgb_w, depth_w = w.cut(rgb, np.asarray(depth_m, np.float32))
        x = facing_crop(rgb_w, depth_w, w, centre, UPRIGHT, z, intr.fx, self.class_name)
        out = np.asarray(self._forward(x[None])[0], np.float64)  # upright: the crop frame is the camera's
        sure = min(float(np.linalg.norm(out[:3])), float(np.linalg.norm(out[3:])))
        return rotation_from_axes(out[:3], out[3:]), sure
