"""Warm-up frames: real lab frames holding every class, run through a predictor before it serves."""

from __future__ import annotations

import json

from graspstack.catalogue import CATALOGUE
from graspstack.frames import Frame
from graspstack.serving.warmup import FRAMES_DIR, warm_up, warmup_frames


class Recorder:
    name = "recorder"

    def __init__(self) -> None:
        self.frames: list[Frame] = []

    def predict(self, frame: Frame) -> list:
        self.frames.append(frame)
        return []


def test_warmup_frames_are_valid_nominal_frames_with_every_class():
    frames = warmup_frames()
    assert len(frames) >= 2
    for f in frames:
        assert f.rgb.shape == (480, 640, 3) and f.depth_m.shape == (480, 640)
        assert (f.depth_m > 0).mean() > 0.9
    classes = set()
    for scene in FRAMES_DIR.iterdir():
        classes |= {o["class"] for o in json.loads((scene / "scene.json").read_text())["objects"]}
    assert classes >= set(CATALOGUE) - {"jenga"}  # jenga's box fit has no path the others lack


def test_warm_up_runs_every_frame_each_round_and_zero_rounds_runs_nothing():
    recorder = Recorder()
    warm_up(recorder, 2)
    assert len(recorder.frames) == 2 * len(warmup_frames())
    idle = Recorder()
    warm_up(idle, 0)
    assert idle.frames == []
