"""Training CropNet on cached object crops: jittered windows, symmetry-aware correspondence loss.

Each step cuts a window out of every sampled cached crop with a random centre shift and scale (the
errors a stage-1 proposal makes), back-projects its depth, and builds the targets at the output
stride: the centred object's visible mask and, on it, the object-frame coordinates of the seen points
(`R^T (p - t)` from the lab's ground-truth pose). For symmetric classes the coordinates are only known
up to the symmetry group, so the loss takes the best of the group's equivalent targets per crop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from graspstack.pose_model.budget import train_for
from graspstack.pose_model.crop_net import COORD_SCALE_M, CROP_STRIDE, CropNet, crop_input
from graspstack.pose_model.crops import (
    CACHE_MARGIN,
    CACHE_PX,
    CROP_PX,
    CropArrays,
    CropWindow,
    back_project_crop,
)
from graspstack.pose_model.geometry import symmetry_table

CENTRE_JITTER = 0.15  # of the crop side, uniform
SCALE_JITTER = (0.85, 1.2)
DEPTH_JITTER_M = 0.01


@dataclass
class CropBatch:
    x: torch.Tensor  # (B, 7, S, S)
    cls: torch.Tensor  # (B,)
    mask: torch.Tensor  # (B, S/2, S/2) float
    coords: torch.Tensor  # (B, 3, S/2, S/2) object coordinates / COORD_SCALE_M
    valid: torch.Tensor  # (B, S/2, S/2) float: mask and a depth reading


def jittered_windows(data: CropArrays, idx: np.ndarray, rng: np.random.Generator | None) -> list[CropWindow]:
    """Per sample: the window to cut, in cached-crop pixels (no jitter when rng is None)."""
    nominal = CACHE_PX / CACHE_MARGIN
    out = []
    for _ in idx:
        if rng is None:
            cx = cy = CACHE_PX / 2 - 0.5
            side = nominal
        else:
            cx, cy = CACHE_PX / 2 - 0.5 + rng.uniform(-CENTRE_JITTER, CENTRE_JITTER, 2) * nominal
            side = nominal * rng.uniform(*SCALE_JITTER)
        out.append(CropWindow.around(np.array([cx, cy]), side, CROP_PX))
    return out


def make_crop_batch(data: CropArrays, idx: np.ndarray, rng: np.random.Generator | None) -> CropBatch:
    windows = jittered_windows(data, idx, rng)
    n = len(idx)
    rgb = np.empty((n, CROP_PX, CROP_PX, 3), np.uint8)
    points = np.empty((n, CROP_PX, CROP_PX, 3), np.float32)
    mask = np.empty((n, CROP_PX, CROP_PX), np.uint8)
    ref = np.empty((n, 3), np.float32)
    for b, (i, w) in enumerate(zip(idx, windows, strict=True)):
        depth = data.depth_mm[i].astype(np.float32) / 1000.0
        rgb[b], depth_c, mask[b] = w.cut(data.rgb[i], depth, data.mask[i].astype(np.uint8))
        cached = CropWindow(*data.window[i], CACHE_PX)
        full = CropWindow(
            cached.x0 + w.x0 * cached.step, cached.y0 + w.y0 * cached.step, w.step * cached.step, CROP_PX
        )
        points[b] = back_project_crop(depth_c, full, data.intr[i])
        u = full.x0 + (CROP_PX / 2 - 0.5) * full.step
        v = full.y0 + (CROP_PX / 2 - 0.5) * full.step
        z = data.centre_z[i] + (rng.normal(0.0, DEPTH_JITTER_M) if rng is not None else 0.0)
        fx, fy, cx, cy = data.intr[i]
        ref[b] = [(u - cx) / fx * z, (v - cy) / fy * z, z]
    if rng is not None:  # light: overall gain and a per-channel tint
        gain = rng.uniform(0.75, 1.25, (n, 1, 1, 1)) * rng.uniform(0.92, 1.08, (n, 1, 1, 3))
        rgb = np.clip(rgb.astype(np.float32) * gain, 0, 255).astype(np.uint8)
    x = crop_input(rgb, points, ref, data.side_m[idx])
    s = CROP_STRIDE
    p = points[:, ::s, ::s]
    m = mask[:, ::s, ::s].astype(bool)
    R, t = data.rot[idx], data.pos[idx]
    obj = np.einsum("bji,bhwj->bhwi", R, p - t[:, None, None, :]) / COORD_SCALE_M
    valid = m & (p[..., 2] > 0)
    return CropBatch(
        x=torch.from_numpy(x),
        cls=torch.from_numpy(data.cls[idx].astype(np.int64)),
        mask=torch.from_numpy(m.astype(np.float32)),
        coords=torch.from_numpy(np.ascontiguousarray(np.moveaxis(obj, -1, 1), dtype=np.float32)),
        valid=torch.from_numpy(valid.astype(np.float32)),
    )


def crop_losses(logits: torch.Tensor, dense: torch.Tensor, batch: CropBatch) -> dict[str, torch.Tensor]:
    cls_loss = torch.nn.functional.cross_entropy(logits, batch.cls)
    mask_loss = torch.nn.functional.binary_cross_entropy_with_logits(dense[:, 0], batch.mask)
    pos = batch.cls > 0
    if not bool(pos.any()):
        return {"cls": cls_loss, "mask": mask_loss, "coord": dense.sum() * 0.0}
    pred = dense[pos, 1:]  # (P, 3, h, w)
    syms = symmetry_table()[batch.cls[pos] - 1]  # (P, K, 3, 3)
    targets = torch.einsum("pkji,pjhw->pkihw", syms, batch.coords[pos])  # S^T X for each symmetry
    err = torch.nn.functional.smooth_l1_loss(
        pred[:, None].expand_as(targets), targets, reduction="none", beta=0.02
    ).sum(2)  # (P, K, h, w)
    valid = batch.valid[pos][:, None]
    per_sym = (err * valid).sum((2, 3)) / valid.sum((2, 3)).clamp(min=1.0)
    coord_loss = per_sym.min(dim=1).values.mean()
    return {"cls": cls_loss, "mask": mask_loss, "coord": coord_loss}


def total_crop_loss(losses: dict[str, torch.Tensor]) -> torch.Tensor:
    return losses["cls"] + losses["mask"] + 5.0 * losses["coord"]


def blended(start: torch.nn.Module, tuned: torch.nn.Module, share_tuned: float) -> torch.nn.Module:
    """`tuned` with every weight moved back towards `start`'s: share_tuned of the fine-tuned value,
    the rest of the starting one (weight-space ensembling, as WiSE-FT). `tuned` must have been
    fine-tuned from `start`: both then lie in one basin, and the average is a network of its own that
    keeps most of what the fine-tuning gained and of what it forgot (v12: the mined fine-tune alone
    lost 6 nominal objects of 1,475 on validation, half of it none). Integer buffers (batch counts)
    are tuned's."""
    a, b = start.state_dict(), tuned.state_dict()
    tuned.load_state_dict(
        {k: torch.lerp(a[k], b[k], share_tuned) if b[k].is_floating_point() else b[k] for k in b}
    )
    return tuned


def train_crop_net(
    data: CropArrays,
    minutes: float,
    batch_size: int = 48,
    lr: float = 2e-3,
    width: int = 32,
    seed: int = 0,
    net: CropNet | None = None,
    sampler: Callable[[np.random.Generator, int], np.ndarray] | None = None,
    checkpoint: Path | None = None,
    log_every: int = 50,
) -> tuple[CropNet, dict]:
    """Train (or, given `net`, fine-tune) within `minutes`. `sampler(rng, n)` picks each batch's
    indices (default uniform): the flywheel uses it to mix new cases with a replay of old data."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = net or CropNet(width)
    sampler = sampler or (lambda r, n: r.integers(0, len(data), n))

    def step(elapsed: float):
        batch = make_crop_batch(data, sampler(rng, batch_size), rng)
        losses = crop_losses(*net(batch.x), batch)
        return total_crop_loss(losses), losses

    run = train_for(net, step, minutes, lr, "train crops", checkpoint, log_every=log_every)
    info = {
        "steps": run["steps"],
        "batch_size": batch_size,
        "samples_seen": run["steps"] * batch_size,
        "epochs": round(run["steps"] * batch_size / len(data), 2),
        "lr": lr,
        "seconds": run["seconds"],
        "loss_history": run["loss_history"],
    }
    return net, info
