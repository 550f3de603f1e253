"""ObjectMap: per-object work on worker threads, in order, with forward passes kept on the caller."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from graspstack.frames import Frame
from graspstack.pose_model.infer import ModelPredictor
from graspstack.pose_model.object_map import ObjectMap


def test_results_follow_the_items_order_whatever_finishes_first():
    objects = ObjectMap(2)
    slow_first = threading.Event()

    def work(i: int) -> int:
        if i == 0:
            slow_first.wait(timeout=2.0)  # item 0 finishes after item 1 has
        else:
            slow_first.set()
        return i * 10

    assert objects.map(work, [0, 1, 2, 3]) == [0, 10, 20, 30]


def test_work_runs_on_the_workers_and_on_caller_functions_on_the_calling_thread():
    objects = ObjectMap(2)
    caller = threading.get_ident()
    where_run = objects.on_caller(lambda: threading.get_ident())

    def work(_: int) -> tuple[int, int]:
        return threading.get_ident(), where_run()

    seen = objects.map(work, range(6))
    assert all(worker != caller for worker, _ in seen)
    assert all(forward == caller for _, forward in seen)
    assert where_run() == caller  # called outside a map: runs where it is called


def test_one_worker_or_one_item_runs_in_the_calling_thread():
    caller = threading.get_ident()
    assert ObjectMap(1).map(lambda _: threading.get_ident(), range(3)) == [caller] * 3
    assert ObjectMap(2).map(lambda _: threading.get_ident(), [0]) == [caller]


def test_errors_reach_the_caller_from_the_work_and_from_a_dispatched_call():
    objects = ObjectMap(2)

    def failing_forward(x: int) -> int:
        raise ValueError(f"bad crop {x}")

    forward = objects.on_caller(failing_forward)
    with pytest.raises(ValueError, match="bad crop 1"):
        objects.map(lambda i: forward(i) if i == 1 else i, range(4))
    with pytest.raises(ZeroDivisionError):
        objects.map(lambda i: 1 // (i - 2), range(4))
    assert objects.map(lambda i: i + 1, range(3)) == [1, 2, 3]  # still serves after a failure


def test_the_model_answers_the_same_with_one_or_two_object_workers(hard_scenes):
    one = ModelPredictor(object_workers=1)
    two = ModelPredictor(object_workers=2)
    for r in hard_scenes:
        frame = Frame(r.rgb, r.depth_m, r.scene.intrinsics_obj())
        a, b = one.predict(frame), two.predict(frame)
        assert len(a) == len(b) > 0
        for p, q in zip(a, b, strict=True):
            assert p.class_name == q.class_name and p.confidence == q.confidence
            np.testing.assert_array_equal(p.position_m, q.position_m)
            np.testing.assert_array_equal(p.quaternion_xyzw, q.quaternion_xyzw)
