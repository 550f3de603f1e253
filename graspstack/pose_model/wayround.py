"""Which way round a lego lies on its side: a small classifier on a crop turned to the pose's studs.

On its side a lego shows the depth the same shape both ways round (its studs stand 3 mm against the
hard slice's 3-10 mm of depth noise), so the pose model chose by the colour outline, whose stud bumps
sit at one end (edges.align_resting_to_edges). In varied light and on textured tables that chose
wrong for 15 of 68 side-lying legos on hard validation scenes, and CropNet's correspondences were
right in 9 of those. This net looks at the studs themselves.

The crop is a square of WAY_MM metric side around the object, turned so that a hypothesis's stud
axis (object +z, projected into the image) points along the crop's +u; the net gives the logit that
the studs really point there. The same pose turned half round about the table normal has the crop
turned half round, so comparing a pose with its flip costs one forward pass of two crops. A second
output measures the angle between the crop's +u and the true stud axis's line (trained on crops
turned up to ANGLE_SCALE_DEG off): the outline leaves hard-slice legos 5-15 deg off in yaw, and the
pose model turns them back by it (infer.STUD_AXIS_TURN_MAX_DEG).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

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

WAY_PX = 40
WAY_MM = 50.0  # 1.25 mm a crop pixel: a stud (10 mm across on this scaled brick) spans 8
WAY_CHANNELS = 5  # colour (standardised per crop), depth relative to the centre, valid
DEPTH_SCALE_M = 0.02
# The stud axis must show at least this share of its length in the image (it is at least ~30 deg off
# the viewing ray), or there is no image direction for the crop to turn to.
MIN_AXIS_SHARE = 0.5
ANGLE_SCALE_DEG = 15.0  # the angle output's unit: training turns the crops up to this far off


class WayRoundNet(nn.Module):
    """(B, 5, 40, 40) -> (B, 2): the logit that the studs point along the crop's +u, and the angle
    from the crop's +u to the true stud axis's line, in units of ANGLE_SCALE_DEG.

    No global pooling: which end of the crop the studs are at is the answer, so the head reads the
    5 x 5 map position by position."""

    def __init__(self, width: int = 24) -> None:
        super().__init__()
        w = width
        self.body = eighth_body(WAY_CHANNELS, w)  # 40 -> 5
        self.head = nn.Linear(2 * w * 25, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).flatten(1))


def stud_axis_px(T_cam_obj: np.ndarray, intr: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Projected object centre (full-resolution px), the unit image direction of the stud axis, and
    the share of the axis's length that shows in the image. intr = fx, fy, cx, cy."""
    fx, fy, cx, cy = intr
    c = T_cam_obj[:3, :3] @ bbox_centre_obj("lego") + T_cam_obj[:3, 3]
    a = c + 0.01 * T_cam_obj[:3, 2]
    uv = lambda p: np.array([fx * p[0] / p[2] + cx, fy * p[1] / p[2] + cy])  # noqa: E731
    c_px, d = uv(c), uv(a) - uv(c)
    length = float(np.linalg.norm(d))
    share = length / (0.01 * fx / c[2])
    return c_px, d / max(length, 1e-9), share


# (rgb, depth at the window's pixels, window, centre_px, axis, centre_z, fx) -> (5, WAY_PX, WAY_PX):
# centred on centre_px (full-resolution px), turned so that `axis` (a unit image direction) is +u.
canonical_crop = partial(turned_crop, px=WAY_PX, side_mm=WAY_MM, depth_scale_m=DEPTH_SCALE_M)


def lego_window(centre_px: np.ndarray, z_m: float, intr: Intrinsics) -> CropWindow:
    """The window the training crops were cached in (crops.scene_crops), so that a crop cut here is
    resampled the way the training ones were."""
    return window_for(centre_px, z_m, crop_side_m("lego") * CACHE_MARGIN, intr, CACHE_PX)


class WayRound:
    """The trained net; `look` applies it to one frame."""

    def __init__(self, net: WayRoundNet, dispatch: Dispatch | None = None) -> None:
        """dispatch: where the forward pass runs (object_map.ObjectMap.on_caller; default: here)."""
        self.net = net.eval()
        self._forward = (dispatch or here)(numpy_forward(self.net))

    def look(self, rgb: np.ndarray, depth_m: np.ndarray, intr: Intrinsics) -> WayRoundLook:
        return WayRoundLook(self._forward, rgb, depth_m, intr)


class WayRoundLook:
    """The net on one frame: the choice between a side-lying lego's pose and its half-turned twin,
    and the stud axis's offset. Each pose's outputs are kept, so the pose the choice kept is not cut
    and run through the net again when its stud axis is measured (one per side-lying lego)."""

    def __init__(
        self,
        forward: Callable[[np.ndarray], np.ndarray],
        rgb: np.ndarray,
        depth_m: np.ndarray,
        intr: Intrinsics,
    ) -> None:
        """forward: the net's (B, C, H, W) crops -> (B, 2) outputs."""
        self.forward, self.rgb, self.intr = forward, rgb, intr
        self.depth_m = np.asarray(depth_m, np.float32)
        self._outputs: dict[bytes, np.ndarray | None] = {}

    def prefer_first(self, T_a: np.ndarray, T_b: np.ndarray) -> float | None:
        """Logit margin of pose T_a over T_b (> 0: T_a is the right way round), or None when the stud
        axis does not show in the image."""
        a, b = self._run(T_a, T_b)
        return None if a is None or b is None else float(a[0] - b[0])

    def axis_offset_deg(self, T: np.ndarray) -> float | None:
        """The image angle (degrees, from the pose's projected stud axis toward the image's +v turn)
        by which the true stud axis lies off the pose's, or None when the axis does not show."""
        (out,) = self._run(T)
        return None if out is None else float(out[1]) * ANGLE_SCALE_DEG

    def _run(self, *poses: np.ndarray) -> list[np.ndarray | None]:
        """The net's outputs (2,) per pose, None where its stud axis does not show; poses not seen
        before go through the net in one batch."""
        new = {T.tobytes(): T for T in poses if T.tobytes() not in self._outputs}
        crops = {key: self._crop(T) for key, T in new.items()}
        shown = [key for key, crop in crops.items() if crop is not None]
        self._outputs.update(dict.fromkeys(crops.keys() - set(shown)))
        if shown:
            out = self.forward(np.stack([crops[key] for key in shown]))
            self._outputs.update(zip(shown, out, strict=True))
        return [self._outputs[T.tobytes()] for T in poses]

    def _crop(self, T: np.ndarray) -> np.ndarray | None:
        intr = self.intr
        centre, axis, share = stud_axis_px(T, np.array([intr.fx, intr.fy, intr.cx, intr.cy]))
        if share < MIN_AXIS_SHARE:
            return None
        z = float((T[:3, :3] @ bbox_centre_obj("lego") + T[:3, 3])[2])
        w = lego_window(centre, z, intr)
        rgb_w, depth_w = w.cut(self.rgb, self.depth_m)
        return canonical_crop(rgb_w, depth_w, w, centre, axis, z, intr.fx)


def image_angle_deg(T: np.ndarray, intr: Intrinsics) -> float:
    """Image angle of the pose's projected stud axis (degrees, from +u toward +v)."""
    _, axis, _ = stud_axis_px(T, np.array([intr.fx, intr.fy, intr.cx, intr.cy]))
    return math.degrees(math.atan2(axis[1], axis[0]))


def turn_axis(axis: np.ndarray, deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([c * axis[0] - s * axis[1], s * axis[0] + c * axis[1]])
