"""The degraded candidate perturbs every stage of its parent and says so in its card."""

from __future__ import annotations

import numpy as np
import torch
from safetensors.torch import load_file

from graspstack.pilot.degrade import make_degraded
from graspstack.pose_model import registry
from graspstack.pose_model.crop_net import CropNet
from graspstack.pose_model.network import PoseNet
from graspstack.pose_model.ranker import N_FEATURES, Ranker


def test_degraded_copy_perturbs_both_stages(tmp_path, monkeypatch):
    monkeypatch.setenv("GRASPSTACK_MODELS", str(tmp_path))
    registry.save_version("v9", PoseNet(8), {"width": 8, "crop_width": 8})
    registry.save_crop_network("v9", CropNet(8))
    version = make_degraded("v9")
    assert version == "degraded-v9"
    card = registry.load_card(version)
    assert card["degraded"] and card["parent"] == "v9"
    for name in (registry.WEIGHTS_FILE, registry.CROP_WEIGHTS_FILE):
        before = load_file(str(tmp_path / "v9" / name))
        after = load_file(str(tmp_path / version / name))
        weights = [k for k, t in before.items() if k.endswith("weight") and t.dim() == 4]  # convolutions
        assert weights and all(not torch.equal(before[k], after[k]) for k in weights), name


def test_a_degraded_copy_keeps_its_parents_ranker_loadable(tmp_path, monkeypatch):
    monkeypatch.setenv("GRASPSTACK_MODELS", str(tmp_path))
    registry.save_version("v9", PoseNet(8), {"width": 8})
    n = N_FEATURES
    w1 = np.random.default_rng(0).normal(size=(4, n))
    Ranker(np.zeros(n), np.ones(n), w1, np.zeros(4), np.ones((1, 4)), [0.0], 0.25).save(tmp_path / "v9")
    version = make_degraded("v9")
    ranker = Ranker.load(tmp_path / version)
    assert ranker.margin == 0.25  # what the pilot's candidate loads: the margin survives the rewrite
    assert not np.allclose(ranker.w1, w1)  # the weights are perturbed like the rest
