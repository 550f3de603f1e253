"""Which way a lego's studs point: a small net that reads the stud axis off a crop of the frame.

A 32 x 32 x 23 mm brick shows the depth nearly the same studs up or studs down (the studs stand 2 mm
against the hard slice's 3-10 mm of noise), and on its side nearly the same turned a quarter round
when part of it is hidden. The depth-only resting-pose search, which every lego gets as a hypothesis
(infer.SEARCH_ABOVE_SCORE), then answers a face at random, and CropNet's rotation is no better guide
(on the check scenes it would have turned 9 right answers over for 2 wrong ones). Yet the colour
image shows the face plainly: the studs' rings, or the hollow underside with its tube. Of v12's
hard-slice legos out of spec, about a third have their stud axis more than 45 deg off with the
position right.

The net looks at an upright crop (not turned to any hypothesis, so one forward pass serves every
pose of the object) centred on the pose's box centre and regresses the stud axis (object +z) in the
crop's frame, with a squared loss so that its answer shrinks where it cannot tell: its length is its
sureness. infer.py asks it about the winning fit of every lego, and where it disagrees, searches the
resting poses whose stud axis agrees with it (refine.refit_within), keeping that fit only where the
depth explains it nearly as well.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import torch
from torch import nn

from graspstack.frames import Intrinsics
from graspstack.pose_model.crops import turned_crop
from graspstack.pose_model.geometry import bbox_centre_obj
from graspstack.pose_model.network import eighth_body, numpy_forward
from graspstack.pose_model.object_map import Dispatch, here
from graspstack.pose_model.wayround import lego_window

STUDS_PX = 40
STUDS_MM = 50.0  # 1.25 mm a crop pixel, as the way-round net's: a stud's ring spans 8
STUDS_CHANNELS = 5  # colour (standardised per crop), depth relative to the centre, valid
DEPTH_SCALE_M = 0.02
UPRIGHT = np.array([1.0, 0.0])  # the crop's +u is the image's +u: not turned

studs_crop = partial(turned_crop, px=STUDS_PX, side_mm=STUDS_MM, depth_scale_m=DEPTH_SCALE_M)


class StudsNet(nn.Module):
    """(B, 5, 40, 40) -> (B, 3): the stud axis in the crop's frame (x along the crop's +u, y along
    its +v, z along the camera's viewing direction), as long as the net is sure (at most ~1)."""

    def __init__(self, width: int = 24) -> None:
        super().__init__()
        w = width
        self.body = eighth_body(STUDS_CHANNELS, w)  # 40 -> 5
        self.head = nn.Linear(2 * w * 25, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).flatten(1))


def in_crop_frame(v_cam: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """A camera-frame direction (3,) expressed in the frame of a crop turned so that the image
    direction `axis` is its +u (crops.turned_crop): +v is `axis` turned a quarter toward the image's
    +v, and the viewing direction stays."""
    perp = np.array([-axis[1], axis[0]])
    return np.array([v_cam[:2] @ axis, v_cam[:2] @ perp, v_cam[2]])


def box_centre_px(T_cam_obj: np.ndarray, intr: Intrinsics) -> tuple[np.ndarray, float]:
    """The lego's box centre projected (full-resolution px) and its depth (m)."""
    c = T_cam_obj[:3, :3] @ bbox_centre_obj("lego") + T_cam_obj[:3, 3]
    return np.array([intr.fx * c[0] / c[2] + intr.cx, intr.fy * c[1] / c[2] + intr.cy]), float(c[2])


class Studs:
    """The trained net; `measure` reads the stud axis of the lego a pose stands for."""

    def __init__(self, net: StudsNet, dispatch: Dispatch | None = None) -> None:
        """dispatch: where the forward pass runs (object_map.ObjectMap.on_caller; default: here)."""
        self.net = net.eval()
        self._forward = (dispatch or here)(numpy_forward(self.net))

    def measure(
        self, rgb: np.ndarray, depth_m: np.ndarray, intr: Intrinsics, T_cam_obj: np.ndarray
    ) -> np.ndarray:
        """The net's stud axis (3,) in the camera frame, its length the net's sureness."""
        centre, z = box_centre_px(T_cam_obj, intr)
        w = lego_window(centre, z, intr)
        rgb_w, depth_w = w.cut(rgb, np.asarray(depth_m, np.float32))
        x = studs_crop(rgb_w, depth_w, w, centre, UPRIGHT, z, intr.fx)
        return np.asarray(self._forward(x[None])[0], np.float64)  # upright: the crop frame is the camera's
