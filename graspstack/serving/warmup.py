"""Warm a freshly loaded predictor up before it takes traffic.

The first frames through a new model are slow: torch/oneDNN builds its kernels per input shape (the
crop network sees a new batch size with each new object count), and the fitting code's first calls
pay for imports and caches. Measured on v2, 2-core CPU: 100, 67 and 49 ms for the first three
frames, ~45 ms after. In a pilot with ~50 requests per check that one cold request was the p99. So a
service runs a few lab frames through a predictor before it reports SERVING or swaps it in (as
Triton's model warm-up does); no robot pays for it.

The frames (`warmup_frames/`, lab seed 9300: never used for training or evaluation) hold duck,
teddy, mug and lego (jenga shares every code path with them), legos included so that the lego's
resting-pose search is exercised too.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from graspstack.frames import Frame
from graspstack.predictors.base import Predictor

log = logging.getLogger("graspstack.warmup")
FRAMES_DIR = Path(__file__).with_name("warmup_frames")


def warmup_frames() -> list[Frame]:
    from graspstack.scene_io import Scene

    return [Scene(p).frame() for p in sorted(FRAMES_DIR.iterdir()) if p.is_dir()]


def warm_up(predictor: Predictor, rounds: int) -> float:
    """Run the warm-up frames `rounds` times through `predictor`; returns the seconds it took."""
    if rounds <= 0:
        return 0.0
    started = time.perf_counter()
    frames = warmup_frames()
    for _ in range(rounds):
        for frame in frames:
            predictor.predict(frame)
    seconds = time.perf_counter() - started
    log.info("warmed up %s: %d frames x %d rounds, %.2f s", predictor.name, len(frames), rounds, seconds)
    return seconds
