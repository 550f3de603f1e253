"""Which refinement hypothesis wins: a small learned ranker over the hypotheses' evidence.

refine.refine_pose fits a few hypotheses per object (the free fit from the network's pose, the
nearest resting pose set down, restarts, the resting-pose search) and keeps the one whose depth
score is lowest, with handicaps for restarts and the search (refine._choose). The depth score alone
cannot tell some hypotheses apart: a mug turned end over end, a teddy turned front to back, a
leaning lego on the wrong face score within a few hundredths of each other. Yet the evidence beside
the score says more: how far each hypothesis moved from the network's pose (CropNet saw the colour
image), how near it lies to a resting pose, how many points it explains, how much free space it
takes up, what kind of hypothesis it is and which class.

The ranker turns each hypothesis's evidence (`features`) into a logit with a one-hidden-layer
network, trained listwise (a softmax over an object's hypotheses) on which hypotheses end up within
spec once the rest of the pipeline has polished them (ranker_train.py). The default choice stands
unless the ranker prefers another by more than `margin` in probability: a switch has to be worth the
objects it could break.

Weights live in the version directory as `ranker.safetensors` (the input standardisation, the two
layers and the margin); a version without it chooses as refine._choose does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from graspstack.geometry import rotation_angle_deg
from graspstack.pose_model.refine import Hypotheses, _nearest_resting

RANKER_FILE = "ranker.safetensors"
CLASSES = ("duck", "teddy", "mug", "lego", "jenga")
KINDS = ("free", "resting", "restart", "search")
RESTING_CAP_DEG = 45.0  # beyond this a hypothesis is simply "not resting"
N_FEATURES = len(CLASSES) + len(KINDS) + 11


def features(h: Hypotheses) -> np.ndarray:
    """(n, N_FEATURES) float32: per hypothesis its class and kind (one-hot), its fit evidence, and
    where it stands among the object's other hypotheses."""
    n = len(h.names)
    score = np.asarray(h.score, dtype=np.float64)
    first = np.argsort(np.argsort(score)) == 0
    rows = np.zeros((n, N_FEATURES), dtype=np.float32)
    for j in range(n):
        kind = [1.0 * (h.names[j] == k) for k in KINDS]
        cls = [1.0 * (h.class_name == c) for c in CLASSES]
        off = min(_nearest_resting(h.resting, h.R[j])[1], RESTING_CAP_DEG) / RESTING_CAP_DEG
        rows[j] = (
            cls
            + kind
            + [
                score[j],
                h.inliers[j],
                h.violation[j],
                score[j] - score.min(),
                score[j] - score[h.default],
                float(first[j]),
                float(j == h.default),
                rotation_angle_deg(h.R_seed, h.R[j]) / 90.0,
                1e2 * float(np.linalg.norm(h.t[j] - h.t_seed)),  # in cm
                off,
                n / 10.0,
            ]
        )
    return rows


class Ranker:
    """A learned choice between hypotheses (module docstring)."""

    def __init__(self, mean, scale, w1, b1, w2, b2, margin: float) -> None:
        self.mean, self.scale = np.asarray(mean, np.float32), np.asarray(scale, np.float32)
        self.w1, self.b1 = np.asarray(w1, np.float32), np.asarray(b1, np.float32)
        self.w2, self.b2 = np.asarray(w2, np.float32), np.asarray(b2, np.float32)
        self.margin = float(margin)

    def probabilities(self, h: Hypotheses) -> np.ndarray:
        return self.probabilities_of(features(h))

    def probabilities_of(self, feats: np.ndarray) -> np.ndarray:
        """(n, N_FEATURES) -> (n,): the chance each hypothesis is the one to keep."""
        x = (feats - self.mean) / self.scale
        logits = (np.maximum(x @ self.w1.T + self.b1, 0.0) @ self.w2.T + self.b2)[:, 0]
        e = np.exp(logits - logits.max())
        return e / e.sum()

    def choose(self, h: Hypotheses) -> int:
        return self.choice(self.probabilities(h), h.default)

    def choice(self, p: np.ndarray, default: int) -> int:
        best = int(np.argmax(p))
        return best if p[best] - p[default] > self.margin else default

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / RANKER_FILE
        # The margin is a tensor too, not file metadata: tools that rewrite weight files (the pilot's
        # degraded copy) keep tensors, and a ranker without its margin would switch on any preference.
        tensors = {
            "mean": self.mean,
            "scale": self.scale,
            "w1": self.w1,
            "b1": self.b1,
            "w2": self.w2,
            "b2": self.b2,
            "margin": np.array([self.margin], dtype=np.float64),
        }
        save_file(tensors, str(path))
        return path

    @classmethod
    def load(cls, directory: str | Path) -> Ranker | None:
        """The version's ranker, or None where it has none."""
        path = Path(directory) / RANKER_FILE
        if not path.exists():
            return None
        t = load_file(str(path))
        if t["w1"].shape[1] != N_FEATURES:
            raise ValueError(f"{path}: {t['w1'].shape[1]} features, this code computes {N_FEATURES}")
        return cls(t["mean"], t["scale"], t["w1"], t["b1"], t["w2"], t["b2"], float(t["margin"][0]))
