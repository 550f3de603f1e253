"""A simulated labeler for the lab: labels from the cell's ground truth with human-like noise.

It goes through the same path as a person: keypoints clicked in the image (the true ones plus
Gaussian noise, ~1.5 px), then Label Studio import (PnP with depth). So the labels it produces have
the errors real labels would have, and the whole loop runs unattended.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from graspstack.flywheel.cases import HardCase
from graspstack.flywheel.labeling import Labeling
from graspstack.flywheel.labelstudio import keypoint_results, poses_from_results
from graspstack.frames import ObjectPose
from graspstack.metric import MIN_VISIBLE_FRACTION


@dataclass
class SimLabeler:
    name: str = "sim-labeler"
    noise_px: float = 1.5  # std of each keypoint click, pixels
    min_visible: float = MIN_VISIBLE_FRACTION  # people skip objects they can barely see
    seed: int = 0

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)

    def annotate(self, case: HardCase) -> list[dict]:
        """The Label Studio results a careful human would produce for this case."""
        if case.ground_truth is None:
            raise ValueError(f"{case.case_id} has no ground truth: the simulated labeler needs the lab's")
        visible = [
            p for p in case.ground_truth if float(p.extras.get("visible_fraction", 1.0)) >= self.min_visible
        ]
        results = keypoint_results(visible, case.intrinsics, with_score=False)
        i = case.intrinsics
        for r in results:
            du, dv = self._rng.normal(0.0, self.noise_px, 2)
            r["value"]["x"] = float(np.clip(r["value"]["x"] + du / i.width * 100, 0, 100))
            r["value"]["y"] = float(np.clip(r["value"]["y"] + dv / i.height * 100, 0, 100))
        return results

    def label(self, case: HardCase) -> list[ObjectPose]:
        return poses_from_results(self.annotate(case), case)

    def run(self, labeling: Labeling, batch: int = 8, max_cases: int | None = None) -> int:
        """Pull, label and submit until no unlabelled case is left (or max_cases). Returns labelled."""
        done = 0
        while max_cases is None or done < max_cases:
            _, cases = labeling.pull(self.name, batch)
            if not cases:
                break
            for case in cases:
                if case.ground_truth is None:
                    labeling.skip(self.name, case.case_id, "no ground truth")
                    continue
                labeling.submit(self.name, case.case_id, self.label(case), source="sim")
                done += 1
        return done
