"""Failure drills against real redis-server processes (`make chaos`): prints, per scenario, how
many cases were produced, stored, duplicated and lost.

1. redis_sigkill: robots keep producing while Redis is SIGKILLed and restarted from its AOF;
2. consumer_sigkill: the consumer process is SIGKILLed mid-batch (between store and XACK) and
   restarted under the same name;
3. disk_write_fails_once: the store's first blob write raises ENOSPC.

produced = cases the robots handed to their producers; lost = of those, not in the store;
duplicated = store rows beyond one per case. redelivered = entries the store saw again and
absorbed (the mechanism at work, not an error).
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import redis

from graspstack.flywheel.cases import HardCase
from graspstack.flywheel.consumer import CaseConsumer
from graspstack.flywheel.producer import CaseProducer
from graspstack.flywheel.store import CaseStore
from graspstack.flywheel.streams import redis_client, stream_stats
from graspstack.frames import Intrinsics, ObjectPose
from graspstack.runtime.redis_server import RedisServer, free_port

INTR = Intrinsics(580.0, 580.0, 320.0, 240.0, 640, 480)


class DurableRedis(RedisServer):
    """RedisServer with appendfsync always: every acknowledged write is on disk before the reply."""

    def __init__(self, data_dir, port: int, fsync: str = "always"):
        super().__init__(data_dir, port)
        self.fsync = fsync

    def command(self) -> list[str]:
        cmd = super().command()
        cmd[cmd.index("--appendfsync") + 1] = self.fsync
        return cmd


def make_case(robot: str, n: int, payload_bytes: int = 4096) -> HardCase:
    """A distinct synthetic case (random bytes stand in for the encoded images)."""
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(f"{robot}/{n}".encode()).digest()[:8]))
    rgb = rng.bytes(payload_bytes)
    depth = rng.bytes(payload_bytes // 2)
    fid = "sha256:" + hashlib.sha256(rgb + depth).hexdigest()
    pose = ObjectPose("duck", np.array([0.0, 0.0, 0.6]), np.array([0.0, 0.0, 0.0, 1.0]), 0.2)
    return HardCase(
        frame_id=fid,
        trigger="low_confidence",
        model_version="chaos",
        intrinsics=INTR,
        poses=[pose],
        trigger_config_version="chaos",
        robot_id=robot,
        stage="lab",
        rgb=rgb,
        depth=depth,
    )


@dataclass
class Row:
    scenario: str
    produced: int
    stored: int
    duplicated: int
    lost: int
    redelivered: int = 0
    dead_lettered: int = 0
    note: str = ""


def tally(scenario: str, expected: set[str], store: CaseStore, redelivered: int, dead: int, note: str) -> Row:
    rows = store.case_ids()
    stored = set(rows)
    return Row(
        scenario,
        produced=len(expected),
        stored=len(stored & expected),
        duplicated=len(rows) - len(stored),
        lost=len(expected - stored),
        redelivered=redelivered,
        dead_lettered=dead,
        note=note,
    )


def _consumer(url: str, store: CaseStore, name: str = "chaos-1", **kwargs) -> CaseConsumer:
    opts = {"block_ms": 100, "claim_idle_ms": 1000, "retry_base_s": 0.05, "trim_every_s": 0.5, **kwargs}
    c = CaseConsumer(redis_client(url, 1.0), store, name=name, **opts)
    return c


def _wait_drained(client: redis.Redis, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            s = stream_stats(client)
            if s["pending"] == 0 and s["lag"] == 0:
                return
        except redis.RedisError:
            pass
        time.sleep(0.05)
    raise TimeoutError("the consumer did not drain the stream")


# -- 1. Redis SIGKILLed and restarted while robots produce -----------------------------------------
def redis_sigkill(
    workdir: Path, n_cases: int = 300, robots: int = 3, down_s: float = 0.5, fsync: str = "always"
) -> Row:
    server = DurableRedis(workdir / "redis", free_port(), fsync).start()
    store = CaseStore(workdir / "store")
    consumer = _consumer(server.url, store)
    consumer.ensure_group()
    stop = threading.Event()
    consumer_thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    consumer_thread.start()
    producers = [CaseProducer.from_url(server.url, timeout_s=0.5, retry_max_s=0.2) for _ in range(robots)]
    expected: set[str] = set()
    lock = threading.Lock()
    per_robot = n_cases // robots

    def robot(r: int) -> None:
        for n in range(per_robot):
            case = make_case(f"robot-{r}", n)
            with lock:
                expected.add(case.case_id)
            producers[r].submit(case)
            time.sleep(0.004)

    threads = [threading.Thread(target=robot, args=(r,)) for r in range(robots)]
    try:
        for t in threads:
            t.start()
        time.sleep(per_robot * 0.004 / 3)  # a third of the way in
        server.kill()
        time.sleep(down_s)
        server.start()
        for t in threads:
            t.join()
        for p in producers:
            p.close(timeout_s=20)
        _wait_drained(redis_client(server.url))
        stop.set()
        consumer_thread.join(timeout=5)
        dropped = sum(p.stats().dropped for p in producers)
        row = tally(
            "redis_sigkill", expected, store, consumer.stats.duplicates, consumer.stats.dead_lettered,
            f"down {down_s}s, appendfsync {fsync}, producer drops {dropped}",
        )  # fmt: skip
    finally:
        stop.set()
        server.stop()
        store.close()
    return row


# -- 2. the consumer process SIGKILLed mid-batch and restarted -------------------------------------
def _consumer_process(url: str, store_dir: str, name: str, ack_delay_s: float) -> None:
    """Body of the consumer subprocess: consume forever, slow between store and ack."""
    store = CaseStore(store_dir)
    consumer = _consumer(url, store, name=name, claim_idle_ms=60_000)
    consumer.before_ack = lambda _id: time.sleep(ack_delay_s)  # widen the store-then-ack window
    consumer.ensure_group()
    print("ready", flush=True)
    consumer.run(threading.Event())


def _queue_all(client, n_cases: int) -> list[HardCase]:
    """Queue n cases from one robot at once (the buffer has room for all) and wait until sent."""
    producer = CaseProducer(client, max_buffered=n_cases)
    cases = [make_case("robot-0", n) for n in range(n_cases)]
    for c in cases:
        producer.submit(c)
    producer.close(timeout_s=20)
    return cases


def _spawn_consumer(url: str, store_dir: Path, name: str, ack_delay_s: float) -> subprocess.Popen:
    args = [
        sys.executable,
        "-m",
        "graspstack.flywheel.chaos",
        "--consumer-process",
        url,
        str(store_dir),
        name,
    ]
    proc = subprocess.Popen([*args, str(ack_delay_s)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def consumer_sigkill(workdir: Path, n_cases: int = 300, kill_after: int = 100) -> Row:
    server = DurableRedis(workdir / "redis", free_port()).start()
    store_dir = workdir / "store"
    store = CaseStore(store_dir)
    client = redis_client(server.url)
    proc = None
    try:
        cases = _queue_all(client, n_cases)
        proc = _spawn_consumer(server.url, store_dir, "consumer-a", ack_delay_s=0.02)
        deadline = time.monotonic() + 30
        while store.count() < kill_after and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)  # mid-batch: read, maybe stored, not acknowledged
        proc.wait()
        pending_at_kill = stream_stats(client)["pending"]
        caught = _stored_not_acked(client, store)
        proc = _spawn_consumer(server.url, store_dir, "consumer-a", ack_delay_s=0.0)
        _wait_drained(client)
        row = tally(
            "consumer_sigkill",
            {c.case_id for c in cases},
            store,
            redelivered=caught,
            dead=int(client.xlen("graspstack:flywheel:dead")),
            note=f"killed after >= {kill_after} stored; {pending_at_kill} pending at the kill",
        )
    finally:
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait()
        server.stop()
        store.close()
    return row


def _stored_not_acked(client: redis.Redis, store: CaseStore) -> int:
    """Pending entries whose case is already stored: caught between store and XACK by the kill.
    The restarted consumer gets them again and the store absorbs them (redelivered)."""
    n = 0
    for p in client.xpending_range("graspstack:flywheel:cases", "flywheel", min="-", max="+", count=10_000):
        entries = client.xrange("graspstack:flywheel:cases", p["message_id"], p["message_id"])
        if entries and store.contains(entries[0][1][b"case_id"].decode()):
            n += 1
    return n


# -- 3. the store's disk write fails once ---------------------------------------------------------
class FailOnceStore(CaseStore):
    """The first blob write raises ENOSPC, as a full or failing disk would."""

    failed = 0

    def _write_blob(self, data: bytes) -> str:
        if not self.failed:
            self.failed += 1
            raise OSError(errno.ENOSPC, "No space left on device (injected)")
        return super()._write_blob(data)


def disk_write_fails_once(workdir: Path, n_cases: int = 100) -> Row:
    server = DurableRedis(workdir / "redis", free_port()).start()
    store = FailOnceStore(workdir / "store")
    client = redis_client(server.url)
    try:
        cases = _queue_all(client, n_cases)
        consumer = _consumer(server.url, store)
        consumer.ensure_group()
        if not consumer.drain(timeout_s=20):
            raise TimeoutError("the consumer did not drain the stream")
        row = tally(
            "disk_write_fails_once",
            {c.case_id for c in cases},
            store,
            consumer.stats.duplicates,
            consumer.stats.dead_lettered,
            f"{store.failed} write failed, {consumer.stats.failures} attempt retried",
        )
    finally:
        server.stop()
        store.close()
    return row


SCENARIOS = {
    "redis_sigkill": redis_sigkill,
    "consumer_sigkill": consumer_sigkill,
    "disk_write_fails_once": disk_write_fails_once,
}


def format_table(rows: list[Row]) -> str:
    head = (
        f"{'scenario':<24}{'produced':>9}{'stored':>8}{'duplicated':>11}{'lost':>6}"
        f"{'redelivered':>12}{'dead':>6}  note"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r.scenario:<24}{r.produced:>9}{r.stored:>8}{r.duplicated:>11}{r.lost:>6}"
            f"{r.redelivered:>12}{r.dead_lettered:>6}  {r.note}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m graspstack.flywheel.chaos", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--cases", type=int, default=300, help="cases per scenario")
    parser.add_argument("--fsync", choices=["always", "everysec"], default="always", help="Redis appendfsync")
    parser.add_argument("--only", choices=sorted(SCENARIOS), action="append")
    parser.add_argument("--consumer-process", nargs=4, metavar=("URL", "STORE", "NAME", "ACK_DELAY_S"),
                        help=argparse.SUPPRESS)  # fmt: skip
    args = parser.parse_args(argv)
    # The drills provoke retries on purpose: their warnings are expected, the table is the result.
    logging.basicConfig(level=logging.ERROR, format="%(name)s %(levelname)s %(message)s")
    if args.consumer_process:
        url, store_dir, name, delay = args.consumer_process
        _consumer_process(url, store_dir, name, float(delay))
        return 0
    rows = []
    for name in args.only or list(SCENARIOS):
        with tempfile.TemporaryDirectory(prefix=f"chaos-{name}-") as tmp:
            if name == "redis_sigkill":
                rows.append(redis_sigkill(Path(tmp), args.cases, fsync=args.fsync))
            elif name == "consumer_sigkill":
                rows.append(consumer_sigkill(Path(tmp), args.cases, kill_after=args.cases // 3))
            else:
                rows.append(disk_write_fails_once(Path(tmp), args.cases // 3))
    print(format_table(rows))
    return 0 if all(r.lost == 0 and r.duplicated == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
