"""The object catalogue of CONTRACTS section 1: classes, URDFs, sizes and symmetry groups."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from graspstack.geometry import rot_x, rot_y, rot_z


@dataclass(frozen=True)
class ObjectClass:
    name: str
    urdf: str  # relative to pybullet_data
    size_m: tuple[float, float, float]
    # Rotations S of the object frame with R * S indistinguishable from R (identity included).
    symmetries: tuple[np.ndarray, ...]


_IDENTITY = (np.eye(3),)

CATALOGUE: dict[str, ObjectClass] = {
    c.name: c
    for c in (
        ObjectClass("duck", "duck_vhacd.urdf", (0.09, 0.085, 0.066), _IDENTITY),
        ObjectClass("teddy", "teddy_vhacd.urdf", (0.084, 0.10, 0.071), _IDENTITY),
        ObjectClass("mug", "objects/mug.urdf", (0.088, 0.128, 0.106), _IDENTITY),
        ObjectClass("lego", "lego/lego.urdf", (0.032, 0.032, 0.023), tuple(rot_z(90 * k) for k in range(4))),
        ObjectClass(
            "jenga", "jenga/jenga.urdf", (0.15, 0.05, 0.03), (np.eye(3), rot_x(180), rot_y(180), rot_z(180))
        ),
    )
}

CLASS_NAMES: tuple[str, ...] = tuple(CATALOGUE)

# Distractor URDFs live under pybullet_data/random_urdfs/NNN/NNN.urdf (hard slice only).
DISTRACTOR_DIR = "random_urdfs"


def pybullet_data_path() -> str:
    import pybullet_data

    return pybullet_data.getDataPath()
