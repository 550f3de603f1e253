"""The pose model registry: save, list, activate and load versions."""

from __future__ import annotations

import pytest
import torch

from graspstack.pose_model import registry
from graspstack.pose_model.network import PoseNet


def test_save_list_activate_load(tmp_path):
    net = PoseNet()
    registry.save_version("v1", net, {"width": 24, "note": "first"}, root=tmp_path)
    registry.save_version("v2", net, {"width": 24}, root=tmp_path)
    assert registry.list_versions(tmp_path) == ["v1", "v2"]
    with pytest.raises(FileNotFoundError):
        registry.active_version(tmp_path)
    registry.activate("v2", root=tmp_path)
    assert registry.active_version(tmp_path) == "v2"
    registry.activate("v1", root=tmp_path)  # roll back
    loaded, version = registry.load_network(root=tmp_path)
    assert version == "v1" and registry.load_card("v1", tmp_path)["note"] == "first"
    for a, b in zip(net.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_activate_unknown_version_fails(tmp_path):
    with pytest.raises(ValueError):
        registry.activate("nope", root=tmp_path)


def test_folded_batchnorm_gives_the_same_outputs():
    net = PoseNet()
    # Non-trivial running statistics, as after training.
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    net.eval()
    x = torch.randn(1, 7, 64, 96)
    with torch.inference_mode():
        ref = net(x)
        fused = registry.fold_batchnorm(net)(x)
    assert torch.allclose(ref, fused, atol=1e-4)
