"""CropNet: the second stage. Per object crop, where on the object model each visible pixel lies.

Input: a CROP_PX x CROP_PX crop around one proposal (colour, the crop's depth as camera-frame points
relative to the proposal's centre, a depth-valid flag). Outputs:
- class logits of the centred object (background = not a catalogue object: a distractor, the table,
  or a proposal that missed);
- per output cell (stride 2): whether the cell shows the centred object (its visible mask), and the
  object-frame coordinates of the surface point seen there (dense correspondences to the model).

Together with the crop's depth those correspondences are 3D-3D pairs, and the pose follows from a
RANSAC rigid fit (correspond.py): a closed-form solve instead of a rotation regressed from pixels.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit
from torch import nn

from graspstack.catalogue import CLASS_NAMES
from graspstack.pose_model.crops import CROP_PX
from graspstack.pose_model.network import conv_bn, sep_bn

CROP_STRIDE = 2
CROP_IN_CHANNELS = 7  # RGB, x y z relative to the proposal centre, valid
N_CROP_CLASSES = 1 + len(CLASS_NAMES)
COORD_SCALE_M = 0.05  # object coordinates are predicted in units of 5 cm
OUT_HW = CROP_PX // CROP_STRIDE


class CropNet(nn.Module):
    def __init__(self, width: int = 32) -> None:
        super().__init__()
        w = width
        self.enc1 = nn.Sequential(conv_bn(CROP_IN_CHANNELS, w, 2), conv_bn(w, w))  # 32
        self.enc2 = nn.Sequential(conv_bn(w, 3 * w // 2, 2), conv_bn(3 * w // 2, 3 * w // 2))  # 16
        self.enc3 = nn.Sequential(conv_bn(3 * w // 2, 2 * w, 2), conv_bn(2 * w, 2 * w))  # 8
        self.enc4 = nn.Sequential(conv_bn(2 * w, 3 * w, 2), conv_bn(3 * w, 3 * w))  # 4
        self.cls = nn.Linear(3 * w, N_CROP_CLASSES)
        self.dec3 = conv_bn(3 * w + 2 * w, 2 * w)  # 8
        self.dec2 = sep_bn(2 * w + 3 * w // 2, 3 * w // 2)  # 16
        self.dec1 = nn.Sequential(sep_bn(3 * w // 2 + w, w), sep_bn(w, w))  # 32
        self.head = nn.Conv2d(w, 4, 1)  # mask logit, object x y z

    @staticmethod
    def _up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return nn.functional.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 7, 64, 64) -> class logits (B, C), dense (B, 4, 32, 32): mask logit, coords / 5 cm."""
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        e4 = self.enc4(e3)
        logits = self.cls(e4.mean(dim=(2, 3)))
        d3 = self.dec3(torch.cat([self._up(e4, e3), e3], 1))
        d2 = self.dec2(torch.cat([self._up(d3, e2), e2], 1))
        d1 = self.dec1(torch.cat([self._up(d2, e1), e1], 1))
        return logits, self.head(d1)


def crop_input(rgb: np.ndarray, points: np.ndarray, ref: np.ndarray, side_m: np.ndarray) -> np.ndarray:
    """(B, S, S, 3) uint8, (B, S, S, 3) camera points (z = 0: no reading), (B, 3) proposal centre,
    (B,) crop side -> (B, 7, S, S) float32. Points are shifted to the proposal and scaled by the crop
    side, so the network sees the object's shape at one scale whatever its distance.

    The array is a view of (B, S, S, 7) memory: channels last, the layout the folded convolutions
    take (torch.from_numpy keeps its strides), so neither NumPy nor the first convolution copies it
    to another layout. One compiled pass writes it (the NumPy expression took ~0.7 ms a batch of a
    hard frame's crops, with the GIL held), with the same float32 arithmetic."""
    x = _crop_channels(
        np.ascontiguousarray(rgb, np.uint8),
        np.ascontiguousarray(points, np.float32),
        np.ascontiguousarray(ref, np.float32),
        np.ascontiguousarray(side_m, np.float32),
    )
    return np.moveaxis(x, -1, 1)


@njit(cache=True, nogil=True)
def _crop_channels(rgb, points, ref, side_m):  # pragma: no cover - compiled
    """crop_input's channels, (B, S, S, 7): normalised colour, the points relative to the proposal in
    half crop sides (clipped to +-3, zero without a reading), the reading flag."""
    b_n, h, w = rgb.shape[0], rgb.shape[1], rgb.shape[2]
    out = np.empty((b_n, h, w, 7), np.float32)
    f255, mean, std = np.float32(255.0), np.float32(0.45), np.float32(0.25)
    half, lim, zero, one = np.float32(0.5), np.float32(3.0), np.float32(0.0), np.float32(1.0)
    for b in range(b_n):
        scale = half * side_m[b]
        for i in range(h):
            for j in range(w):
                for c in range(3):
                    out[b, i, j, c] = (np.float32(rgb[b, i, j, c]) / f255 - mean) / std
                valid = points[b, i, j, 2] > 0
                for c in range(3):
                    r = (points[b, i, j, c] - ref[b, c]) / scale
                    out[b, i, j, 3 + c] = min(max(r, -lim), lim) if valid else zero
                out[b, i, j, 6] = one if valid else zero
    return out
