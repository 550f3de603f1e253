"""Training of the lego way-round net (wayround.py) on the cached training crops (crops.py).

Every cached lego crop whose stud axis shows in the image gives one sample an epoch: the crop turned
to the true stud axis (label 1) or to its reverse (label 0), at random, with the jitter a fitted
pose brings (turn, centre, scale). One crop in ten of each folder is held out to report accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from graspstack.catalogue import CLASS_NAMES
from graspstack.pose_model.budget import frame_net_info, train_for
from graspstack.pose_model.crops import load_crops
from graspstack.pose_model.frame_net_data import held_out_outputs, jittered, window_at
from graspstack.pose_model.wayround import (
    ANGLE_SCALE_DEG,
    MIN_AXIS_SHARE,
    WayRoundNet,
    canonical_crop,
    stud_axis_px,
    turn_axis,
)

LEGO = CLASS_NAMES.index("lego") + 1
MIN_MASK_PIXELS = 30
# A fitted side-lying lego's yaw is up to ~15 deg off (ANGLE_SCALE_DEG, the turn the net learns to
# measure), its centre a few millimetres.
JITTER_MM = 3.0
ANGLE_WEIGHT = 1.0
JITTER_SCALE = 0.08
HOLD_OUT_EVERY = 10


@dataclass
class LegoSamples:
    rgb: np.ndarray  # (N, C, C, 3) cached windows
    depth_m: np.ndarray  # (N, C, C)
    window: np.ndarray  # (N, 3) x0, y0, step
    fx: np.ndarray  # (N,)
    centre_px: np.ndarray  # (N, 2) full-resolution
    axis: np.ndarray  # (N, 2) unit image direction of the stud axis
    z: np.ndarray  # (N,)

    def __len__(self) -> int:
        return len(self.z)

    def subset(self, idx: np.ndarray) -> LegoSamples:
        return LegoSamples(**{f: getattr(self, f)[idx] for f in self.__dataclass_fields__})


def lego_samples(roots: list[Path]) -> tuple[LegoSamples, LegoSamples]:
    """(training, held-out) lego crops of the folders' caches whose stud axis shows in the image."""
    parts: dict[str, list] = {f: [] for f in LegoSamples.__dataclass_fields__}
    held: list[np.ndarray] = []
    for root in roots:
        c = load_crops(root)
        idx = np.nonzero((c.cls == LEGO) & (c.mask.reshape(len(c), -1).sum(1) >= MIN_MASK_PIXELS))[0]
        rows = []
        for i in idx:
            T = np.eye(4)
            T[:3, :3], T[:3, 3] = c.rot[i], c.pos[i]
            centre, axis, share = stud_axis_px(T, c.intr[i])
            if share >= MIN_AXIS_SHARE:
                rows.append((i, centre, axis, float(c.centre_z[i])))
        if not rows:
            continue
        keep = np.array([r[0] for r in rows], int)
        parts["rgb"].append(c.rgb[keep])
        parts["depth_m"].append(c.depth_mm[keep].astype(np.float32) / 1000.0)
        parts["window"].append(c.window[keep])
        parts["fx"].append(c.intr[keep, 0])
        parts["centre_px"].append(np.array([r[1] for r in rows]))
        parts["axis"].append(np.array([r[2] for r in rows]))
        parts["z"].append(np.array([r[3] for r in rows]))
        held.append(np.arange(len(keep)) % HOLD_OUT_EVERY == 0)
        del c
    if not held:
        raise ValueError(f"no lego on its side in the crops of {', '.join(map(str, roots))}")
    s = LegoSamples(**{k: np.concatenate(v) for k, v in parts.items()})
    h = np.concatenate(held)
    return s.subset(np.nonzero(~h)[0]), s.subset(np.nonzero(h)[0])


def make_batch(
    s: LegoSamples, idx: np.ndarray, rng: np.random.Generator | None
) -> tuple[np.ndarray, np.ndarray]:
    """Crops and targets (B, 2): way round (1: the crop's +u is the studs' end) and the angle from
    the crop's +u to the true axis's line / ANGLE_SCALE_DEG. rng=None: no jitter, both ways round."""
    xs, ys = [], []
    for i in idx:
        w = window_at(s, i)
        ways = [1, 0] if rng is None else [int(rng.integers(2))]
        for label in ways:
            axis, centre, z = s.axis[i], s.centre_px[i], float(s.z[i])
            turn = 0.0
            if rng is not None:
                turn = rng.uniform(-ANGLE_SCALE_DEG, ANGLE_SCALE_DEG)
                axis = turn_axis(axis, turn)
                centre, z = jittered(centre, z, float(s.fx[i]), rng, JITTER_MM, JITTER_SCALE)
            if not label:
                axis = -axis
            xs.append(canonical_crop(s.rgb[i], s.depth_m[i], w, centre, axis, z, float(s.fx[i])))
            ys.append((label, -turn / ANGLE_SCALE_DEG))  # the crop turned by +turn: the truth lies at -turn
    return np.stack(xs), np.array(ys, np.float32)


def held_out_accuracy(net: WayRoundNet, held: LegoSamples) -> float:
    """Share of held-out crops whose right way round scores above its reverse."""
    out, _ = held_out_outputs(net, held, make_batch)
    logit = out[:, 0].reshape(-1, 2)  # each crop right way round, then reversed
    return int((logit[:, 0] > logit[:, 1]).sum()) / max(len(held), 1)


def held_out_angle_error_deg(net: WayRoundNet, held: LegoSamples) -> dict:
    """Median and 90th-percentile error of the measured turn, held-out crops jittered as in training
    (a fixed seed)."""
    out, y = held_out_outputs(net, held, make_batch, np.random.default_rng(12345))
    e = np.abs(out[:, 1] - y[:, 1]) * ANGLE_SCALE_DEG
    return {"p50": round(float(np.median(e)), 2), "p90": round(float(np.percentile(e, 90)), 2)}


def train_wayround(
    roots: list[Path], minutes: float, seed: int = 0, batch: int = 128
) -> tuple[WayRoundNet, dict]:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    train, held = lego_samples(roots)
    net = WayRoundNet()
    way_loss = torch.nn.BCEWithLogitsLoss()
    angle_loss = torch.nn.SmoothL1Loss(beta=0.1)

    def step(_elapsed: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x, y = make_batch(train, rng.integers(len(train), size=batch), rng)
        out, target = net(torch.from_numpy(x)), torch.from_numpy(y)
        way, angle = way_loss(out[:, 0], target[:, 0]), angle_loss(out[:, 1], target[:, 1])
        return way + ANGLE_WEIGHT * angle, {"way": way, "angle": angle}

    run = train_for(net, step, minutes, 2e-3, "way-round net")
    accuracy = held_out_accuracy(net, held)
    angle_error = held_out_angle_error_deg(net, held)
    info = frame_net_info(roots, len(train), len(held), run, batch) | {
        "held_out_accuracy": round(accuracy, 4),
        "held_out_angle_error_deg": angle_error,
    }
    return net.eval(), info
