import queue
import threading
import time

import pytest

from graspstack.serving.batcher import Batcher


def test_concurrent_requests_share_a_batch_and_keep_their_order():
    calls = []
    release = threading.Event()

    def fn(xs):
        calls.append(list(xs))
        release.wait(1)
        return [x * 10 for x in xs]

    b = Batcher(fn, max_batch_size=4, max_wait_s=0.2)
    futures = [b.submit(i) for i in range(4)]
    release.set()
    results = [f.result(timeout=5) for f in futures]
    assert [r.value for r in results] == [0, 10, 20, 30]
    assert calls == [[0, 1, 2, 3]]
    assert all(r.batch_size == 4 and r.queue_s >= 0 and r.compute_s >= 0 for r in results)
    b.close()


def test_batch_size_is_capped():
    seen = []
    b = Batcher(lambda xs: seen.append(len(xs)) or xs, max_batch_size=2, max_wait_s=0.2)
    futures = [b.submit(i) for i in range(5)]
    for f in futures:
        f.result(timeout=5)
    assert max(seen) <= 2 and sum(seen) == 5
    b.close()


def test_a_failing_batch_fails_its_callers_but_not_the_batcher():
    def fn(xs):
        if "bad" in xs:
            raise ValueError("corrupt input")
        return xs

    b = Batcher(fn, max_batch_size=1, max_wait_s=0)
    with pytest.raises(ValueError, match="corrupt"):
        b.submit("bad").result(timeout=5)
    assert b.submit("good").result(timeout=5).value == "good"
    b.close()


def test_full_queue_sheds_load():
    gate = threading.Event()
    b = Batcher(lambda xs: gate.wait(5) and xs, max_batch_size=1, max_wait_s=0, max_queue=2)
    b.submit(1)  # taken by the worker, blocks on the gate
    time.sleep(0.05)
    b.submit(2)
    b.submit(3)
    with pytest.raises(queue.Full):
        b.submit(4)
    gate.set()
    b.close()


def test_without_a_wait_requests_queued_during_a_call_share_the_next_batch():
    calls = []
    gate = threading.Event()

    def fn(xs):
        calls.append(list(xs))
        gate.wait(5)
        return xs

    b = Batcher(fn, max_batch_size=4, max_wait_s=0)
    first = b.submit(0)
    time.sleep(0.05)  # the worker is inside the first call now
    rest = [b.submit(i) for i in (1, 2, 3)]
    gate.set()
    for f in [first, *rest]:
        f.result(timeout=5)
    assert calls == [[0], [1, 2, 3]]  # no waiting for company, yet no request runs alone needlessly
    b.close()
