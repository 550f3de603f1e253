"""The hypothesis ranker: what it reads off each hypothesis, how it chooses, how it is stored, how
refine_pose asks it, and how its training labels and fits."""

from __future__ import annotations

import numpy as np
import pytest

from graspstack.frames import ObjectPose
from graspstack.geometry import matrix_to_quat, rot_z
from graspstack.pose_model import ranker_train
from graspstack.pose_model.ranker import CLASSES, KINDS, N_FEATURES, Ranker, features
from graspstack.pose_model.ranker_train import Example, Outcomes, _fit, _labelled, _ranker, switches
from graspstack.pose_model.refine import Hypotheses, refine_pose
from graspstack.predictors.scripted.priors import load_priors

INLIERS = len(CLASSES) + len(KINDS) + 1  # the feature column of a hypothesis's inlier ratio
DEFAULT = len(CLASSES) + len(KINDS) + 6  # the column that marks the default choice


def _hypotheses(n: int = 3, default: int = 0, cls: str = "mug") -> Hypotheses:
    R = np.stack([rot_z(30.0 * j) for j in range(n)])
    t = np.array([[0.01 * j, 0.0, 0.05] for j in range(n)])
    names = ["free", "resting", "restart", "search"][:n]
    return Hypotheses(
        cls,
        names,
        np.linspace(0.5, 0.3, n),
        np.linspace(0.6, 0.9, n),
        np.zeros(n),
        R,
        t,
        np.eye(3),
        np.array([0.0, 0.0, 0.05]),
        load_priors().resting[cls],
        default,
    )


def _inlier_ranker(margin: float, gain: float = 10.0) -> Ranker:
    """A ranker whose logit is gain x a hypothesis's inlier ratio."""
    w1 = np.zeros((1, N_FEATURES))
    w1[0, INLIERS] = 1.0
    return Ranker(np.zeros(N_FEATURES), np.ones(N_FEATURES), w1, np.zeros(1), [[gain]], [0.0], margin)


def test_features_describe_each_hypothesis_and_where_it_stands():
    h = _hypotheses(3, default=1)
    f = features(h)
    assert f.shape == (3, N_FEATURES) and f.dtype == np.float32
    assert np.all(f[:, CLASSES.index("mug")] == 1.0) and f[:, : len(CLASSES)].sum() == 3
    kinds = f[:, len(CLASSES) : len(CLASSES) + len(KINDS)]
    assert np.array_equal(kinds.argmax(1), [0, 1, 2])
    assert np.array_equal(f[:, DEFAULT], [0.0, 1.0, 0.0])
    assert np.allclose(f[:, INLIERS], h.inliers)
    base = len(CLASSES) + len(KINDS)
    assert np.allclose(f[:, base + 3], h.score - h.score.min())  # behind the best score
    assert np.allclose(f[:, base + 4], h.score - h.score[1])  # behind the default's
    assert np.allclose(f[:, base + 7], [0.0, 30.0 / 90.0, 60.0 / 90.0], atol=1e-5)  # turned from the seed


def test_the_ranker_switches_only_when_it_prefers_another_by_more_than_its_margin():
    h = _hypotheses(3, default=0)  # inliers 0.6, 0.75, 0.9: the ranker prefers the last
    p = _inlier_ranker(margin=0.0).probabilities(h)
    assert np.isclose(p.sum(), 1.0) and int(np.argmax(p)) == 2
    assert _inlier_ranker(margin=0.0).choose(h) == 2
    assert _inlier_ranker(margin=float(p[2] - p[0]) + 0.01).choose(h) == 0
    assert _inlier_ranker(margin=0.0, gain=-10.0).choose(h) == 0  # the default is its own favourite


def test_a_ranker_is_stored_beside_the_version_and_refuses_other_features(tmp_path):
    assert Ranker.load(tmp_path) is None  # a version without one chooses by score
    ranker = _inlier_ranker(margin=0.25)
    ranker.save(tmp_path)
    loaded = Ranker.load(tmp_path)
    h = _hypotheses(3)
    assert loaded.margin == 0.25 and np.allclose(loaded.probabilities(h), ranker.probabilities(h))
    Ranker(np.zeros(4), np.ones(4), np.zeros((1, 4)), [0.0], [[1.0]], [0.0], 0.1).save(tmp_path)
    with pytest.raises(ValueError, match="features"):
        Ranker.load(tmp_path)


def test_refine_pose_shows_the_chooser_its_hypotheses_and_keeps_its_choice(scene_objects, nominal_scenes):
    resting = load_priors().resting["lego"]
    seen = []

    def last(h: Hypotheses) -> int:
        seen.append(h)
        return len(h.names) - 1  # the search, which the default would not pick on a near tie

    for r, intr, frame_points, valid, plane, k, gt, T_gt in scene_objects(nominal_scenes):
        pts = frame_points[(r.masks == k + 1) & valid]
        if gt.class_name != "lego" or len(pts) < 100:
            continue
        fit = refine_pose(
            T_gt, pts, "lego", plane, resting, r.depth_m, intr, fallback_score=0.0, search_handicap=1e9,
            table_hypothesis=False, choose=last,
        )  # fmt: skip
        h = seen[-1]
        assert h.names[-1] == "search" and h.default != len(h.names) - 1  # the handicap keeps the seeded fit
        assert fit.hypothesis.split("+")[0] == "search"
        assert all("+" not in n for n in h.names)  # what the chooser keeps is not the polished winner
        assert h.score.shape == h.inliers.shape == (len(h.names),) and h.R.shape == (len(h.names), 3, 3)
    assert len(seen) >= 2


def _pose(cls: str, x: float, yaw_deg: float) -> ObjectPose:
    return ObjectPose(cls, np.array([x, 0.0, 0.6]), matrix_to_quat(rot_z(yaw_deg)))


def test_each_hypothesis_is_labelled_by_the_answer_it_leads_to():
    gt = [_pose("mug", 0.0, 0.0), _pose("mug", 0.2, 0.0), _pose("duck", 0.0, 0.0)]
    answers = [_pose("mug", 0.203, 20.0), _pose("mug", 0.202, 2.0), None]  # about the second mug
    ex = _labelled(Outcomes(_hypotheses(3), answers), gt, "s")
    assert np.array_equal(ex.good, [False, True, False]) and ex.default == 0
    far = [_pose("mug", 0.1, 0.0), None, None]  # 10 cm from either mug: about none of them
    assert _labelled(Outcomes(_hypotheses(3), far), gt, "s") is None
    assert _labelled(Outcomes(_hypotheses(3), [None] * 3), gt, "s") is None


def test_the_fitted_ranker_learns_a_rule_that_separates_good_from_bad_hypotheses():
    rng = np.random.default_rng(0)
    examples = []
    for _ in range(60):  # the hypothesis with the most inliers is the good one; the default is random
        f = rng.normal(size=(4, N_FEATURES)).astype(np.float32)
        good = np.zeros(4, dtype=bool)
        good[int(np.argmax(f[:, INLIERS]))] = True
        examples.append(Example("s", f, good, int(rng.integers(4))))
    mean, scale = np.zeros(N_FEATURES), np.ones(N_FEATURES)
    net = _fit(examples, mean, scale, seed=0, epochs=40)
    counts = switches(_ranker(net, mean, scale, 0.1), examples)
    assert counts["gained"] >= 30 and counts["broken"] <= 3
    assert switches(_ranker(net, mean, scale, 1.0), examples)["switched"] == 0  # no switch beats 1.0


def test_a_handful_of_disputed_objects_still_fits():
    f = np.eye(2, N_FEATURES, dtype=np.float32)
    examples = [Example("s", f, np.array([True, False]), 1) for _ in range(3)]  # fewer than 8 batches
    _fit(examples, np.zeros(N_FEATURES), np.ones(N_FEATURES), seed=0, epochs=2)


def test_scenes_where_no_hypotheses_disagree_are_refused(monkeypatch):
    agreed = [
        Example(f"s{k}", np.zeros((2, N_FEATURES), np.float32), np.array([True, True]), 0) for k in range(10)
    ]
    monkeypatch.setattr(ranker_train, "collect", lambda base, roots: agreed)
    with pytest.raises(ValueError, match="nothing to learn"):
        ranker_train.train_ranker("v17", [])
