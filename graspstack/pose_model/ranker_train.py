"""`graspstack train --stage ranker --base VERSION`: learn which refinement hypothesis to keep.

For each object of the training scenes the base version's pipeline is run as it is, recording the
object's hypotheses (refine.Hypotheses), and then once more per distinct hypothesis with that one
forced as the winner, so that each hypothesis is labelled by what the whole pipeline would answer
from it (polish, axis sweep, snap, studs check, outline alignment), not by its own raw error: most
raw errors the polish mends, and a ranker trained on raw errors switched 5x more often than it
gained. The labels come from the lab's ground truth, so training scenes must be rendered ones.

The ranker (ranker.py) is fitted listwise on the objects whose hypotheses disagree (some end within
spec, some not), with a fifth of the scenes held back to choose the switching margin: the margin
that gains the most objects net of those it breaks there.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from graspstack.frames import ObjectPose
from graspstack.geometry import quat_to_matrix, rotation_angle_deg
from graspstack.metric import angular_error_deg, within_spec
from graspstack.pose_model.infer import ModelPredictor
from graspstack.pose_model.ranker import N_FEATURES, Ranker, features
from graspstack.pose_model.refine import Hypotheses
from graspstack.scene_io import Scene, iter_scene_dirs

MATCH_M = 0.03  # an object's answers within this of a ground-truth object of its class are about it
SAME_DEG, SAME_M = 1.0, 0.002  # hypotheses this close end the same way: replayed once
HIDDEN = 16
EPOCHS = 300
MARGINS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)


@dataclass
class Outcomes:
    """One object's hypotheses and, per hypothesis, the pipeline's answer had it won."""

    hypotheses: Hypotheses
    answers: list[ObjectPose | None]


class RecordingPredictor(ModelPredictor):
    """The base version's pipeline, choosing as refine._choose does, that also replays each object's
    polish once per distinct hypothesis with that hypothesis forced."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.choose_hypothesis = self._record_or_force
        self._local = threading.local()
        self._lock = threading.Lock()
        self.outcomes: list[Outcomes] = []

    def _record_or_force(self, h: Hypotheses) -> int:
        forced = getattr(self._local, "force", None)
        if forced is not None:
            return forced
        seen = getattr(self._local, "seen", None)
        if seen is not None:
            seen.append(h)
        return h.default

    def _polish(self, r, plane, depth, frame):
        self._local.force, self._local.seen = None, []
        answer = super()._polish(r, plane, depth, frame)
        seen, self._local.seen = self._local.seen, None
        if not seen:  # one hypothesis only, or the crop was dropped before refinement
            return answer
        h = seen[0]
        answers: list[ObjectPose | None] = [None] * len(h.names)
        answers[h.default] = answer
        replayed = [h.default]
        for j in range(len(h.names)):
            if j == h.default:
                continue
            twin = next((i for i in replayed if _same(h, i, j)), None)
            if twin is not None:
                answers[j] = answers[twin]
                continue
            self._local.force = j
            try:
                answers[j] = super()._polish(r, plane, depth, frame)
            finally:
                self._local.force = None
            replayed.append(j)
        with self._lock:
            self.outcomes.append(Outcomes(h, answers))
        return answer


def _same(h: Hypotheses, i: int, j: int) -> bool:
    return rotation_angle_deg(h.R[i], h.R[j]) < SAME_DEG and float(np.linalg.norm(h.t[i] - h.t[j])) < SAME_M


@dataclass
class Example:
    scene: str
    features: np.ndarray  # (n, N_FEATURES)
    good: np.ndarray  # (n,) bool: the answer from this hypothesis is within spec
    default: int


def _labelled(outcome: Outcomes, gt: list[ObjectPose], scene: str) -> Example | None:
    h = outcome.hypotheses
    found = [a for a in outcome.answers if a is not None]
    if not found:
        return None
    candidates = [g for g in gt if g.class_name == h.class_name]
    dist = [min(_distance(a, g) for a in found) for g in candidates]
    if not dist or min(dist) > MATCH_M:
        return None
    g = candidates[int(np.argmin(dist))]
    R_gt = quat_to_matrix(g.quaternion_xyzw)
    good = np.zeros(len(h.names), dtype=bool)
    for j, a in enumerate(outcome.answers):
        if a is not None:
            te = _distance(a, g)
            good[j] = within_spec(
                te, angular_error_deg(h.class_name, R_gt, quat_to_matrix(a.quaternion_xyzw))
            )
    return Example(scene, features(h), good, h.default)


def _distance(a: ObjectPose, b: ObjectPose) -> float:
    return float(np.linalg.norm(np.asarray(a.position_m, float) - np.asarray(b.position_m, float)))


def collect(base: str, roots: list[Path]) -> list[Example]:
    predictor = RecordingPredictor(base)
    examples: list[Example] = []
    scenes = [(root, d) for root in roots for d in iter_scene_dirs(root)]
    for root, d in tqdm(scenes, desc=f"replaying {base}'s hypotheses", unit="scene", mininterval=5):
        predictor.outcomes.clear()
        scene = Scene(d)
        predictor.predict(scene.frame())
        gt = scene.ground_truth()
        for outcome in predictor.outcomes:
            ex = _labelled(outcome, gt, f"{root}/{d.relative_to(root)}")
            if ex is not None:
                examples.append(ex)
    return examples


def _fit(
    examples: list[Example], mean: np.ndarray, scale: np.ndarray, seed: int, epochs: int = EPOCHS
) -> torch.nn.Module:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = torch.nn.Sequential(
        torch.nn.Linear(N_FEATURES, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, 1)
    )
    opt = torch.optim.Adam(net.parameters(), lr=3e-3, weight_decay=1e-3)
    xs = [torch.tensor((e.features - mean) / scale, dtype=torch.float32) for e in examples]
    ys = [torch.tensor(e.good / e.good.sum(), dtype=torch.float32) for e in examples]
    for _ in tqdm(range(epochs), desc="fitting the ranker", unit="epoch", mininterval=5):
        # Eight batches an epoch; fewer examples than that make fewer, not empty, batches.
        for batch in np.array_split(rng.permutation(len(examples)), min(8, len(examples))):
            loss = sum(-(ys[k] * torch.log_softmax(net(xs[k])[:, 0], 0)).sum() for k in batch) / len(batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


def _ranker(net: torch.nn.Module, mean: np.ndarray, scale: np.ndarray, margin: float) -> Ranker:
    first, _, last = net
    w1, b1, w2, b2 = (p.detach().numpy() for p in (first.weight, first.bias, last.weight, last.bias))
    return Ranker(mean, scale, w1, b1, w2, b2, margin)


def switches(ranker: Ranker, examples: list[Example]) -> dict:
    """How the ranker's switches away from the default fare: objects gained and broken."""
    gained = broken = moved = 0
    for e in examples:
        j = ranker.choice(ranker.probabilities_of(e.features), e.default)
        if j == e.default:
            continue
        moved += 1
        gained += int(e.good[j] and not e.good[e.default])
        broken += int(e.good[e.default] and not e.good[j])
    return {"objects": len(examples), "switched": moved, "gained": gained, "broken": broken}


def train_ranker(base: str, roots: list[Path], seed: int = 0) -> tuple[Ranker, dict]:
    examples = collect(base, roots)
    scenes = sorted({e.scene for e in examples})
    held = set(np.random.default_rng(seed).choice(scenes, size=len(scenes) // 5, replace=False).tolist())
    fit_on = [e for e in examples if e.scene not in held]
    held_out = [e for e in examples if e.scene in held]
    disputed = [e for e in fit_on if 0 < e.good.sum() < len(e.good)]
    if not disputed:
        raise ValueError(
            f"no object in {', '.join(map(str, roots))} has hypotheses that end differently: "
            "nothing to learn a choice from (render more scenes, hard ones dispute most)"
        )
    stacked = np.concatenate([e.features for e in fit_on])
    mean, scale = stacked.mean(0), stacked.std(0) + 1e-6
    net = _fit(disputed, mean, scale, seed)
    by_margin = {m: switches(_ranker(net, mean, scale, m), held_out) for m in MARGINS}
    # The margin that gains most net of what it breaks on the held-back scenes; ties: the larger.
    margin = max(MARGINS, key=lambda m: (by_margin[m]["gained"] - by_margin[m]["broken"], m))
    ranker = _ranker(net, mean, scale, margin)
    info = {
        "data": [str(r) for r in roots],
        "base": base,
        "objects": len(examples),
        "disputed_fitted": len(disputed),
        "held_out_scenes": len(held),
        "margin": margin,
        "held_out_switches": by_margin[margin],
        "held_out_by_margin": {str(m): v for m, v in by_margin.items()},
        "train_switches": switches(ranker, fit_on),
        "features": N_FEATURES,
        "hidden": HIDDEN,
        "epochs": EPOCHS,
        "seed": seed,
    }
    return ranker, info
