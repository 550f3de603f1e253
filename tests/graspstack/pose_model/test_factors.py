"""The hard-slice factor analysis changes one factor per variant and leaves the lab's rules as found."""

from __future__ import annotations

import dataclasses

from graspstack.pose_model import factors
from lab.envelope import RULES


def _changed(a, b) -> set[str]:
    return {f.name for f in dataclasses.fields(a) if getattr(a, f.name) != getattr(b, f.name)}


def test_each_variant_changes_only_its_factor():
    v = factors.variants()
    hard = v["hard"]
    assert hard == RULES["hard"]
    noise = {"depth_noise_factor", "depth_dropout", "dropout_on_edges"}
    assert _changed(v["nominal depth noise"], hard) == noise
    assert _changed(v["no depth noise"], hard) == noise
    assert _changed(v["nominal light"], hard) <= {"ambient", "diffuse", "specular"}


def test_a_run_scores_every_variant_and_restores_the_rules():
    before = RULES["hard"]
    result = factors.run(None, 1)
    assert RULES["hard"] is before
    assert set(result["variants"]) == set(factors.variants())
    for v in result["variants"].values():
        assert v["n_objects"] >= 5 and 0.0 <= v["within_spec_rate"] <= 1.0
