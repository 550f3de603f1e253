"""Leases: two labelers never hold the same case; an expired lease frees it."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from graspstack.flywheel.labeling import Labeling, LeaseError
from graspstack.flywheel.store import CaseNotFound
from graspstack.frames import ObjectPose


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def labeling(store, cases):
    for c in cases[:10]:
        store.put(c)
    clock = Clock()
    lab = Labeling(store, lease_s=60, max_skips=2, clock=clock)
    lab.clock_ = clock
    return lab


def _label() -> list[ObjectPose]:
    return [ObjectPose("duck", np.array([0.01, 0.0, 0.6]), np.array([0.0, 0.0, 0.0, 1.0]))]


def test_leases_are_exclusive_while_they_hold(labeling):
    _, a = labeling.pull("alice", 4)
    _, b = labeling.pull("bob", 4)
    ids_a, ids_b = {c.case_id for c in a}, {c.case_id for c in b}
    assert len(ids_a) == 4 and len(ids_b) == 4 and not ids_a & ids_b
    with pytest.raises(LeaseError):
        labeling.submit("bob", a[0].case_id, _label())
    with pytest.raises(LeaseError):
        labeling.skip("bob", a[0].case_id)
    assert labeling.stats()["leased"] == 8


def test_concurrent_pulls_never_share_a_case(labeling):
    got: dict[str, set[str]] = {}

    def pull(name: str) -> None:
        got[name] = {c.case_id for c in labeling.pull(name, 3)[1]}

    threads = [threading.Thread(target=pull, args=(f"l{i}",)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [i for s in got.values() for i in s]
    assert len(everything) == len(set(everything)) == 10


def test_an_expired_lease_frees_the_case(labeling):
    _, a = labeling.pull("alice", 10)
    assert labeling.pull("bob", 10)[1] == []
    labeling.clock_.now += 61
    _, b = labeling.pull("bob", 10)
    assert {c.case_id for c in b} == {c.case_id for c in a}
    with pytest.raises(LeaseError):  # bob holds it now
        labeling.submit("alice", a[0].case_id, _label())
    labeling.submit("bob", a[0].case_id, _label(), source="human")
    assert labeling.labels(a[0].case_id)[0]["class"] == "duck"
    with pytest.raises(LeaseError):  # already labelled
        labeling.submit("bob", a[0].case_id, _label())


def test_submit_skip_and_stats(labeling):
    _, batch = labeling.pull("alice", 3)
    labeling.submit("alice", batch[0].case_id, _label())
    labeling.skip("alice", batch[1].case_id, "blurry")
    _, again = labeling.pull("alice", 10)  # own leases renewed, skipped case ordered last
    assert again[-1].case_id == batch[1].case_id
    labeling.skip("alice", batch[1].case_id, "still blurry")  # second skip: out of the queue
    stats = labeling.stats()
    assert (stats["stored"], stats["labelled"], stats["skipped"], stats["unlabelled"]) == (10, 1, 1, 8)
    with pytest.raises(CaseNotFound):
        labeling.submit("alice", "case:nope", _label())
    with pytest.raises(ValueError):
        labeling.pull("", 1)
