"""The simulated tabletop cell: table, objects dropped and settled by physics, a camera, ground truth.

One `LabCell` owns one PyBullet client (DIRECT, CPU renderer). It is reset before every scene so a
scene depends only on its `SceneSpec`, never on what the process rendered before.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pybullet as pb

from graspstack.catalogue import CATALOGUE, DISTRACTOR_DIR, pybullet_data_path
from graspstack.frames import Intrinsics
from graspstack.geometry import invert_transform, pose_to_transform
from lab.camera import linearize_depth, look_at, projection_matrix, view_matrix
from lab.envelope import SceneSpec

TABLE_HALF_EXTENTS = (0.75, 0.5, 0.02)  # top surface at z = 0
TIME_STEP = 1.0 / 240.0
MAX_SETTLE_STEPS = 1200
REST_SPEED = 0.005  # m/s and rad/s under which a body counts as settled
IMAGE_SIZE = (640, 480)


@dataclass
class Body:
    body_id: int
    kind: str  # "object" or "distractor"
    name: str  # class name or distractor id


def _texture_files() -> list[str]:
    """Four procedural table textures (wood grain, checker, speckle, stripes), made once per machine."""
    folder = Path(tempfile.gettempdir()) / "graspstack_textures_v1"
    folder.mkdir(exist_ok=True)
    paths = [folder / f"table_{i}.png" for i in range(4)]
    if all(p.exists() for p in paths):
        return [str(p) for p in paths]
    rng = np.random.default_rng(1234)
    yy, xx = np.mgrid[0:256, 0:256].astype(np.float32)
    wood = 0.5 + 0.5 * np.sin(xx / 6.0 + 3 * np.sin(yy / 40.0))
    checker = (((xx // 32) + (yy // 32)) % 2).astype(np.float32)
    speckle = cv2.GaussianBlur(rng.random((256, 256)).astype(np.float32), (0, 0), 2.0)
    speckle = (speckle - speckle.min()) / (np.ptp(speckle) + 1e-6)
    stripes = (np.sin(yy / 4.0) > 0).astype(np.float32)
    for p, img in zip(paths, (wood, checker, speckle, stripes), strict=True):
        grey = (80 + 150 * img).astype(np.uint8)
        # Each writer has its own temporary name, so parallel workers racing here each
        # rename a whole file of their own into place (the last rename wins, all identical).
        tmp = p.with_name(f"{p.stem}.{os.getpid()}.tmp.png")
        cv2.imwrite(str(tmp), cv2.merge([grey, grey, grey]))
        tmp.replace(p)
    return [str(p) for p in paths]


class LabCell:
    def __init__(self) -> None:
        self.client = pb.connect(pb.DIRECT)
        self.data_path = pybullet_data_path()
        self.bodies: list[Body] = []
        self.table_id = -1

    def close(self) -> None:
        pb.disconnect(self.client)

    # -- building a scene -------------------------------------------------------------------------
    def reset(self, spec: SceneSpec) -> None:
        c = self.client
        pb.resetSimulation(physicsClientId=c)
        pb.setAdditionalSearchPath(self.data_path, physicsClientId=c)
        pb.setGravity(0, 0, -9.81, physicsClientId=c)
        pb.setTimeStep(TIME_STEP, physicsClientId=c)
        col = pb.createCollisionShape(pb.GEOM_BOX, halfExtents=TABLE_HALF_EXTENTS, physicsClientId=c)
        vis = pb.createVisualShape(
            pb.GEOM_BOX, halfExtents=TABLE_HALF_EXTENTS, rgbaColor=spec.table_rgba, physicsClientId=c
        )
        self.table_id = pb.createMultiBody(
            0, col, vis, basePosition=[0, 0, -TABLE_HALF_EXTENTS[2]], physicsClientId=c
        )
        pb.changeDynamics(self.table_id, -1, lateralFriction=0.8, physicsClientId=c)
        if spec.table_texture is not None:
            tex = pb.loadTexture(_texture_files()[spec.table_texture], physicsClientId=c)
            pb.changeVisualShape(self.table_id, -1, textureUniqueId=tex, physicsClientId=c)
        self.bodies = []
        for drop in spec.drops:
            urdf = (
                CATALOGUE[drop.name].urdf
                if drop.kind == "object"
                else f"{DISTRACTOR_DIR}/{drop.name}/{drop.name}.urdf"
            )
            body = pb.loadURDF(urdf, [*drop.xy, drop.height_m], drop.quaternion_xyzw, physicsClientId=c)
            self.bodies.append(Body(body, drop.kind, drop.name))

    def settle(self) -> None:
        """Step physics until every body rests, then drop bodies that fell off the table."""
        c = self.client
        for step in range(MAX_SETTLE_STEPS):
            pb.stepSimulation(physicsClientId=c)
            if step % 24 == 23 and self._all_at_rest():
                break
        kept = []
        for b in self.bodies:
            pos, _ = pb.getBasePositionAndOrientation(b.body_id, physicsClientId=c)
            if pos[2] < -0.005 or abs(pos[0]) > TABLE_HALF_EXTENTS[0] or abs(pos[1]) > TABLE_HALF_EXTENTS[1]:
                pb.removeBody(b.body_id, physicsClientId=c)
            else:
                kept.append(b)
        self.bodies = kept

    def _all_at_rest(self) -> bool:
        for b in self.bodies:
            lin, ang = pb.getBaseVelocity(b.body_id, physicsClientId=self.client)
            if np.linalg.norm(lin) > REST_SPEED or np.linalg.norm(ang) > REST_SPEED * 10:
                return False
        return True

    def bodies_of_kind(self, kind: str) -> list[Body]:
        return [b for b in self.bodies if b.kind == kind]

    def remove(self, body: Body) -> None:
        pb.removeBody(body.body_id, physicsClientId=self.client)
        self.bodies.remove(body)

    # -- ground truth -----------------------------------------------------------------------------
    def T_world_obj(self, body_id: int) -> np.ndarray:
        """The URDF link frame in the world (CONTRACTS section 1), not PyBullet's inertial frame."""
        pos, orn = pb.getBasePositionAndOrientation(body_id, physicsClientId=self.client)
        local_pos, local_orn = pb.getDynamicsInfo(body_id, -1, physicsClientId=self.client)[3:5]
        T_world_inertial = pose_to_transform(pos, orn)
        T_obj_inertial = pose_to_transform(local_pos, local_orn)
        return T_world_inertial @ invert_transform(T_obj_inertial)

    # -- rendering --------------------------------------------------------------------------------
    @staticmethod
    def camera_pose(spec: SceneSpec) -> np.ndarray:
        cam = spec.camera
        t, a = np.radians(cam.tilt_deg), np.radians(cam.azimuth_deg)
        target = np.array([*cam.target_jitter_m, 0.0])
        eye = target + cam.distance_m * np.array([np.sin(t) * np.cos(a), np.sin(t) * np.sin(a), np.cos(t)])
        return look_at(eye, target, cam.roll_deg)

    @staticmethod
    def intrinsics(spec: SceneSpec) -> Intrinsics:
        cam = spec.camera
        return Intrinsics(cam.focal_px, cam.focal_px, cam.cx, cam.cy, *IMAGE_SIZE)

    def render(
        self,
        T_world_cam: np.ndarray,
        intr: Intrinsics,
        spec: SceneSpec | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Noise-free RGB (HxWx3 uint8), depth (metres, 0 = nothing) and PyBullet body-id mask."""
        light = {}
        if spec is not None:
            L = spec.light
            light = dict(
                lightDirection=list(L.direction),
                lightAmbientCoeff=L.ambient,
                lightDiffuseCoeff=L.diffuse,
                lightSpecularCoeff=L.specular,
                shadow=1,
            )
        _, _, rgba, zbuf, seg = pb.getCameraImage(
            intr.width,
            intr.height,
            view_matrix(T_world_cam),
            projection_matrix(intr),
            renderer=pb.ER_TINY_RENDERER,
            physicsClientId=self.client,
            **light,
        )
        rgb = np.asarray(rgba, dtype=np.uint8).reshape(intr.height, intr.width, 4)[:, :, :3].copy()
        depth = linearize_depth(np.asarray(zbuf, dtype=np.float64).reshape(intr.height, intr.width))
        seg = np.asarray(seg, dtype=np.int32).reshape(intr.height, intr.width)
        return rgb, depth, seg
