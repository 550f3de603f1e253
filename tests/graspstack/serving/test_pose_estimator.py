import numpy as np

from graspstack.frames import Frame, Intrinsics, ObjectPose
from graspstack.serving.pose_estimator import PoseEstimator
from graspstack.serving.warmup import warmup_frames


class _Fixed:
    """A real predictor with a fixed answer per version (the registry's job is tested elsewhere)."""

    def __init__(self, version):
        self.name = version
        self.offset = 0.0 if version == "v1" else 0.05

    def predict(self, frame):
        return [ObjectPose("lego", np.array([self.offset, 0, 0.5]), np.array([0, 0, 0, 1.0]), 0.9)]


def _frame():
    return Frame(
        np.zeros((120, 160, 3), np.uint8),
        np.full((120, 160), 0.5, np.float32),
        Intrinsics(100, 100, 80, 60, 160, 120),
    )


def test_switching_versions_without_restart():
    est = PoseEstimator(_Fixed, "v1", max_batch_size=2, max_wait_s=0.001)
    first = est.estimate(_frame(), timeout_s=5)
    assert first.model_version == "v1" and first.poses[0].position_m[0] == 0.0
    est.switch("v2")
    second = est.estimate(_frame(), timeout_s=5)
    assert second.model_version == "v2" and second.poses[0].position_m[0] == 0.05
    assert second.queue_ms >= 0 and second.compute_ms >= 0
    est.close()


def test_every_loaded_version_is_warmed_up_before_it_serves():
    loaded = []

    def load(version):
        predictor = _Fixed(version)
        predictor.seen = 0
        inner = predictor.predict

        def predict(frame):
            predictor.seen += 1
            return inner(frame)

        predictor.predict = predict
        loaded.append(predictor)
        return predictor

    frames = len(warmup_frames())
    est = PoseEstimator(load, "v1", warmup_rounds=2)
    assert loaded[0].seen == 2 * frames  # before any request
    est.switch("v2")
    assert loaded[1].seen == 2 * frames  # before the swap
    est.close()
