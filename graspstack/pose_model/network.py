"""PoseNet: one small fully-convolutional network over the whole downscaled RGB-D frame.

One forward pass gives, per output cell (stride 4 of the 320x240 input):
- class logits (background + 5 catalogue classes): which object the pixel belongs to;
- a 2D offset to the object's projected bbox centre: pixels of one instance vote for one point, so
  touching objects of the same class separate by clustering the votes;
- an allocentric rotation in the continuous 6D representation (two matrix columns);
- the camera depth of the object's centre relative to the pixel's own depth (a translation prior).

A single shared network keeps latency low on a 2-core CPU (no per-object second pass); the depth
based refinement in refine.py turns its coarse poses into millimetre ones.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from graspstack.catalogue import CLASS_NAMES

INPUT_HW = (240, 320)
OUTPUT_STRIDE = 4
IN_CHANNELS = 7  # RGB, depth, depth-valid flag, ray x, ray y
N_CLASSES = 1 + len(CLASS_NAMES)
# Output layout: class logits, centre offset (2), rotation 6D (6), centre depth offset (1).
OUT_CHANNELS = N_CLASSES + 2 + 6 + 1
OFFSET_SCALE_PX = 32.0  # offsets are predicted in units of 32 input pixels, depth in 5 cm
DEPTH_OFFSET_SCALE_M = 0.05
DEPTH_MEAN_M, DEPTH_STD_M = 0.7, 0.2


def conv_bn(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def eighth_body(cin: int, w: int, last_conv: bool = False) -> nn.Sequential:
    """The frame nets' body (wayround.py, handle.py): three stride-2 stages of w, 2w, 2w channels, an
    eighth of the input's side; `last_conv` adds one more convolution at that size."""
    layers = [
        conv_bn(cin, w, 2),
        conv_bn(w, w),
        conv_bn(w, 2 * w, 2),
        conv_bn(2 * w, 2 * w),
        conv_bn(2 * w, 2 * w, 2),
    ]
    return nn.Sequential(*layers, *([conv_bn(2 * w, 2 * w)] if last_conv else []))


def numpy_forward(net: nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    """net as a function of a numpy batch, run without autograd on one thread, answering numpy: how
    the small per-object nets are called (handle.py, wayround.py, studs.py), so a dispatcher can carry
    the call to another thread (object_map.ObjectMap.on_caller; inference mode is per thread, so it
    goes along).

    One thread: these run while the object map's workers refine other objects, and a two-thread
    forward pass leaves OpenMP's second thread spinning on a core for a while after it (~24 ms of CPU
    a hard frame, measured). Hard validation frames, interleaved runs: refinement 47 -> 41 ms a mean
    frame, p99 of the frame 160 -> 144 ms; a one- or two-crop batch is no slower on one thread."""

    def forward(x: np.ndarray) -> np.ndarray:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with torch.inference_mode():
                return net(torch.from_numpy(x)).numpy()
        finally:
            torch.set_num_threads(threads)

    return forward


def sep_bn(cin: int, cout: int) -> nn.Sequential:
    """Pointwise then depthwise 3x3: a fraction of a full 3x3 conv's cost at high resolution."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, groups=cout, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class PoseNet(nn.Module):
    """Encoder to stride 32, decoder with skips back to stride 4."""

    def __init__(self, width: int = 24) -> None:
        super().__init__()
        w = width
        self.enc1 = nn.Sequential(conv_bn(IN_CHANNELS, w // 2, 2), conv_bn(w // 2, w, 2), sep_bn(w, w))  # /4
        self.enc2 = nn.Sequential(conv_bn(w, 2 * w, 2), conv_bn(2 * w, 2 * w))  # /8
        self.enc3 = nn.Sequential(conv_bn(2 * w, 3 * w, 2), conv_bn(3 * w, 3 * w))  # /16
        # Dilations widen the receptive field to cover the largest object (jenga, 200+ px) cheaply.
        self.enc4 = nn.Sequential(conv_bn(3 * w, 4 * w, 2), conv_bn(4 * w, 4 * w, dilation=2))  # /32
        self.dec3 = conv_bn(4 * w + 3 * w, 3 * w)
        self.dec2 = sep_bn(3 * w + 2 * w, 2 * w)
        self.dec1 = nn.Sequential(sep_bn(2 * w + w, w + w // 2), sep_bn(w + w // 2, w + w // 2))
        self.head = nn.Conv2d(w + w // 2, OUT_CHANNELS, 1)

    @staticmethod
    def _up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return nn.functional.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        e4 = self.enc4(e3)
        d3 = self.dec3(torch.cat([self._up(e4, e3), e3], 1))
        d2 = self.dec2(torch.cat([self._up(d3, e2), e2], 1))
        d1 = self.dec1(torch.cat([self._up(d2, e1), e1], 1))
        return self.head(d1)


def split_outputs(out: torch.Tensor) -> dict[str, torch.Tensor]:
    c = N_CLASSES
    return {
        "logits": out[:, :c],
        "offset": out[:, c : c + 2] * OFFSET_SCALE_PX,
        "rot6": out[:, c + 2 : c + 8],
        "dz": out[:, c + 8] * DEPTH_OFFSET_SCALE_M,
    }


def make_input(rgb: np.ndarray, depth_m: np.ndarray, intr: np.ndarray) -> np.ndarray:
    """(..., H, W, 3) uint8 RGB, (..., H, W) metres, (..., 4) fx fy cx cy -> (..., 7, H, W) float32.

    The ray channels tell the network where each pixel looks, so it can tell camera tilt and
    perspective apart; with them one network serves every intrinsics of the envelope.
    """
    h, w = depth_m.shape[-2:]
    fx, fy, cx, cy = (intr[..., i, None, None] for i in range(4))
    u = np.arange(w, dtype=np.float32)[None, :]
    v = np.arange(h, dtype=np.float32)[:, None]
    ray_x = np.broadcast_to((u - cx) / fx, depth_m.shape)
    ray_y = np.broadcast_to((v - cy) / fy, depth_m.shape)
    valid = (depth_m > 0).astype(np.float32)
    depth = np.where(valid > 0, (depth_m - DEPTH_MEAN_M) / DEPTH_STD_M, 0.0)
    colour = (np.moveaxis(rgb, -1, -3).astype(np.float32) / 255.0 - 0.45) / 0.25
    return np.concatenate(
        [colour, np.stack([depth, valid, ray_x * 3.0, ray_y * 3.0], axis=-3)], axis=-3
    ).astype(np.float32)
