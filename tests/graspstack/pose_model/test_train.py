"""`graspstack train --stage crops`: a new second stage on top of a kept detector, from scratch or
fine-tuned from a shipped version's CropNet; `--stage detector`: a version's detector fine-tuned,
its CropNet kept. Seconds of training on a tiny registry: this checks the plumbing and the card, not
the gain (validation scores measure that)."""

from __future__ import annotations

import pytest
import torch

from graspstack.pose_model import registry
from graspstack.pose_model.crop_net import CropNet
from graspstack.pose_model.crop_train import blended
from graspstack.pose_model.network import PoseNet
from graspstack.pose_model.train import run_training


@pytest.fixture
def tiny_registry(tmp_path, monkeypatch):
    from lab.dataset import render_dataset

    monkeypatch.setenv("GRASPSTACK_MODELS", str(tmp_path / "models"))
    scenes = tmp_path / "scenes"
    render_dataset(scenes, 3, 4344, "nominal", workers=1, progress=False)
    registry.save_version("base", PoseNet(8), {"width": 8, "crop_width": 8})
    registry.save_crop_network("base", CropNet(8))
    return scenes


def _crop_state(version: str) -> dict[str, torch.Tensor]:
    return registry.load_crop_network(version).state_dict()


def _moved(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> list[str]:
    """The floating-point tensors that training changed."""
    assert before.keys() == after.keys()
    return [k for k in before if before[k].is_floating_point() and not torch.equal(before[k], after[k])]


def _kept_from_base(file_name: str) -> bool:
    """The child's weights file is the base's, byte for byte."""
    child, base = (registry._root(None) / v / file_name for v in ("child", "base"))
    return child.read_bytes() == base.read_bytes()


def _fine_tune_crops(scenes, **options) -> dict:
    """`graspstack train --stage crops --base base --crop-from base` into "child": its card."""
    return run_training(
        [str(scenes)],
        [],
        "child",
        0.0,
        stage="crops",
        base="base",
        crop_minutes=0.01,
        crop_from="base",
        **options,
    )


def test_fine_tuning_starts_from_the_named_versions_cropnet(tiny_registry):
    card = _fine_tune_crops(tiny_registry, crop_lr=5e-4)
    assert card["crop_training"]["init"] == "base's CropNet"
    assert card["crop_training"]["lr"] == 5e-4 and card["crop_training"]["steps"] >= 1
    assert card["crop_width"] == 8  # the width of the network it started from, not the default 32
    assert _moved(_crop_state("base"), _crop_state("child")), "fine-tuning left every weight where it was"
    assert _kept_from_base(registry.WEIGHTS_FILE)


def test_mined_fine_tuning_draws_on_the_crops_the_base_gets_wrong(tiny_registry):
    # An untrained base answers nothing, so every counted object's crop is hard.
    card = _fine_tune_crops(tiny_registry, crop_mine="base", crop_mine_share=0.5)
    training = card["crop_training"]
    assert training["mined_by"] == "base" and training["hard_share"] == 0.5
    assert 0 < training["hard_crops"] < training["crops"]  # the negatives are never hard


def test_blended_fine_tuning_keeps_its_share_of_the_tuned_weights(tiny_registry):
    card = _fine_tune_crops(tiny_registry, crop_blend=0.5)
    assert card["crop_training"]["blend"] == "0.5 of the fine-tuned weights, 0.5 of base's"
    assert _moved(_crop_state("base"), _crop_state("child"))


def test_blending_without_a_cropnet_to_blend_with_is_refused(tiny_registry):
    with pytest.raises(ValueError, match="--crop-blend needs --crop-from"):
        run_training([str(tiny_registry)], [], "child", 0.0, stage="crops", base="base", crop_blend=0.5)


def test_blended_weights_lie_between_the_start_and_the_tuned_ones():
    torch.manual_seed(0)
    start, tuned = CropNet(8), CropNet(8)
    tuned.enc1[0][1].num_batches_tracked += 7
    a, b = start.state_dict(), {k: v.clone() for k, v in tuned.state_dict().items()}
    out = blended(start, tuned, 0.25).state_dict()
    for k in out:
        expected = a[k] + 0.25 * (b[k] - a[k]) if out[k].is_floating_point() else b[k]
        assert torch.allclose(out[k], expected), k
    assert int(out["enc1.0.1.num_batches_tracked"]) == 7


def test_crop_width_widens_the_cropnet_it_fine_tunes(tiny_registry):
    card = _fine_tune_crops(tiny_registry, crop_width=12)
    assert card["crop_width"] == 12 and card["crop_training"]["init"] == "base's CropNet, widened to 12"
    wide = registry.load_crop_network("child")  # loads at the card's width
    assert wide.enc1[0][0].out_channels == 12
    assert card["crop_parameters"] == sum(p.numel() for p in wide.parameters())


def test_fine_tuning_from_a_version_without_a_cropnet_is_refused(tiny_registry):
    registry.save_version("one-stage", PoseNet(8), {"width": 8})
    with pytest.raises(ValueError, match="no CropNet to fine-tune"):
        run_training(
            [str(tiny_registry)], [], "child", 0.0, stage="crops", base="base", crop_from="one-stage"
        )


def test_detector_fine_tuning_moves_the_detector_and_keeps_the_cropnet(tiny_registry):
    card = run_training(
        [str(tiny_registry)], [], "child", minutes=0.01, stage="detector", base="base", lr=5e-4
    )
    assert card["training"]["init"] == "base's detector" and card["training"]["lr"] == 5e-4
    assert card["width"] == 8 and card["crop_from"] == "base" and card["crop_width"] == 8
    before, after = (registry.load_network(v)[0].state_dict() for v in ("base", "child"))
    assert _moved(before, after), "fine-tuning left every detector weight where it was"
    assert _kept_from_base(registry.CROP_WEIGHTS_FILE)


def test_detector_fine_tuning_of_a_one_stage_version_is_refused_before_training(tiny_registry):
    registry.save_version("one-stage", PoseNet(8), {"width": 8})
    with pytest.raises(ValueError, match="no CropNet to keep"):
        run_training([str(tiny_registry)], [], "child", 5.0, stage="detector", base="one-stage")


@pytest.fixture(scope="module")
def more_hard_scenes(tmp_path_factory):
    """Three nominal scenes hold too few legos on their side, or mugs, to learn from."""
    from lab.dataset import render_dataset

    more = tmp_path_factory.mktemp("more")
    render_dataset(more, 12, 4345, "hard", workers=1, progress=False)
    return more


@pytest.mark.parametrize("kind", ["wayround", "handle", "studs"])
def test_a_frame_net_stage_adds_the_net_to_a_copy_and_keeps_the_other_weights(
    tiny_registry, more_hard_scenes, kind
):
    card = run_training(
        [str(tiny_registry), str(more_hard_scenes)], [], "child", 0.02, stage=kind, base="base"
    )
    assert card["version"] == "child" and card[kind]["train_crops"] > 0 and card[kind]["steps"] >= 1
    if kind == "wayround":
        assert 0.0 <= card[kind]["held_out_accuracy"] <= 1.0
    elif kind == "studs":
        assert 0.0 <= card[kind]["held_out_within_45_deg"] <= 1.0
    else:
        assert card[kind]["held_out_error"]["all"]["n"] == card[kind]["held_out_crops"]
    assert registry.load_frame_network(kind, "child") is not None
    assert registry.load_frame_network(kind, "base") is None  # the base is left as it was
    assert _kept_from_base(registry.WEIGHTS_FILE) and _kept_from_base(registry.CROP_WEIGHTS_FILE)


def test_retraining_a_stage_keeps_the_bases_wayround_net(tiny_registry):
    from graspstack.pose_model.wayround import WayRoundNet

    registry.save_frame_network("wayround", "base", WayRoundNet())
    registry.write_card("base", registry.load_card("base") | {"wayround": {"train_crops": 7}})
    card = _fine_tune_crops(tiny_registry)
    assert _kept_from_base(registry.WAYROUND_WEIGHTS_FILE)
    assert card["wayround"] == {"train_crops": 7, "from": "base"}


def test_a_failed_stage_leaves_no_half_made_copy(tiny_registry, monkeypatch):
    """A stage that fails while adding its part to a copy of the base removes the copy: a pilot or
    `graspstack eval --predictor model:child` must not find a version without the part its card
    promises. The base is left as it was."""
    import graspstack.pose_model.studs_train as studs_train

    def failing(train_dirs, minutes):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(studs_train, "train_studs", failing)
    with pytest.raises(RuntimeError, match="out of memory"):
        run_training([str(tiny_registry)], [], "child", 0.02, stage="studs", base="base")
    assert not (registry._root(None) / "child").exists()
    assert "base" in registry.list_versions()
