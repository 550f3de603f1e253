"""Rotation helpers shared by training (torch) and inference (numpy).

The network predicts *allocentric* rotations: the object's rotation relative to the viewing ray
through its centre, not relative to the optical axis. An object looks the same wherever it sits in
the image for a given allocentric rotation, which is what a translation-equivariant (convolutional)
network can learn; the egocentric pose follows from the ray: R_cam_obj = R_ray @ R_allo.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import torch

from graspstack.catalogue import CATALOGUE, CLASS_NAMES
from graspstack.object_models import object_model

N_SYM = 4  # largest symmetry group of the catalogue; smaller groups are padded by repetition


@cache
def bbox_centre_obj(class_name: str) -> np.ndarray:
    """Object-frame centre of the model's bounding box (keypoint 9): what the network votes for."""
    m = object_model(class_name)
    return (m.bbox_min + m.bbox_max) / 2.0


@cache
def symmetry_table() -> torch.Tensor:
    """(C, N_SYM, 3, 3) symmetry rotations per class index, padded with the identity."""
    out = np.tile(np.eye(3), (len(CLASS_NAMES), N_SYM, 1, 1))
    for i, name in enumerate(CLASS_NAMES):
        syms = CATALOGUE[name].symmetries
        for k in range(N_SYM):
            out[i, k] = syms[k % len(syms)]
    return torch.tensor(out, dtype=torch.float32)


def ray_rotation(d: np.ndarray) -> np.ndarray:
    """(..., 3) ray directions to (..., 3, 3) rotations taking +z onto them (smallest rotation)."""
    d = d / np.linalg.norm(d, axis=-1, keepdims=True)
    x, y, z = d[..., 0], d[..., 1], d[..., 2]
    k = 1.0 / (1.0 + z)  # rays stay within ~60 deg of the axis, so 1 + z never vanishes
    R = np.empty((*d.shape[:-1], 3, 3))
    R[..., 0, 0], R[..., 0, 1], R[..., 0, 2] = 1 - k * x * x, -k * x * y, x
    R[..., 1, 0], R[..., 1, 1], R[..., 1, 2] = -k * x * y, 1 - k * y * y, y
    R[..., 2, 0], R[..., 2, 1], R[..., 2, 2] = -x, -y, z
    return R


def ray_rotation_torch(d: torch.Tensor) -> torch.Tensor:
    d = d / d.norm(dim=-1, keepdim=True)
    x, y, z = d.unbind(-1)
    k = 1.0 / (1.0 + z)
    row0 = torch.stack([1 - k * x * x, -k * x * y, x], -1)
    row1 = torch.stack([-k * x * y, 1 - k * y * y, y], -1)
    row2 = torch.stack([-x, -y, z], -1)
    return torch.stack([row0, row1, row2], -2)


def rot6d_to_matrix(r6: torch.Tensor) -> torch.Tensor:
    """(..., 6) two columns -> (..., 3, 3) rotation by Gram-Schmidt (Zhou et al., continuous in 6D)."""
    a, b = r6[..., :3], r6[..., 3:]
    x = torch.nn.functional.normalize(a, dim=-1)
    y = torch.nn.functional.normalize(b - (x * b).sum(-1, keepdim=True) * x, dim=-1)
    z = torch.cross(x, y, dim=-1)
    return torch.stack([x, y, z], dim=-1)


def symmetric_rotation_loss(R_pred: torch.Tensor, R_gt: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
    """Per-sample min over the class's symmetries S of |R_pred - R_gt S|_F^2 (the last dims 3x3).

    The min means the network may settle on any of the equivalent answers; training does not fight
    a symmetry the image cannot resolve. R_pred, R_gt: (N, 3, 3); cls: (N,) class indices.
    """
    S = symmetry_table().to(R_gt)[cls]  # (N, K, 3, 3)
    targets = R_gt[:, None] @ S
    d = ((R_pred[:, None] - targets) ** 2).sum(dim=(-1, -2))
    return d.min(dim=1).values


def canonical_symmetric(R: np.ndarray, R_ref: np.ndarray, class_name: str) -> np.ndarray:
    """The symmetric equivalent R S closest to R_ref, so several estimates can be averaged.

    R is one rotation (3, 3) or a stack (..., 3, 3): a symmetric object's cells are turned in one
    call (a jenga covers a hundred cells, each once a Python loop over its four symmetries).
    """
    cands = R[..., None, :, :] @ np.stack(CATALOGUE[class_name].symmetries)  # (..., K, 3, 3)
    best = np.sum((cands - R_ref) ** 2, axis=(-2, -1)).argmin(axis=-1)  # first of equals, as min()
    return np.take_along_axis(cands, best[..., None, None, None], axis=-3)[..., 0, :, :]
