"""Geometric models of the catalogue objects, read from their URDF visual meshes.

Everything here is in the object frame of CONTRACTS section 1 (the URDF link frame), so it can be
transformed by a pose T_cam_obj directly. Used by the lab (masks, keypoints, visible fraction), the
scripted baseline and, later, the pose model and the grasp planner.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from graspstack.catalogue import CATALOGUE, pybullet_data_path
from graspstack.geometry import make_transform, rot_x, rot_y, rot_z


@dataclass(frozen=True)
class ObjectModel:
    class_name: str
    vertices: np.ndarray  # (V, 3) metres, object frame
    faces: np.ndarray  # (F, 3) vertex indices

    @property
    def bbox_min(self) -> np.ndarray:
        return self.vertices.min(axis=0)

    @property
    def bbox_max(self) -> np.ndarray:
        return self.vertices.max(axis=0)

    @property
    def extent(self) -> np.ndarray:
        return self.bbox_max - self.bbox_min

    def keypoints(self) -> np.ndarray:
        """9 keypoints: the 8 corners of the axis-aligned bounding box, then its centre."""
        lo, hi = self.bbox_min, self.bbox_max
        corners = np.array(
            [[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
        )
        return np.vstack([corners, (lo + hi) / 2])

    def sample_surface(self, n: int, seed: int = 0) -> np.ndarray:
        """n points sampled uniformly (by area) on the mesh surface."""
        return self.sample_surface_with_faces(n, seed)[0]

    def sample_surface_with_faces(self, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """n points sampled uniformly (by area) on the mesh surface, and the face each lies on."""
        rng = np.random.default_rng(seed)
        tri = self.vertices[self.faces]
        area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
        idx = rng.choice(len(tri), size=n, p=area / area.sum())
        u, v = rng.random(n), rng.random(n)
        flip = u + v > 1
        u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
        t = tri[idx]
        return t[:, 0] + u[:, None] * (t[:, 1] - t[:, 0]) + v[:, None] * (t[:, 2] - t[:, 0]), idx


def _parse_obj(path: Path) -> tuple[np.ndarray, np.ndarray]:
    verts, faces = [], []
    for line in path.read_text(errors="ignore").splitlines():
        if line.startswith("v "):
            verts.append([float(x) for x in line.split()[1:4]])
        elif line.startswith("f "):
            idx = [int(tok.split("/")[0]) for tok in line.split()[1:]]
            idx = [i - 1 if i > 0 else len(verts) + i for i in idx]
            faces.extend([idx[0], idx[k], idx[k + 1]] for k in range(1, len(idx) - 1))
    return np.asarray(verts, dtype=np.float64), np.asarray(faces, dtype=np.int64)


def _origin_transform(origin: ET.Element | None) -> np.ndarray:
    if origin is None:
        return np.eye(4)
    xyz = [float(v) for v in origin.get("xyz", "0 0 0").split()]
    r, p, y = (float(v) for v in origin.get("rpy", "0 0 0").split())
    # URDF rpy: fixed-axis roll about x, then pitch about y, then yaw about z.
    return make_transform(rot_z(np.degrees(y)) @ rot_y(np.degrees(p)) @ rot_x(np.degrees(r)), xyz)


def load_urdf_visual(urdf_path: str | Path, class_name: str = "") -> ObjectModel:
    """The first link's visual mesh, scaled and placed by its visual origin, in the link frame."""
    urdf_path = Path(urdf_path)
    visual = ET.parse(urdf_path).getroot().find("link/visual")
    mesh = visual.find("geometry/mesh")
    scale = np.array([float(s) for s in mesh.get("scale", "1 1 1").split()])
    verts, faces = _parse_obj(urdf_path.parent / mesh.get("filename"))
    T = _origin_transform(visual.find("origin"))
    verts = (verts * scale) @ T[:3, :3].T + T[:3, 3]
    return ObjectModel(class_name, verts, faces)


@cache
def object_model(class_name: str) -> ObjectModel:
    return load_urdf_visual(Path(pybullet_data_path()) / CATALOGUE[class_name].urdf, class_name)
