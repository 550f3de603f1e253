"""Producer, stream and consumer against a real redis-server: nothing lost, nothing duplicated."""

from __future__ import annotations

import threading
import time

import pytest

from graspstack.flywheel import chaos
from graspstack.flywheel.consumer import CaseConsumer, dead_letters, replay_dead_letters
from graspstack.flywheel.producer import CaseProducer
from graspstack.flywheel.streams import CASES_STREAM, DEAD_LETTER_STREAM, redis_client, stream_stats

pytestmark = pytest.mark.integration


class Crash(BaseException):
    """Stands for the process dying: nothing after it runs (not caught by the consumer's loop)."""


def _consumer(server, store, name="c1", **kwargs) -> CaseConsumer:
    opts = {"block_ms": 50, "claim_idle_ms": 200, "retry_base_s": 0.02, "trim_every_s": 0.0, **kwargs}
    c = CaseConsumer(redis_client(server.url, 1.0), store, name=name, **opts)
    c.ensure_group()
    return c


def _produce(server, cases) -> None:
    producer = CaseProducer(redis_client(server.url))
    for c in cases:
        assert producer.submit(c)
    assert producer.close(timeout_s=10)


def test_producer_never_blocks_buffers_while_redis_is_down_and_delivers_after(durable_redis, cases):
    durable_redis.kill()
    producer = CaseProducer.from_url(durable_redis.url, timeout_s=0.2, max_buffered=15, retry_max_s=0.05)
    start = time.monotonic()
    kept = [producer.submit(c) for c in cases]
    assert time.monotonic() - start < 0.5  # submit never waits for Redis
    assert kept == [True] * 15 + [False] * 5  # bounded buffer: the overflow is refused...
    assert producer.stats().dropped == 5  # ...and counted
    assert not producer.flush(timeout_s=0.3)
    durable_redis.start()
    assert producer.flush(timeout_s=10)
    stats = producer.stats()
    assert (stats.sent, stats.buffered) == (15, 0)
    ids = [f[b"case_id"].decode() for _, f in redis_client(durable_redis.url).xrange(CASES_STREAM)]
    assert ids == [c.case_id for c in cases[:15]]  # in order
    producer.close()


def test_consumer_crash_between_store_and_ack_then_restart_loses_and_duplicates_nothing(
    durable_redis, store, cases
):
    _produce(durable_redis, cases)
    first = _consumer(durable_redis, store, batch_size=8)
    acked = 0

    def crash_on_fifth(_entry_id: str) -> None:
        nonlocal acked
        acked += 1
        if acked == 5:
            raise Crash

    first.before_ack = crash_on_fifth
    with pytest.raises(Crash):
        first.poll()
    assert store.count() == 5  # the fifth is stored, never acknowledged
    assert stream_stats(first.client)["pending"] == 4  # the fifth and the three read after it

    again = _consumer(durable_redis, store, batch_size=8)  # same name: re-reads its own pending first
    assert again.drain(timeout_s=10)
    assert again.stats.recovered == 4 and again.stats.duplicates == 1
    assert sorted(store.case_ids()) == sorted(c.case_id for c in cases)


def test_entries_pending_on_a_dead_consumer_are_claimed_after_the_idle_time(durable_redis, store, cases):
    _produce(durable_redis, cases[:6])
    dead = _consumer(durable_redis, store, name="dead", batch_size=6)
    dead.before_ack = lambda _id: (_ for _ in ()).throw(Crash())
    with pytest.raises(Crash):
        dead.poll()
    other = _consumer(durable_redis, store, name="alive", claim_idle_ms=300)
    other.poll()
    assert store.count() == 1 and other.stats.claimed == 0  # not idle long enough yet
    time.sleep(0.35)
    assert other.drain(timeout_s=10)
    assert other.stats.claimed == 6 and other.stats.duplicates == 1
    assert store.count() == 6


def test_poison_entry_is_dead_lettered_with_its_reason_after_n_failures(durable_redis, store, cases):
    client = redis_client(durable_redis.url)
    _produce(durable_redis, cases[:2])
    client.xadd(CASES_STREAM, {"case_id": "case:bad", "meta": b"{not json"})
    _produce(durable_redis, cases[2:4])
    consumer = _consumer(durable_redis, store, max_deliveries=3)
    assert consumer.drain(timeout_s=10)
    assert store.count() == 4
    dead = dead_letters(client)
    assert len(dead) == 1 and dead[0]["case_id"] == "case:bad" and dead[0]["deliveries"] == 3
    assert "CaseError" in dead[0]["reason"] and "not JSON" in dead[0]["reason"]
    assert consumer.stats.failures == 3 and stream_stats(client)["pending"] == 0
    assert client.xlen(DEAD_LETTER_STREAM) == 1
    assert replay_dead_letters(client) == 1 and client.xlen(DEAD_LETTER_STREAM) == 0


def test_trimming_never_passes_an_entry_that_is_not_stored(durable_redis, store, cases):
    _produce(durable_redis, cases[:10])
    consumer = _consumer(durable_redis, store, batch_size=10)
    calls = 0

    def fail_from_the_fourth(_entry_id: str) -> None:
        nonlocal calls
        calls += 1
        if calls >= 4:
            raise Crash

    consumer.before_ack = fail_from_the_fourth
    with pytest.raises(Crash):
        consumer.poll()
    consumer.trim()
    client = redis_client(durable_redis.url)
    assert client.xlen(CASES_STREAM) == 7  # the 3 acknowledged went; the pending 7 stay
    consumer.before_ack = None
    assert consumer.drain(timeout_s=10)
    consumer.trim()
    assert client.xlen(CASES_STREAM) == 0 and store.count() == 10


def test_redis_sigkill_while_producing_loses_and_duplicates_nothing(tmp_path):
    row = chaos.redis_sigkill(tmp_path, n_cases=90, robots=3, down_s=0.3)
    assert (row.produced, row.stored, row.lost, row.duplicated) == (90, 90, 0, 0)


def test_disk_write_failing_once_is_retried_not_lost(tmp_path):
    row = chaos.disk_write_fails_once(tmp_path, n_cases=20)
    assert (row.produced, row.stored, row.lost, row.duplicated, row.dead_lettered) == (20, 20, 0, 0, 0)
    assert "1 write failed" in row.note


def test_consumer_thread_rides_out_a_redis_restart(durable_redis, store, cases):
    consumer = _consumer(durable_redis, store)
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    thread.start()
    _produce(durable_redis, cases[:10])
    durable_redis.kill()
    durable_redis.start()
    _produce(durable_redis, cases[10:])
    deadline = time.monotonic() + 10
    while store.count() < len(cases) and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    thread.join(timeout=5)
    assert store.count() == len(cases)


def test_consumer_process_sigkilled_mid_batch_and_restarted_loses_and_duplicates_nothing(tmp_path):
    row = chaos.consumer_sigkill(tmp_path, n_cases=60, kill_after=20)
    assert (row.produced, row.stored, row.lost, row.duplicated) == (60, 60, 0, 0)
