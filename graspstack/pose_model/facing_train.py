"""Training of a class's facing net (facing.py) on the cached training crops (crops.py).

As for the lego studs net (studs_train.py): each of the class's cached crops is cut around the true
box centre, turned in the image plane by any angle with the targets (the model's x and z axes)
turned with it, with a fitted pose's jitter; one crop in ten of each folder is held out to report
how often the net's rotation lands within 45 deg of the truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from graspstack.catalogue import CLASS_NAMES
from graspstack.frames import Intrinsics
from graspstack.geometry import rotation_angle_deg
from graspstack.pose_model.budget import frame_net_info, train_for
from graspstack.pose_model.crops import CropWindow, load_crops
from graspstack.pose_model.facing import FacingNet, box_centre, facing_crop, rotation_from_axes
from graspstack.pose_model.studs import in_crop_frame

MIN_MASK_PIXELS = 60
JITTER_MM = 5.0
JITTER_SCALE = 0.08
HOLD_OUT_EVERY = 10


@dataclass
class FacingSamples:
    rgb: np.ndarray  # (N, C, C, 3) cached windows
    depth_m: np.ndarray  # (N, C, C)
    window: np.ndarray  # (N, 3) x0, y0, step
    fx: np.ndarray  # (N,)
    centre_px: np.ndarray  # (N, 2) the box centre, full-resolution px
    z: np.ndarray  # (N,) the box centre's depth
    rot: np.ndarray  # (N, 3, 3) R_cam_obj

    def __len__(self) -> int:
        return len(self.z)

    def subset(self, idx: np.ndarray) -> FacingSamples:
        return FacingSamples(**{f: getattr(self, f)[idx] for f in self.__dataclass_fields__})


def facing_samples(class_name: str, roots: list[Path]) -> tuple[FacingSamples, FacingSamples]:
    """(training, held-out) crops of the class in the folders' caches."""
    label = CLASS_NAMES.index(class_name) + 1
    parts: dict[str, list] = {f: [] for f in FacingSamples.__dataclass_fields__}
    held: list[np.ndarray] = []
    for root in roots:
        c = load_crops(root)
        keep = np.nonzero((c.cls == label) & (c.mask.reshape(len(c), -1).sum(1) >= MIN_MASK_PIXELS))[0]
        if not len(keep):
            continue
        centres, zs = [], []
        for i in keep:
            T = np.eye(4)
            T[:3, :3], T[:3, 3] = c.rot[i], c.pos[i]
            fx, fy, cx, cy = (float(v) for v in c.intr[i])
            centre, z = box_centre(class_name, T, Intrinsics(fx, fy, cx, cy, 0, 0))
            centres.append(centre), zs.append(z)
        parts["rgb"].append(c.rgb[keep])
        parts["depth_m"].append(c.depth_mm[keep].astype(np.float32) / 1000.0)
        parts["window"].append(c.window[keep])
        parts["fx"].append(c.intr[keep, 0])
        parts["centre_px"].append(np.array(centres))
        parts["z"].append(np.array(zs))
        parts["rot"].append(c.rot[keep])
        held.append(np.arange(len(keep)) % HOLD_OUT_EVERY == 0)
        del c
    if not held:
        raise ValueError(f"no {class_name} in the crops of {', '.join(map(str, roots))}")
    s = FacingSamples(**{k: np.concatenate(v) for k, v in parts.items()})
    h = np.concatenate(held)
    return s.subset(np.nonzero(~h)[0]), s.subset(np.nonzero(h)[0])


def make_batch(
    class_name: str, s: FacingSamples, idx: np.ndarray, rng: np.random.Generator | None
) -> tuple[np.ndarray, np.ndarray]:
    """Crops and targets (B, 6), the model's x and z axes in each crop's frame. rng=None: upright."""
    xs, ys = [], []
    for i in idx:
        w = CropWindow(float(s.window[i, 0]), float(s.window[i, 1]), float(s.window[i, 2]), s.rgb.shape[1])
        centre, z, turn = s.centre_px[i], float(s.z[i]), 0.0
        if rng is not None:
            turn = rng.uniform(0.0, 2.0 * np.pi)
            centre = centre + rng.uniform(-1, 1, 2) * JITTER_MM / 1000.0 * s.fx[i] / z
            z = z * (1.0 + rng.uniform(-JITTER_SCALE, JITTER_SCALE))
        axis = np.array([np.cos(turn), np.sin(turn)])
        xs.append(facing_crop(s.rgb[i], s.depth_m[i], w, centre, axis, z, float(s.fx[i]), class_name))
        ys.append(np.concatenate([in_crop_frame(s.rot[i][:, 0], axis), in_crop_frame(s.rot[i][:, 2], axis)]))
    return np.stack(xs), np.array(ys, np.float32)


def held_out_scores(class_name: str, net: FacingNet, held: FacingSamples) -> dict:
    """On the held-out crops, upright: the share whose rotation lands within 45 deg of the truth, the
    median angle off, and the median sureness."""
    net.eval()
    angles, sure = [], []
    with torch.inference_mode():
        for start in range(0, len(held), 256):
            idx = np.arange(start, min(start + 256, len(held)))
            x, _ = make_batch(class_name, held, idx, None)
            out = net(torch.from_numpy(x)).numpy()
            for o, i in zip(out, idx, strict=True):
                angles.append(rotation_angle_deg(rotation_from_axes(o[:3], o[3:]), held.rot[i]))
                sure.append(min(np.linalg.norm(o[:3]), np.linalg.norm(o[3:])))
    net.train()
    a = np.array(angles)
    return {
        "held_out_within_45_deg": round(float((a < 45).mean()), 4),
        "held_out_angle_p50_deg": round(float(np.median(a)), 2),
        "held_out_sureness_p50": round(float(np.median(sure)), 3),
    }


def train_facing(
    class_name: str, roots: list[Path], minutes: float, seed: int = 0, batch: int = 96
) -> tuple[FacingNet, dict]:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    train, held = facing_samples(class_name, roots)
    net = FacingNet()

    def step(_elapsed: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x, y = make_batch(class_name, train, rng.integers(len(train), size=batch), rng)
        loss = ((net(torch.from_numpy(x)) - torch.from_numpy(y)) ** 2).sum(1).mean()
        return loss, {"axes": loss}

    run = train_for(net, step, minutes, 2e-3, f"{class_name} facing net")
    info = frame_net_info(roots, len(train), len(held), run, batch) | held_out_scores(class_name, net, held)
    return net.eval(), info


def train_facing_duck(roots: list[Path], minutes: float) -> tuple[FacingNet, dict]:
    return train_facing("duck", roots, minutes)


def train_facing_teddy(roots: list[Path], minutes: float) -> tuple[FacingNet, dict]:
    return train_facing("teddy", roots, minutes)
