"""Camera model glue between OpenCV conventions (our contract) and PyBullet's OpenGL renderer."""

from __future__ import annotations

import numpy as np

from graspstack.frames import Intrinsics
from graspstack.geometry import invert_transform

NEAR_M = 0.05
FAR_M = 5.0

# OpenCV camera axes (x right, y down, z forward) to OpenGL camera axes (x right, y up, z backward).
_CV_TO_GL = np.diag([1.0, -1.0, -1.0, 1.0])


def look_at(eye, target, roll_deg: float = 0.0) -> np.ndarray:
    """T_world_cam (OpenCV axes) for a camera at eye looking at target, rolled about its optical axis."""
    eye, target = np.asarray(eye, float), np.asarray(target, float)
    z = target - eye
    z /= np.linalg.norm(z)
    # Any reference "up" not parallel to z; roll then sets the final image orientation.
    ref = np.array([0.0, 1.0, 0.0]) if abs(z[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    x = np.cross(ref, z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    c, s = np.cos(np.radians(roll_deg)), np.sin(np.radians(roll_deg))
    x, y = c * x + s * y, -s * x + c * y
    T = np.eye(4)
    T[:3, :3] = np.stack([x, y, z], axis=1)
    T[:3, 3] = eye
    return T


def view_matrix(T_world_cam: np.ndarray) -> list[float]:
    """PyBullet view matrix (world to OpenGL eye, column-major) for an OpenCV camera pose."""
    V = invert_transform(T_world_cam @ _CV_TO_GL)
    return V.T.reshape(-1).tolist()


def projection_matrix(intr: Intrinsics, near: float = NEAR_M, far: float = FAR_M) -> list[float]:
    """OpenGL projection honouring fx, fy, cx, cy exactly.

    PyBullet's TinyRenderer samples pixel (u, v) at window coordinates (u, H - 1 - v + 1), i.e. at
    integer positions with rows flipped, so the OpenCV pixel-centre convention needs cx as is and
    cy shifted by one pixel. Measured: silhouettes projected with our pinhole model then coincide
    with the rendered masks to within about 0.2 px (tests/lab/test_camera.py).
    """
    W, H = intr.width, intr.height
    P = np.zeros((4, 4))
    P[0, 0] = 2.0 * intr.fx / W
    P[1, 1] = 2.0 * intr.fy / H
    P[0, 2] = 1.0 - 2.0 * intr.cx / W
    P[1, 2] = 2.0 * (intr.cy + 1.0) / H - 1.0
    P[2, 2] = -(far + near) / (far - near)
    P[2, 3] = -2.0 * far * near / (far - near)
    P[3, 2] = -1.0
    return P.T.reshape(-1).tolist()


def linearize_depth(zbuffer: np.ndarray, near: float = NEAR_M, far: float = FAR_M) -> np.ndarray:
    """OpenGL z-buffer in [0, 1] to metric depth along the optical axis; background becomes 0."""
    z = far * near / (far - (far - near) * zbuffer)
    z[zbuffer >= 0.99999] = 0.0
    return z.astype(np.float32)
