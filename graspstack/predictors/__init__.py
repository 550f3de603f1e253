"""Pose predictors: frame in, object poses out. Baselines and models share this interface."""

from graspstack.predictors.base import Predictor, load_predictor

__all__ = ["Predictor", "load_predictor"]
