"""The predictor interface and the registry that `graspstack eval --predictor NAME` uses."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from graspstack.frames import Frame, ObjectPose


@runtime_checkable
class Predictor(Protocol):
    """Frame in, poses out. Sees only what a robot sends: RGB, depth and intrinsics."""

    name: str

    def predict(self, frame: Frame) -> list[ObjectPose]: ...


def load_predictor(spec: str, threads: int = 2, object_workers: int | None = None) -> Predictor:
    """Build a predictor from its name: `mean`, `scripted`, `model[:VERSION]` (default: the active one).

    `threads`: torch's intra-op threads for a model's networks; `object_workers` (default: threads):
    threads for a model's per-object refinements."""
    name, _, arg = spec.partition(":")
    if name == "mean":
        from graspstack.predictors.mean import MeanPosePredictor

        return MeanPosePredictor.load(arg or None)
    if name == "scripted":
        from graspstack.predictors.scripted import ScriptedPredictor

        return ScriptedPredictor()
    if name == "model":
        from graspstack.pose_model.infer import ModelPredictor

        return ModelPredictor(arg or None, threads=threads, object_workers=object_workers)
    raise ValueError(f"unknown predictor {spec!r}: expected one of mean, scripted, model[:VERSION]")
