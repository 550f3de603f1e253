"""A flywheel turn: labelled cases from the store become training data, and a child version is made.

The end-to-end test runs the real turn (store -> labels -> masks -> fine-tune both stages -> child
registered with its parent) on a tiny parent in a temporary registry, with seconds of training: it
checks the plumbing and the card, not the gain (that is `graspstack flywheel experiment`'s job).
"""

from __future__ import annotations

import numpy as np
import pytest

from graspstack.flywheel.cases import HardCase
from graspstack.flywheel.labeling import Labeling
from graspstack.flywheel.sim_labeler import SimLabeler
from graspstack.flywheel.store import CaseStore
from graspstack.flywheel.turn import (
    labelled_frames,
    masks_from_labels,
    run_turn,
    training_sets,
)
from graspstack.frames import Frame
from graspstack.ingest.validate import encode_frame, frame_id


def _case(rendered, trigger: str = "gt_error") -> HardCase:
    raw = encode_frame(Frame(rendered.rgb, rendered.depth_m, rendered.scene.intrinsics_obj()))
    return HardCase(
        frame_id=frame_id(raw),
        trigger=trigger,
        model_version="parent",
        intrinsics=raw.intrinsics,
        poses=[],
        rgb=raw.rgb,
        depth=raw.depth,
        depth_scale=raw.depth_scale,
        ground_truth=rendered.scene.ground_truth(),
    )


@pytest.fixture
def labelled_store(tmp_path, nominal_scenes):
    store = CaseStore(tmp_path / "store")
    for r in nominal_scenes[:3]:
        store.put(_case(r))
    store.put(_case(nominal_scenes[0], "low_confidence"))  # a second trigger on the same frame
    SimLabeler(seed=0).run(Labeling(store))
    yield store
    store.close()


def test_masks_from_labels_match_the_renderer(nominal_scenes):
    ious = []
    for r in nominal_scenes:
        gt = r.scene.ground_truth()
        masks = masks_from_labels(Frame(r.rgb, r.depth_m, r.scene.intrinsics_obj()), gt)
        for k in range(len(gt)):
            a, b = r.masks == k + 1, masks == k + 1
            if a.sum() > 50:
                ious.append((a & b).sum() / (a | b).sum())
    assert np.median(ious) > 0.9 and min(ious) > 0.6


def test_labelled_frames_are_one_sample_per_frame(labelled_store, nominal_scenes):
    frames = labelled_frames(labelled_store)
    assert len(frames) == 3
    assert sorted(len(f.case_ids) for f in frames) == [1, 1, 2]
    scenes, crops = training_sets(frames)
    assert len(scenes) == 3 and scenes.rgb.shape[1:] == (240, 320, 3)
    n_labelled = sum(len(f.labels) for f in frames)
    assert len(crops) >= n_labelled  # every labelled object gives a crop, plus negatives


def test_a_turn_makes_a_child_that_names_its_parent(tmp_path, monkeypatch, labelled_store):
    from graspstack.pose_model import registry
    from graspstack.pose_model.crop_net import CropNet
    from graspstack.pose_model.network import PoseNet
    from lab.dataset import render_dataset

    monkeypatch.setenv("GRASPSTACK_MODELS", str(tmp_path / "models"))
    replay = tmp_path / "replay"
    render_dataset(replay, 3, 4343, "nominal", workers=1, progress=False)
    train_data = [{"path": str(replay), "slice": "nominal", "scenes": 3}]
    card = {"width": 8, "crop_width": 8, "train_data": train_data}
    registry.save_version("parent", PoseNet(8), card)
    registry.save_crop_network("parent", CropNet(8))
    child = run_turn(
        labelled_store.root,
        "parent",
        "parent-fw1",
        detector_minutes=0.02,
        crop_minutes=0.02,
        calibration_dirs=(),
    )
    assert child["parent"] == "parent" and child["version"] == "parent-fw1"
    assert child["flywheel"]["labelled_frames"] == 3 and child["flywheel"]["cases"] == 4
    assert child["flywheel"]["triggers"] == {"gt_error": 3, "low_confidence": 1}
    assert registry.load_card("parent-fw1")["parent"] == "parent"
    assert registry.load_crop_network("parent-fw1") is not None
    assert "parent-fw1" in registry.list_versions()
