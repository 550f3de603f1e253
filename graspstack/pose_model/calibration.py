"""Confidence that means something: P(within spec) from what the pipeline knows about each answer.

The two-stage pipeline leaves evidence on every object (CropNet's class probability and mask
certainty, the share of correspondences the rigid fit kept and their residual, how well the polished
pose explains the depth, how far the polish had to move it). A logistic model fitted on held-out
validation scenes (never the test scenes) turns that evidence into the probability that the answer is
within 1 cm / 5 deg. It is stored beside the weights (`calibration.json`), so every version carries
its own; the flywheel's low-confidence trigger and the robots read that probability.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

CALIBRATION_FILE = "calibration.json"
FEATURES = ("class_prob", "inliers", "rms_mm", "fit_score", "free_space", "mask", "moved_deg", "uncovered")
L2 = 1e-2


def feature_vector(extras: dict) -> np.ndarray:
    return np.array(
        [
            float(extras.get("class_prob", 1.0)),
            float(extras.get("inliers", 1.0)),
            min(float(extras.get("rms_mm", 0.0)), 20.0),
            min(float(extras.get("score", 0.0)), 2.0),
            float(extras.get("free_space", 0.0)),
            float(extras.get("mask", 1.0)),
            min(float(extras.get("moved_deg", 0.0)), 30.0),
            float(extras.get("source", "detector") != "detector"),  # a crop stage 1 did not propose
        ]
    )


@dataclass
class Calibration:
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float

    def probability(self, extras: dict) -> float:
        z = (feature_vector(extras) - self.mean) / self.scale
        return float(1.0 / (1.0 + np.exp(-(z @ self.weights + self.bias))))

    def to_json(self) -> dict:
        return {
            "features": list(FEATURES),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "weights": self.weights.tolist(),
            "bias": self.bias,
        }

    @staticmethod
    def load(version_dir: Path) -> Calibration | None:
        p = Path(version_dir) / CALIBRATION_FILE
        if not p.exists():
            return None
        d = json.loads(p.read_text())
        if tuple(d["features"]) != FEATURES:
            return None  # fitted for another feature set: fall back to the uncalibrated score
        arrays = (np.array(d[k]) for k in ("mean", "scale", "weights"))
        return Calibration(*arrays, float(d["bias"]))


def fit(X: np.ndarray, y: np.ndarray) -> Calibration:
    """L2-regularised logistic regression on standardised features."""
    mean = X.mean(0)
    scale = np.where(X.std(0) > 1e-9, X.std(0), 1.0)
    Z = (X - mean) / scale

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:-1], theta[-1]
        s = Z @ w + b
        p = 1.0 / (1.0 + np.exp(-s))
        nll = np.mean(np.logaddexp(0.0, s) - y * s) + L2 * (w @ w)
        g = Z.T @ (p - y) / len(y) + 2 * L2 * w
        return float(nll), np.append(g, np.mean(p - y))

    res = minimize(loss, np.zeros(Z.shape[1] + 1), jac=True, method="L-BFGS-B")
    return Calibration(mean, scale, res.x[:-1], float(res.x[-1]))
