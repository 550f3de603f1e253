"""One turn of the flywheel: labelled hard cases (plus a replay of the parent's data) -> a child model.

1. Read every labelled case from the store; several triggers can fire on one frame, which is then
   one training sample. The frame comes from the store's blobs, the labels are the labelers' poses.
2. Turn labels into training targets: each labelled object's model is splatted into the frame at its
   pose, and a pixel belongs to the object whose splat is in front there and agrees with the observed
   depth (so pixels hidden by a distractor or an unlabelled object are not claimed).
3. Fine-tune both stages of the parent (stage 1 on whole frames, stage 2 on object crops). Half of
   every batch replays the parent's own training data: without it the model drifts towards the hard
   cases and forgets the nominal scenes it was good at.
4. Register the child (card names its parent and the cases it learnt from) and score child and parent
   on held-out scenes, hard and nominal, with the contract metric.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from graspstack.catalogue import CATALOGUE
from graspstack.evaluation import run_evaluation
from graspstack.flywheel.cases import pose_from_dict
from graspstack.flywheel.labeling import LABELLED
from graspstack.flywheel.store import CaseStore
from graspstack.frames import Frame, ObjectPose
from graspstack.geometry import quat_to_matrix
from graspstack.ingest.validate import FrameError, RawFrame, decode_frame
from graspstack.pose_model.budget import mixed_sampler
from graspstack.pose_model.crop_train import train_crop_net
from graspstack.pose_model.crops import CropArrays, concat_crops, load_crops, scene_crops, stack_crops
from graspstack.pose_model.data import SceneArrays, concat, scene_arrays
from graspstack.pose_model.registry import (
    load_card,
    load_crop_network,
    load_network,
    save_crop_network,
    save_version,
    write_card,
)
from graspstack.pose_model.train import cached, train_network
from graspstack.scene_io import SceneFile

REPLAY_SHARE = 0.5
CALIBRATION_SCENES = 80  # validation scenes per slice for the child's confidence calibration
MASK_DEPTH_TOLERANCE_M = 0.01
DEPTH_NOISE_M = 0.003  # sensor noise at 0.5 m after median filtering, worst slice (CONTRACTS 3), generous


_EVAL_CACHE: dict[tuple, dict] = {}  # versions are immutable once written: their scores are too


@dataclass
class LabelledFrame:
    frame_id: str
    case_ids: list[str]
    triggers: list[str]
    frame: Frame
    labels: list[ObjectPose]


def labelled_frames(store: CaseStore) -> list[LabelledFrame]:
    rows = store.query(
        "SELECT case_id, frame_id, trigger, labels FROM cases WHERE status = ? ORDER BY created_at, case_id",
        (LABELLED,),
    )
    by_frame: dict[str, LabelledFrame] = {}
    for r in tqdm(rows, desc="labelled cases", unit="case"):
        if r["frame_id"] in by_frame:
            by_frame[r["frame_id"]].case_ids.append(r["case_id"])
            by_frame[r["frame_id"]].triggers.append(r["trigger"])
            continue
        case = store.get(r["case_id"])
        try:
            frame = decode_frame(RawFrame(case.rgb, case.depth, case.depth_scale, case.intrinsics))
        except FrameError:
            continue  # the store validated frames on the way in; one unreadable now is skipped, not fatal
        labels = [pose_from_dict(d) for d in json.loads(r["labels"] or "[]")]
        by_frame[r["frame_id"]] = LabelledFrame(r["frame_id"], [r["case_id"]], [r["trigger"]], frame, labels)
    return list(by_frame.values())


def masks_from_labels(frame: Frame, labels: list[ObjectPose]) -> np.ndarray:
    """Instance ids (k + 1 for labels[k]) of the pixels each labelled object is seen at."""
    from lab.verify import splat_depth  # our own z-buffer renderer of the object meshes

    intr = frame.intrinsics
    front = np.full((intr.height, intr.width), np.inf)
    owner = np.zeros((intr.height, intr.width), np.uint8)
    for k, p in enumerate(labels):
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = quat_to_matrix(p.quaternion_xyzw), p.position_m
        z = splat_depth(p.class_name, T, intr)
        # Splatted points leave pinholes at close range: fill an empty pixel from its nearest neighbour
        # only when most of its 3x3 neighbours are filled (inside the silhouette, not along its edge).
        hit = (z > 0).astype(np.float32)
        z = np.where(z > 0, z, np.inf).astype(np.float32)
        filled = cv2.boxFilter(hit, -1, (3, 3), normalize=False) >= 5
        z = np.where(np.isinf(z) & filled, cv2.erode(z, np.ones((3, 3), np.uint8)), z)
        nearer = z < front
        front[nearer], owner[nearer] = z[nearer], k + 1
    observed = cv2.medianBlur(frame.depth_m.astype(np.float32), 5)
    # The hard slice's sensor noise reaches ~1 cm at the far end: the tolerance grows with depth.
    tol = np.maximum(MASK_DEPTH_TOLERANCE_M, 3.0 * DEPTH_NOISE_M * (observed / 0.5) ** 2)
    agree = (frame.depth_m > 0) & np.isfinite(front) & (np.abs(observed - front) < tol)
    # Where the sensor has no reading nothing contradicts the label: the splat's owner keeps the pixel.
    agree |= (frame.depth_m == 0) & np.isfinite(front)
    return np.where(agree, owner, 0).astype(np.uint8)


def _scene_meta(frame: Frame, labels: list[ObjectPose]) -> SceneFile:
    i = frame.intrinsics
    return SceneFile.model_validate(
        {
            "width": i.width,
            "height": i.height,
            "intrinsics": {"fx": i.fx, "fy": i.fy, "cx": i.cx, "cy": i.cy},
            "T_world_cam": {"position_m": [0, 0, 0], "quaternion_xyzw": [0, 0, 0, 1]},
            "objects": [
                {
                    "class": p.class_name,
                    "position_m": list(map(float, p.position_m)),
                    "quaternion_xyzw": list(map(float, p.quaternion_xyzw)),
                    "visible_fraction": 1.0,
                }
                for p in labels
            ],
        }
    )


def training_sets(frames: list[LabelledFrame], seed: int = 0) -> tuple[SceneArrays, CropArrays]:
    rng = np.random.default_rng(seed)
    scenes, crops = [], []
    for lf in tqdm(frames, desc="training targets", unit="frame"):
        labels = [p for p in lf.labels if p.class_name in CATALOGUE]
        if not labels:
            continue
        masks = masks_from_labels(lf.frame, labels)
        scenes.append(scene_arrays(lf.frame.rgb, lf.frame.depth_m, masks, _scene_meta(lf.frame, labels)))
        objects = [(p.class_name, quat_to_matrix(p.quaternion_xyzw), p.position_m, 1.0) for p in labels]
        crops += scene_crops(lf.frame, masks, objects, rng)
    if not scenes:
        raise ValueError("no labelled case with catalogue objects: label some cases first")
    scene_set = SceneArrays(**{k: np.stack([s[k] for s in scenes]) for k in scenes[0]})
    return scene_set, stack_crops(crops)


class _Fixed:
    def __init__(self, data: SceneArrays) -> None:
        self.data = data

    def get(self, now: float) -> SceneArrays:
        return self.data


def _replay_dirs(parent_card: dict) -> list[Path]:
    return [Path(d["path"]) for d in parent_card.get("train_data", []) if Path(d["path"]).exists()]


def evaluate_pair(parent: str, child: str, eval_dirs: list[Path], limit: int | None = None) -> dict:
    from graspstack.pose_model.infer import ModelPredictor

    out: dict = {}
    for version in (parent, child):
        predictor = ModelPredictor(version)
        for d in eval_dirs:
            key = (version, str(d), limit)
            if key not in _EVAL_CACHE:  # in an experiment, this turn's parent was the last turn's child
                _EVAL_CACHE[key] = run_evaluation(d, predictor, limit=limit).report
            rep = _EVAL_CACHE[key]
            for slice_name, s in rep["slices"].items():
                out.setdefault(slice_name, {})[version] = {
                    "within_spec_rate": s["within_spec_rate"],
                    "n_objects": s["n_objects"],
                    "data": str(d),
                }
    return out


def run_turn(
    store_root: str | Path,
    parent: str,
    child: str | None = None,
    detector_minutes: float = 6.0,
    crop_minutes: float = 6.0,
    eval_dirs: list[str] | None = None,
    eval_limit: int | None = None,
    lr: float = 5e-4,
    calibration_dirs: tuple[str, ...] = ("data/val/nominal", "data/val/hard"),
    replay_share: float = REPLAY_SHARE,
) -> dict:
    """replay_share=1.0 is the control: the same fine-tuning with no case in any batch, which says
    how much of a turn's gain is the cases and how much is only more training."""
    torch.set_num_threads(2)
    started = time.monotonic()
    store = CaseStore(store_root)
    frames = labelled_frames(store)
    new_scenes, new_crops = training_sets(frames)
    parent_card = load_card(parent)
    replay = _replay_dirs(parent_card)
    if not replay:
        missing = parent_card.get("train_data")
        raise FileNotFoundError(f"the parent's training data {missing} is not here (replay needs it)")
    child = child or f"{parent}-fw{datetime.now(UTC).strftime('%Y%m%d%H%M')}"

    net, _ = load_network(parent)
    scene_data = concat([new_scenes, *(cached(d) for d in replay)])
    net, det_info = train_network(
        _Fixed(scene_data),
        detector_minutes,
        lr=lr,
        net=net.train(),
        sampler=mixed_sampler(len(new_scenes), len(scene_data), 1.0 - replay_share),
        width=int(parent_card.get("width", 24)),
    )
    crop_net = load_crop_network(parent)
    if crop_net is None:
        raise ValueError(f"{parent} is a one-stage model; the flywheel fine-tunes two-stage versions")
    crop_data = concat_crops([new_crops, *(load_crops(d) for d in replay)])
    crop_net, crop_info = train_crop_net(
        crop_data,
        crop_minutes,
        lr=lr,
        net=crop_net.train(),
        sampler=mixed_sampler(len(new_crops), len(crop_data), 1.0 - replay_share),
    )
    card = {k: v for k, v in parent_card.items() if k not in ("validation", "flywheel", "total_seconds")}
    card |= {
        "version": child,
        "parent": parent,
        "trained_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "flywheel": {
            "store": str(store_root),
            "labelled_frames": len(frames),
            "cases": sum(len(f.case_ids) for f in frames),
            "triggers": _count([t for f in frames for t in f.triggers]),
            "objects_labelled": int(sum(len(f.labels) for f in frames)),
            "crops_new": len(new_crops),
            "replay": [str(d) for d in replay],
            "replay_share": replay_share,
            "lr": lr,
            "detector_training": {k: v for k, v in det_info.items() if k != "loss_history"},
            "crop_training": {k: v for k, v in crop_info.items() if k != "loss_history"},
        },
    }
    save_version(child, net.eval(), card)
    save_crop_network(child, crop_net.eval())
    cal_dirs = [d for d in calibration_dirs if Path(d).exists()]
    if cal_dirs:  # the child's evidence means something else than its parent's: calibrate it afresh
        from graspstack.pose_model.report import fit_calibration

        card["calibration"] = fit_calibration(child, cal_dirs, CALIBRATION_SCENES)
    if eval_dirs:
        ev = evaluate_pair(parent, child, [Path(d) for d in eval_dirs], eval_limit)
        card["flywheel"]["eval"] = ev
        card["flywheel"]["gain_pts"] = {
            s: round(100 * (v[child]["within_spec_rate"] - v[parent]["within_spec_rate"]), 2)
            for s, v in ev.items()
        }
    card["flywheel"]["seconds"] = round(time.monotonic() - started, 1)
    write_card(child, card)
    return card


def _count(items: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for i in items:
        out[i] = out.get(i, 0) + 1
    return out
