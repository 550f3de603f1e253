"""Training losses of PoseNet, all per output cell and averaged over the cells they apply to."""

from __future__ import annotations

import torch
from torch.nn import functional

from graspstack.pose_model.geometry import rot6d_to_matrix, symmetric_rotation_loss
from graspstack.pose_model.network import N_CLASSES, split_outputs
from graspstack.pose_model.targets import Batch

FG_WEIGHT = 3.0  # object cells are few (a lego is a handful of cells); weigh them up against the table
WEIGHTS = {"cls": 1.0, "offset": 1.0, "rot": 1.0, "dz": 0.5}


def pose_losses(out: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
    o = split_outputs(out)
    inst = batch.inst
    fg = inst > 0
    b_idx, y_idx, x_idx = torch.nonzero(fg, as_tuple=True)
    k = inst[b_idx, y_idx, x_idx] - 1
    cls = batch.cls[b_idx, k]

    target = torch.zeros_like(inst)
    target[b_idx, y_idx, x_idx] = cls + 1
    weight = torch.where(fg, FG_WEIGHT, 1.0)
    ce = functional.cross_entropy(o["logits"], target, reduction="none")
    losses = {"cls": (ce * weight).sum() / weight.sum()}
    assert o["logits"].shape[1] == N_CLASSES
    if len(b_idx) == 0:
        zero = out.sum() * 0.0
        return {**losses, "offset": zero, "rot": zero, "dz": zero}

    off_pred = o["offset"][b_idx, :, y_idx, x_idx]
    off_gt = batch.offset[b_idx, :, y_idx, x_idx]
    losses["offset"] = functional.smooth_l1_loss(off_pred / 8.0, off_gt / 8.0)

    r6 = o["rot6"][b_idx, :, y_idx, x_idx]
    R_pred = rot6d_to_matrix(r6)
    R_gt = batch.rot_allo[b_idx, k]
    losses["rot"] = symmetric_rotation_loss(R_pred, R_gt, cls).mean()

    valid = batch.dz_valid[b_idx, y_idx, x_idx]
    dz_pred = o["dz"][b_idx, y_idx, x_idx][valid]
    dz_gt = batch.dz[b_idx, y_idx, x_idx][valid]
    losses["dz"] = functional.smooth_l1_loss(dz_pred / 0.01, dz_gt / 0.01) if len(dz_gt) else out.sum() * 0.0
    return losses


def total_loss(losses: dict[str, torch.Tensor]) -> torch.Tensor:
    return sum(WEIGHTS[k] * v for k, v in losses.items())
