"""Batches for training: random crops of cached scenes, augmentation, and per-cell targets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from graspstack.pose_model.data import SceneArrays
from graspstack.pose_model.geometry import ray_rotation
from graspstack.pose_model.network import OUTPUT_STRIDE, make_input

CROP_HW = (160, 192)  # training crops: a third of the frame's cost, still wider than any object


@dataclass
class Batch:
    x: torch.Tensor  # (B, 7, H, W)
    inst: torch.Tensor  # (B, h, w) long: 0 background, k = object k-1
    cls: torch.Tensor  # (B, K) long, -1 padding
    offset: torch.Tensor  # (B, 2, h, w) vector from cell to its object's centre, input pixels
    rot_allo: torch.Tensor  # (B, K, 3, 3) allocentric rotation per object
    dz: torch.Tensor  # (B, h, w) object centre depth minus the cell's depth, metres
    dz_valid: torch.Tensor  # (B, h, w) bool


def _augment_colour(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per-channel gain, brightness and noise: the hard slice's lights vary far more than nominal."""
    b = len(rgb)
    gain = rng.uniform(0.8, 1.2, size=(b, 1, 1, 3)) * rng.uniform(0.6, 1.4, size=(b, 1, 1, 1))
    out = rgb.astype(np.float32) * gain + rng.normal(0, 3.0, size=rgb.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def make_batch(
    data: SceneArrays, idx: np.ndarray, rng: np.random.Generator, crop: tuple[int, int] | None = CROP_HW
) -> Batch:
    s = OUTPUT_STRIDE
    H, W = data.rgb.shape[1:3]
    ch, cw = crop if crop else (H, W)
    # Crop origins on the output grid so the cached instance map lines up with the crop.
    y0 = rng.integers(0, (H - ch) // s + 1, size=len(idx)) * s
    x0 = rng.integers(0, (W - cw) // s + 1, size=len(idx)) * s
    rgb = np.stack([data.rgb[i, y : y + ch, x : x + cw] for i, y, x in zip(idx, y0, x0, strict=True)])
    depth = (
        np.stack(
            [data.depth_mm[i, y : y + ch, x : x + cw] for i, y, x in zip(idx, y0, x0, strict=True)]
        ).astype(np.float32)
        / 1000.0
    )
    inst = np.stack(
        [
            data.inst[i, y // s : (y + ch) // s, x // s : (x + cw) // s]
            for i, y, x in zip(idx, y0, x0, strict=True)
        ]
    ).astype(np.int64)
    intr = data.intr[idx].copy()
    intr[:, 2] -= x0
    intr[:, 3] -= y0
    if crop:
        rgb = _augment_colour(rgb, rng)
    x = make_input(rgb, depth, intr)

    centre = data.centre_px[idx] - np.stack([x0, y0], 1)[:, None].astype(np.float32)  # (B, K, 2)
    fx, fy, cx, cy = (intr[:, i, None] for i in range(4))
    rays = np.stack(
        [(centre[..., 0] - cx) / fx, (centre[..., 1] - cy) / fy, np.ones_like(cx + centre[..., 0])], -1
    )
    rot_allo = np.swapaxes(ray_rotation(rays), -1, -2) @ data.rot[idx]

    h, w = inst.shape[1:]
    u = (np.arange(w) * s + (s - 1) / 2.0)[None, None, :]
    v = (np.arange(h) * s + (s - 1) / 2.0)[None, :, None]
    k = np.maximum(inst - 1, 0)
    b = np.arange(len(idx))[:, None, None]
    off = np.stack([centre[b, k, 0] - u, centre[b, k, 1] - v], 1)
    cell_depth = depth[:, s // 2 :: s, s // 2 :: s][:, :h, :w]
    dz = data.centre_z[idx][b, k] - cell_depth
    return Batch(
        x=torch.from_numpy(x),
        inst=torch.from_numpy(inst),
        cls=torch.from_numpy(data.cls[idx]),
        offset=torch.from_numpy(off.astype(np.float32)),
        rot_allo=torch.from_numpy(rot_allo.astype(np.float32)),
        dz=torch.from_numpy(dz.astype(np.float32)),
        dz_valid=torch.from_numpy((inst > 0) & (cell_depth > 0)),
    )
