"""The pose service's core: a predictor behind a dynamic batcher, switchable without a restart."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from graspstack import metrics
from graspstack.frames import Frame, ObjectPose
from graspstack.predictors.base import Predictor
from graspstack.serving.batcher import Batcher
from graspstack.serving.warmup import warm_up


@dataclass
class Estimate:
    poses: list[ObjectPose]
    model_version: str
    queue_ms: float
    compute_ms: float
    batch_size: int


def _predict_many(predictor: Predictor, frames: list[Frame]) -> list[list[ObjectPose]]:
    batch = getattr(predictor, "predict_batch", None)
    return batch(frames) if batch else [predictor.predict(f) for f in frames]


class PoseEstimator:
    def __init__(
        self,
        loader: Callable[[str], Predictor],
        version: str,
        *,
        service: str = "pose",
        stage: str = "lab",
        max_batch_size: int = 4,
        max_wait_s: float = 0.005,
        max_queue: int = 256,
        warmup_rounds: int = 0,
    ):
        self._loader = loader
        self._warmup_rounds = warmup_rounds
        self.service = service
        self.stage = stage
        self._lock = threading.Lock()
        self._predictor = self._load(version)
        self._version = version
        metrics.POSE_MODEL_INFO.labels(service, version, stage).set(1)
        metrics.POSE_LATENCY_SECONDS.labels(service, version, stage)  # series exist before traffic
        self._batcher = Batcher(
            self._run_batch, max_batch_size, max_wait_s, max_queue, name=f"{service}-batch"
        )

    @property
    def version(self) -> str:
        return self._version

    def _load(self, version: str) -> Predictor:
        """Load and warm up (serving/warmup.py): neither the first request nor a swap meets a cold model."""
        predictor = self._loader(version)
        warm_up(predictor, self._warmup_rounds)
        return predictor

    def switch(self, version: str) -> None:
        """Load the new version fully, then swap: requests never see a half-loaded model."""
        predictor = self._load(version)
        with self._lock:
            old = self._version
            self._predictor, self._version = predictor, version
        metrics.POSE_MODEL_INFO.labels(self.service, old, self.stage).set(0)
        metrics.POSE_MODEL_INFO.labels(self.service, version, self.stage).set(1)
        metrics.POSE_LATENCY_SECONDS.labels(self.service, version, self.stage)

    def _run_batch(self, frames: list[Frame]) -> list[tuple[list[ObjectPose], str]]:
        with self._lock:  # one batch, one version, even if a switch lands meanwhile
            predictor, version = self._predictor, self._version
        return [(poses, version) for poses in _predict_many(predictor, frames)]

    def estimate(self, frame: Frame, timeout_s: float | None = None) -> Estimate:
        """Raises queue.Full when saturated and TimeoutError when the answer misses timeout_s."""
        future = self._batcher.submit(frame)
        try:
            result = future.result(timeout=timeout_s)
        except TimeoutError:
            future.cancel()
            raise TimeoutError(f"pose estimate not ready within {timeout_s:.3f} s") from None
        poses, version = result.value
        metrics.POSE_QUEUE_SECONDS.labels(self.service, version).observe(result.queue_s)
        metrics.POSE_COMPUTE_SECONDS.labels(self.service, version).observe(result.compute_s)
        metrics.POSE_BATCH_SIZE.labels(self.service).observe(result.batch_size)
        for p in poses:
            metrics.POSE_OBJECTS.labels(self.service, version, p.class_name).inc()
        return Estimate(poses, version, result.queue_s * 1e3, result.compute_s * 1e3, result.batch_size)

    def close(self) -> None:
        self._batcher.close()
