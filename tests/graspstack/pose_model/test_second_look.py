"""The evidence an answer from the second look must carry (infer._second_look_fit_holds): a stage-1
proposal is always kept; a crop of unexplained pixels keeps its fit only when it explains the depth,
and a lego, the class most of the second look's false answers claim, is held to tighter bounds."""

from __future__ import annotations

import numpy as np
import pytest

from graspstack.pose_model.correspond import RigidFit
from graspstack.pose_model.crop_stage import CropResult, Proposal
from graspstack.pose_model.infer import SECOND_LOOK_FIT_BY_CLASS, _second_look_fit_holds
from graspstack.pose_model.refine import Refined


def _answer(class_name: str, source: str, score: float, free_space: float) -> tuple[CropResult, Refined]:
    proposal = Proposal(np.array([320.0, 240.0]), 0.8, class_name, source)
    fit = RigidFit(np.eye(3), np.zeros(3), 0.9, 0.003)
    crop = CropResult(proposal, class_name, 0.99, np.eye(4), fit, np.zeros((10, 3)), 0.9)
    return crop, Refined(np.eye(4), score, 0.9, free_space, "free")


@pytest.mark.parametrize(
    ("class_name", "source", "score", "free_space", "kept"),
    [
        ("lego", "detector", 1.5, 0.5, True),  # stage 1 proposed it: the confidence decides
        ("lego", "residual", 0.5, 0.02, True),
        ("lego", "residual", 0.65, 0.0, False),  # a teddy or mug with this score is kept
        ("lego", "residual", 0.4, 0.08, False),
        ("teddy", "residual", 0.65, 0.08, True),
        ("teddy", "residual", 0.75, 0.0, False),
        ("mug", "uncovered", 0.5, 0.12, False),
    ],
)
def test_second_look_fit_bounds(class_name, source, score, free_space, kept):
    assert _second_look_fit_holds(*_answer(class_name, source, score, free_space)) is kept


def test_lego_bounds_are_tighter_than_the_default():
    from graspstack.pose_model.infer import SECOND_LOOK_MAX_FREE_SPACE, SECOND_LOOK_MAX_SCORE

    max_score, max_free = SECOND_LOOK_FIT_BY_CLASS["lego"]
    assert max_score < SECOND_LOOK_MAX_SCORE and max_free < SECOND_LOOK_MAX_FREE_SPACE


def test_second_look_budget_takes_the_largest_blobs_then_only_lego_sized_ones():
    from graspstack.pose_model.infer import (
        MAX_RESIDUAL_LEGO_PROPOSALS,
        MAX_RESIDUAL_PROPOSALS,
        _second_look_budget,
    )

    sizes = ["teddy", "teddy", "teddy", "lego", "teddy", "lego", "lego", "lego", "lego", "lego"]
    blobs = [Proposal(np.array([float(i), 0.0]), 0.8, c, "residual") for i, c in enumerate(sizes)]
    kept = _second_look_budget(blobs)
    assert kept[:MAX_RESIDUAL_PROPOSALS] == blobs[:MAX_RESIDUAL_PROPOSALS]  # the largest, any size
    assert all(b.class_name == "lego" for b in kept[MAX_RESIDUAL_PROPOSALS:])
    assert len(kept) == MAX_RESIDUAL_LEGO_PROPOSALS
    assert _second_look_budget(blobs[:1]) == blobs[:1]
