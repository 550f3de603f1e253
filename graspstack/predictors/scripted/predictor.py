"""ScriptedPredictor: the classical baseline, table plane -> segments -> class by colour -> pose fit."""

from __future__ import annotations

import numpy as np

from graspstack.catalogue import CATALOGUE
from graspstack.frames import Frame, ObjectPose
from graspstack.geometry import matrix_to_quat
from graspstack.predictors.scripted.duplicates import prepare_tables, suppress_duplicates
from graspstack.predictors.scripted.fit import fit_segment
from graspstack.predictors.scripted.priors import Priors, load_priors
from graspstack.predictors.scripted.segment import segment_objects
from graspstack.predictors.scripted.table import back_project, denoise_depth, table_plane

MIN_CONFIDENCE = 0.15  # below this a segment is more likely a distractor or a fragment than an object


class ScriptedPredictor:
    name = "scripted"

    def __init__(self, priors: Priors | None = None) -> None:
        self.priors = priors or load_priors()
        prepare_tables(CATALOGUE)  # per-class tables (and model clouds) now, not inside the first frames

    def predict(self, frame: Frame) -> list[ObjectPose]:
        intr = frame.intrinsics
        depth, valid = denoise_depth(frame.depth_m)
        points = back_project(depth, intr)
        plane = table_plane(points, valid)
        if plane is None:
            return []

        out = []
        for seg in segment_objects(frame.rgb, depth, points, valid, plane, self.priors.colour, intr.fx):
            cls = self.priors.colour.classes[seg.class_index]
            fit = fit_segment(seg.points, plane, cls, self.priors.resting[cls], depth, intr)
            # Confidence: how much of what we see the model explains, discounted by how much of the
            # model would stick out into space the camera sees as empty.
            confidence = float(np.clip(fit.inlier_ratio * (1.0 - fit.free_space_violation), 0.0, 1.0))
            if confidence < MIN_CONFIDENCE:
                continue
            out.append(
                ObjectPose(
                    cls,
                    fit.T_cam_obj[:3, 3].copy(),
                    matrix_to_quat(fit.T_cam_obj[:3, :3]),
                    confidence,
                    {"resting_pose": fit.resting_index, "score": fit.score},
                )
            )
        return suppress_duplicates(out)
