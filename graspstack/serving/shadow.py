"""Mirror traffic to the shadow baseline and record how far it disagrees with the model.

Fire-and-forget through a bounded queue: `offer` never blocks and never raises, so the robot's
answer neither waits for the shadow nor fails because of it. What does not fit is dropped and
counted.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from graspstack import metrics
from graspstack.frames import ObjectPose
from graspstack.metric import match_scene

log = logging.getLogger("graspstack.shadow")


@dataclass
class MirrorItem:
    frame: Any  # whatever the shadow client sends: a frame reference or an encoded frame
    model_poses: list[ObjectPose]
    model_version: str
    context: dict = field(default_factory=dict)  # frame id, robot, stage: for hard-case records


@dataclass
class Disagreement:
    class_name: str
    position_m: float | None  # None: the shadow reported no object of this class nearby
    angle_deg: float | None


def disagreements(model_poses: list[ObjectPose], shadow_poses: list[ObjectPose]) -> list[Disagreement]:
    """Per model object: distance to the shadow's matching object (the metric's one-to-one matching)."""
    result = match_scene(model_poses, shadow_poses, min_visible=0.0)
    return [
        Disagreement(r.class_name, r.te_m if r.matched else None, r.re_deg if r.matched else None)
        for r in result.records
    ]


class ShadowMirror:
    def __init__(
        self,
        ask_shadow: Callable[[Any], list[ObjectPose]],
        max_queue: int = 32,
        on_result: Callable[[MirrorItem, list[ObjectPose], list[Disagreement]], None] | None = None,
        on_failure: Callable[[MirrorItem], None] | None = None,
    ):
        """on_result gets the shadow's answer and the disagreements; on_failure an item the shadow
        could not answer. Together they see every item that `offer` accepted, exactly once."""
        self._ask = ask_shadow
        self._on_result = on_result
        self._on_failure = on_failure
        self._queue: queue.Queue[MirrorItem | None] = queue.Queue(maxsize=max_queue)
        self._thread = threading.Thread(target=self._run, name="shadow-mirror", daemon=True)
        self._thread.start()

    def offer(self, item: MirrorItem) -> bool:
        try:
            self._queue.put_nowait(item)
            return True
        except queue.Full:
            metrics.SHADOW_MIRRORED.labels("dropped").inc()
            return False

    def pending(self) -> int:
        return self._queue.qsize()

    def close(self) -> None:
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=1)
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                shadow_poses = self._ask(item.frame)
            except Exception as err:  # the shadow being down is recorded, never propagated
                metrics.SHADOW_MIRRORED.labels("error").inc()
                log.warning("shadow call failed: %s", err)
                if self._on_failure:
                    self._on_failure(item)
                continue
            found = disagreements(item.model_poses, shadow_poses)
            for d in found:
                if d.position_m is None:
                    metrics.SHADOW_UNMATCHED.labels(item.model_version, d.class_name).inc()
                else:
                    metrics.SHADOW_POSITION_M.labels(item.model_version, d.class_name).observe(d.position_m)
                    metrics.SHADOW_ANGLE_DEG.labels(item.model_version, d.class_name).observe(d.angle_deg)
            metrics.SHADOW_MIRRORED.labels("compared").inc()
            if self._on_result:
                self._on_result(item, shadow_poses, found)
