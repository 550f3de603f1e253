"""Hard-example mining for CropNet: which training crops a shipped version gets wrong.

More lab scenes of the same kind stopped moving CropNet (v8 fine-tuned on 7,000 fresh scenes tied
v4), while most of what it sees is objects it already gets right. The flywheel's answer to that is to
learn from the cases the model fails on; in the lab the instruments' ground truth says which those
are without a labeler. So a miner runs a version's whole pipeline on each training scene, matches its
answers to the ground truth as the metric does (CONTRACTS section 4), and marks the crop of every
counted object out of spec (or not found) as hard. Training then draws a share of each batch from the
hard crops (`budget.mixed_sampler`), the rest from all crops as before.

The marks are cached per scene folder and version beside the crop cache, in the crops' order
(`crops.scene_crops`: trainable objects in scene order, then the negative).
"""

from __future__ import annotations

from functools import cache, partial
from pathlib import Path

import numpy as np

from graspstack.metric import match_scene
from graspstack.pose_model.crops import (
    CACHE_PX,
    CropArrays,
    load_crops,
    negative_pixels,
    per_scene_cache,
    scene_objects,
    trainable,
)
from graspstack.scene_io import Scene


@cache
def _predictor(version: str):
    """One pipeline per worker process, single-threaded (the pool runs one per core)."""
    import torch

    from graspstack.pose_model.infer import ModelPredictor

    torch.set_num_threads(1)
    return ModelPredictor(version, threads=1)


def hard_objects(scene: Scene, answers: list) -> set[int]:
    """Indices (scene order) of the counted objects that `answers` leave out of spec."""
    return {r.gt_index for r in match_scene(scene.ground_truth(), answers).records if not r.within_spec}


def crop_marks(scene: Scene, depth_m: np.ndarray, hard: set[int]) -> list[bool]:
    """Per training crop of the scene (scene_crops' order), whether it is of a hard object. depth_m:
    the scene's frame's depth (where its negative crop may go)."""
    masks = scene.masks()
    kept = [k for k, (_, _, _, visible) in enumerate(scene_objects(scene)) if trainable(masks, k, visible)]
    has_negative = len(negative_pixels(masks, depth_m)) > 0
    return [k in hard for k in kept] + [False] * has_negative


def _scene_marks(path: Path, version: str) -> list[dict]:
    scene = Scene(path)
    frame = scene.frame()
    answers = _predictor(version).predict(frame)
    return [{"hard": np.bool_(m)} for m in crop_marks(scene, frame.depth_m, hard_objects(scene, answers))]


def load_mined_crops(root: str | Path, version: str, workers: int = 2) -> tuple[CropArrays, np.ndarray]:
    """The crop cache of a scene folder and, per crop, whether `version` gets its object wrong."""
    crops = load_crops(root, workers)
    marks = per_scene_cache(
        Path(root), f"hard_{CACHE_PX}_{version}", partial(_scene_marks, version=version), workers
    )
    hard = marks["hard"] if marks is not None else np.zeros(0, bool)
    if len(hard) != len(crops):
        raise ValueError(
            f"{root}: {len(hard)} hard marks for {len(crops)} crops; delete hard_*.npz and mine again"
        )
    return crops, hard


def hard_first(crops: CropArrays, hard: np.ndarray) -> tuple[CropArrays, int]:
    """The crops reordered with the hard ones first (what mixed_sampler draws its share from), and
    how many those are."""
    order = np.concatenate([np.flatnonzero(hard), np.flatnonzero(~hard)])
    return crops.subset(order), int(hard.sum())
