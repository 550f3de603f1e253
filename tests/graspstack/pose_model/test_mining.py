"""Hard-example mining: the right crops are marked hard, in the crop cache's order."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from graspstack.frames import ObjectPose
from graspstack.pose_model.budget import mixed_sampler
from graspstack.pose_model.crops import CropArrays, scene_crops, scene_objects, stack_crops
from graspstack.pose_model.mining import crop_marks, hard_first, hard_objects, load_mined_crops
from graspstack.scene_io import Scene


@pytest.fixture(scope="module")
def hard_folder(tmp_path_factory):
    from lab.dataset import render_dataset

    root = tmp_path_factory.mktemp("mine")
    render_dataset(root, 2, 4646, "hard", workers=1, progress=False)
    return root


def _scenes(root):
    return [Scene(p) for p in sorted(root.iterdir()) if p.name.isdigit()]


def _truth_with(scene: Scene, moved: int, dropped: int) -> list[ObjectPose]:
    """The scene's ground truth as answers, object `moved` 3 cm off and object `dropped` left out."""
    out = []
    for k, g in enumerate(scene.ground_truth()):
        if k == dropped:
            continue
        position = np.asarray(g.position_m) + (np.array([0.03, 0.0, 0.0]) if k == moved else 0.0)
        out.append(ObjectPose(g.class_name, position, np.asarray(g.quaternion_xyzw), 1.0))
    return out


def test_hard_objects_are_the_counted_ones_out_of_spec_or_missed(hard_folder):
    scene = _scenes(hard_folder)[0]
    counted = [k for k, g in enumerate(scene.ground_truth()) if g.extras["visible_fraction"] >= 0.3]
    moved, dropped = counted[0], counted[-1]
    assert hard_objects(scene, _truth_with(scene, moved, dropped)) == {moved, dropped}
    assert hard_objects(scene, _truth_with(scene, -1, -1)) == set()


def test_marks_follow_the_crop_cache_order(hard_folder):
    scene = _scenes(hard_folder)[0]
    objects = scene_objects(scene)
    rng = np.random.default_rng(zlib.crc32(str(scene.path).encode()))
    frame = scene.frame()
    crops = stack_crops(scene_crops(frame, scene.masks(), objects, rng))
    for k in range(len(objects)):
        marks = np.array(crop_marks(scene, frame.depth_m, {k}))
        assert len(marks) == len(crops)
        # a crop is marked exactly when it is object k's (its ground-truth position is k's)
        is_k = np.linalg.norm(crops.pos - objects[k][2], axis=1) < 1e-5
        assert np.array_equal(marks, is_k)


def test_mined_cache_marks_what_the_version_gets_wrong(hard_folder):
    from graspstack.pose_model.infer import ModelPredictor

    crops, hard = load_mined_crops(hard_folder, "v4", workers=1)
    assert len(hard) == len(crops)
    predictor = ModelPredictor("v4", threads=1)
    expected = []
    for scene in _scenes(hard_folder):
        frame = scene.frame()
        expected += crop_marks(scene, frame.depth_m, hard_objects(scene, predictor.predict(frame)))
    assert np.array_equal(hard, expected)


def test_hard_first_feeds_the_sampler_its_share():
    n = 200
    crops = CropArrays(**{f: np.arange(n) for f in CropArrays.__dataclass_fields__})
    hard = np.zeros(n, bool)
    hard[[5, 50, 150]] = True
    ordered, n_hard = hard_first(crops, hard)
    assert n_hard == 3 and list(ordered.cls[:3]) == [5, 50, 150] and sorted(ordered.cls) == list(range(n))
    sample = mixed_sampler(n_hard, n, 0.35)
    idx = np.concatenate([sample(np.random.default_rng(i), 64) for i in range(50)])
    assert 0.3 < np.mean(idx < n_hard) < 0.4
