"""Training data: lab scenes on disk, shrunk once into an in-memory cache of arrays.

Decoding 640x480 PNGs every epoch would cost more CPU than the network on this machine, so each
scene is read once, resized to the network's input size and kept as uint8/uint16 arrays (about
0.3 MB a scene). Targets are made per batch from small per-object tables (class, centre, rotation,
centre depth) plus an instance map at the network's output stride.
"""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from graspstack.catalogue import CLASS_NAMES
from graspstack.geometry import quat_to_matrix
from graspstack.pose_model.geometry import bbox_centre_obj
from graspstack.pose_model.network import INPUT_HW, OUTPUT_STRIDE
from graspstack.scene_io import Scene, SceneFile, iter_scene_dirs

MAX_OBJECTS = 8  # the hard slice has at most 8 catalogue objects


@dataclass
class SceneArrays:
    """A set of scenes at input resolution. Object tables are padded to MAX_OBJECTS (class -1 = none)."""

    rgb: np.ndarray  # (N, H, W, 3) uint8
    depth_mm: np.ndarray  # (N, H, W) uint16, 0 = no reading
    inst: np.ndarray  # (N, H/s, W/s) uint8, 0 = background, k = object k-1
    intr: np.ndarray  # (N, 4) fx, fy, cx, cy at input resolution
    cls: np.ndarray  # (N, MAX_OBJECTS) int64 class index, -1 padding
    centre_px: np.ndarray  # (N, MAX_OBJECTS, 2) projected bbox centre, input resolution pixels
    rot: np.ndarray  # (N, MAX_OBJECTS, 3, 3) R_cam_obj
    centre_z: np.ndarray  # (N, MAX_OBJECTS) camera z of the bbox centre, metres

    def __len__(self) -> int:
        return len(self.rgb)


def load_scene_arrays(path: Path) -> dict[str, np.ndarray]:
    """One scene folder, resized to INPUT_HW, with its object table."""
    scene = Scene(path)
    frame = scene.frame()
    return scene_arrays(frame.rgb, frame.depth_m, scene.masks(), scene.meta)


def scene_arrays(
    rgb: np.ndarray, depth_m: np.ndarray, masks: np.ndarray, meta: SceneFile
) -> dict[str, np.ndarray]:
    """Arrays of one scene (full-resolution images, instance masks, scene.json) at input resolution."""
    h, w = INPUT_HW
    intr = meta.intrinsics_obj().scaled(w / meta.width)
    rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
    # Nearest keeps dropped readings as zeros instead of smearing them into wrong depths.
    depth = cv2.resize(depth_m, (w, h), interpolation=cv2.INTER_NEAREST)
    s = OUTPUT_STRIDE
    inst = cv2.resize(masks, (w // s, h // s), interpolation=cv2.INTER_NEAREST)

    cls = np.full(MAX_OBJECTS, -1, dtype=np.int64)
    centre = np.zeros((MAX_OBJECTS, 2), dtype=np.float32)
    rot = np.tile(np.eye(3, dtype=np.float32), (MAX_OBJECTS, 1, 1))
    cz = np.zeros(MAX_OBJECTS, dtype=np.float32)
    for k, obj in enumerate(meta.objects[:MAX_OBJECTS]):
        R = quat_to_matrix(obj.quaternion_xyzw)
        c_cam = R @ bbox_centre_obj(obj.class_name) + np.asarray(obj.position_m)
        cls[k] = CLASS_NAMES.index(obj.class_name)
        centre[k] = [intr.fx * c_cam[0] / c_cam[2] + intr.cx, intr.fy * c_cam[1] / c_cam[2] + intr.cy]
        rot[k] = R
        cz[k] = c_cam[2]
    return {
        "rgb": rgb,
        "depth_mm": np.round(depth * 1000.0).astype(np.uint16),
        "inst": inst.astype(np.uint8),
        "intr": np.array([intr.fx, intr.fy, intr.cx, intr.cy], dtype=np.float32),
        "cls": cls,
        "centre_px": centre,
        "rot": rot,
        "centre_z": cz,
    }


def build_cache(
    root: str | Path, out: str | Path | None = None, workers: int = 2, limit: int | None = None
) -> Path:
    """Read every scene under root into one .npz (written to out, default root/cache_<H>x<W>.npz)."""
    root = Path(root)
    h, w = INPUT_HW
    out = Path(out) if out else root / f"cache_{h}x{w}.npz"
    # Folders being written by a running render (NNNNNN.partial) are not scenes yet.
    dirs = [d for d in iter_scene_dirs(root) if d.name.isdigit()][:limit]
    if not dirs:
        raise FileNotFoundError(f"no scenes under {root}")
    with ProcessPoolExecutor(workers) as pool:
        items = list(
            tqdm(pool.map(load_scene_arrays, dirs, chunksize=16), total=len(dirs), desc=f"cache {root}")
        )
    arrays = {k: np.stack([it[k] for it in items]) for k in items[0]}
    np.savez(out, **arrays)
    (out.with_suffix(".json")).write_text(json.dumps({"root": str(root), "scenes": len(dirs)}))
    return out


def load_cache(path: str | Path) -> SceneArrays:
    with np.load(path) as z:
        return SceneArrays(**{k: z[k] for k in z.files})


def concat(parts: list[SceneArrays]) -> SceneArrays:
    return SceneArrays(
        **{f: np.concatenate([getattr(p, f) for p in parts]) for f in SceneArrays.__dataclass_fields__}
    )
