"""Put hard cases on the Redis Stream without ever slowing or failing the robot's request.

`submit` only appends to a bounded in-memory buffer and returns; a background thread XADDs what
is buffered, and when Redis is unreachable it keeps the cases and retries with back-off. Only
when the buffer is full is a case dropped, and then it is counted (metric and `stats`).

A case whose XADD reached Redis but whose reply was lost (Redis killed in between) is sent again:
the stream may hold it twice, and the store, idempotent by case id, keeps it once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import redis

from graspstack import metrics
from graspstack.flywheel.cases import HardCase
from graspstack.flywheel.streams import CASES_STREAM, redis_client
from graspstack.flywheel.triggers import Disagreement, GroundTruthError, TriggerConfig, evaluate
from graspstack.frames import Intrinsics, ObjectPose

log = logging.getLogger("graspstack.flywheel.producer")


@dataclass
class ProducerStats:
    submitted: int = 0  # accepted into the buffer
    sent: int = 0  # XADD acknowledged by Redis
    dropped: int = 0  # refused: buffer full (or closed); these are lost, and counted
    buffered: int = 0  # waiting to be sent now
    send_errors: int = 0  # failed XADD attempts (each retried)


class CaseProducer:
    def __init__(
        self,
        client: redis.Redis,
        stream: str = CASES_STREAM,
        max_buffered: int = 256,
        max_buffered_bytes: int = 256 * 1024 * 1024,
        batch_size: int = 32,
        retry_min_s: float = 0.05,
        retry_max_s: float = 2.0,
    ):
        self.client = client
        self.stream = stream
        self.max_buffered = max_buffered
        self.max_buffered_bytes = max_buffered_bytes
        self.batch_size = batch_size
        self.retry_min_s = retry_min_s
        self.retry_max_s = retry_max_s
        self._buffer: deque[tuple[HardCase, dict[str, bytes]]] = deque()
        self._bytes = 0
        self._in_flight = 0
        self._stats = ProducerStats()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="flywheel-producer", daemon=True)
        self._thread.start()

    @classmethod
    def from_url(cls, url: str, timeout_s: float = 1.0, **kwargs) -> CaseProducer:
        return cls(redis_client(url, timeout_s), **kwargs)

    # -- the caller's side: never blocks on Redis, never raises ------------------------------------
    def submit(self, case: HardCase) -> bool:
        """Queue one case for the stream. True when kept (sent or buffered), False when dropped."""
        try:
            fields = case.to_fields()
            size = sum(len(v) for v in fields.values())
            with self._cond:
                held = len(self._buffer) + self._in_flight  # a batch being sent still counts
                full = held >= self.max_buffered or self._bytes + size > self.max_buffered_bytes
                if self._closed or full:
                    self._stats.dropped += 1
                    metrics.FLYWHEEL_PRODUCER_DROPPED.labels(case.trigger).inc()
                    return False
                self._buffer.append((case, fields))
                self._bytes += size
                self._stats.submitted += 1
                metrics.FLYWHEEL_PRODUCED.labels(case.trigger, case.stage).inc()
                metrics.FLYWHEEL_PRODUCER_BUFFERED.set(len(self._buffer))
                self._cond.notify()
            return True
        except Exception:  # a bug in here must not fail a robot's request; it is logged and counted
            log.exception("flywheel producer refused a case")
            self._stats.dropped += 1
            return False

    def report(
        self,
        config: TriggerConfig,
        *,
        frame_id: str,
        model_version: str,
        intrinsics: Intrinsics,
        poses: Sequence[ObjectPose],
        rgb: bytes = b"",
        depth: bytes = b"",
        depth_scale: float = 0.001,
        shadow_poses: Sequence[ObjectPose] = (),
        disagreements: Iterable[Disagreement] | None = None,
        gt_errors: Iterable[GroundTruthError] | None = None,
        ground_truth: Sequence[ObjectPose] | None = None,
        grasp_failed: bool = False,
        robot_id: str = "",
        stage: str = "",
        captured_at: float | None = None,
    ) -> list[str]:
        """Evaluate the triggers on one pose answer and submit a case per trigger fired.

        Returns the triggers that fired. Never raises: the pose service calls this on its
        request path (or from the shadow mirror's callback) and must not care if it fails.
        """
        try:
            fired = evaluate(config, poses, disagreements, gt_errors, grasp_failed)
            for f in fired:
                self.submit(
                    HardCase(
                        frame_id=frame_id,
                        trigger=f.trigger,
                        model_version=model_version,
                        intrinsics=intrinsics,
                        poses=list(poses),
                        trigger_config_version=f.config_version,
                        shadow_poses=list(shadow_poses),
                        robot_id=robot_id,
                        stage=stage,
                        captured_at=captured_at,
                        depth_scale=depth_scale,
                        rgb=rgb,
                        depth=depth,
                        ground_truth=None if ground_truth is None else list(ground_truth),
                        detail=f.detail,
                    )
                )
            return [f.trigger for f in fired]
        except Exception:
            log.exception("flywheel trigger evaluation failed")
            return []

    def stats(self) -> ProducerStats:
        with self._cond:
            return ProducerStats(**{**self._stats.__dict__, "buffered": len(self._buffer) + self._in_flight})

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until everything submitted so far reached Redis. False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._buffer or self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    def close(self, timeout_s: float = 5.0) -> bool:
        """Try to deliver what is buffered, then stop. What remains is counted as dropped."""
        flushed = self.flush(timeout_s)
        with self._cond:
            self._closed = True
            left = len(self._buffer)
            for case, _ in self._buffer:
                metrics.FLYWHEEL_PRODUCER_DROPPED.labels(case.trigger).inc()
            self._stats.dropped += left
            self._buffer.clear()
            self._cond.notify_all()
        self._thread.join(timeout=timeout_s)
        return flushed and not left

    # -- the sender thread ----------------------------------------------------------------------
    def _run(self) -> None:
        backoff = self.retry_min_s
        while True:
            with self._cond:
                while not self._buffer and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                # Take a batch but keep it counted as in flight: flush() waits for it.
                batch = [self._buffer.popleft() for _ in range(min(self.batch_size, len(self._buffer)))]
                self._in_flight = len(batch)
            try:
                pipe = self.client.pipeline(transaction=False)
                for _, fields in batch:
                    pipe.xadd(self.stream, fields)  # no MAXLEN: only the consumer trims, behind the store
                pipe.execute()
            except Exception as err:
                with self._cond:
                    # Back to the front, in order: a later success must not reorder cases.
                    self._buffer.extendleft(reversed(batch))
                    self._in_flight = 0
                    self._stats.send_errors += 1
                    closed = self._closed
                log.warning("flywheel stream unavailable (%s); %d cases buffered", err, len(self._buffer))
                if closed:
                    return
                time.sleep(backoff)
                backoff = min(backoff * 2, self.retry_max_s)
                continue
            backoff = self.retry_min_s
            with self._cond:
                self._bytes -= sum(sum(len(v) for v in f.values()) for _, f in batch)
                self._in_flight = 0
                self._stats.sent += len(batch)
                metrics.FLYWHEEL_PRODUCER_BUFFERED.set(len(self._buffer))
                self._cond.notify_all()
