"""Hard-case triggers on the pose service's path: what it answers, and how far the shadow disagrees.

Every frame is evaluated once: by the shadow mirror's thread when the mirror took the frame (with
the disagreement, or without it when the shadow failed), else on the request path. The producer
buffers and never blocks or raises, so a robot's answer never waits for the flywheel.
"""

from __future__ import annotations

from graspstack.flywheel.producer import CaseProducer
from graspstack.flywheel.triggers import TriggerConfig
from graspstack.frames import ObjectPose
from graspstack.ingest import RawFrame
from graspstack.serving.shadow import Disagreement, MirrorItem


class HardCaseReporter:
    def __init__(self, producer: CaseProducer, config: TriggerConfig, stage: str):
        self.producer = producer
        self.config = config
        self.stage = stage

    def _report(
        self,
        raw: RawFrame,
        fid: str,
        version: str,
        poses: list[ObjectPose],
        robot_id: str,
        shadow_poses=(),
        disagreements=None,
    ) -> list[str]:
        return self.producer.report(
            self.config,
            frame_id=fid,
            model_version=version,
            intrinsics=raw.intrinsics,
            poses=poses,
            rgb=raw.rgb,
            depth=raw.depth,
            depth_scale=raw.effective_depth_scale,
            shadow_poses=shadow_poses,
            disagreements=disagreements,
            robot_id=robot_id,
            stage=self.stage,
        )

    def on_answer(
        self, raw: RawFrame, fid: str, version: str, poses: list[ObjectPose], robot_id: str
    ) -> None:
        """Request path, for frames the mirror did not take: low confidence needs only the answer."""
        self._report(raw, fid, version, poses, robot_id)

    def on_shadow_failed(self, item: MirrorItem) -> None:
        """Mirror thread, the shadow did not answer: the triggers that need no shadow still fire."""
        self.on_shadow(item, [], None)

    def on_shadow(
        self, item: MirrorItem, shadow_poses: list[ObjectPose], found: list[Disagreement] | None
    ) -> None:
        """Mirror thread: every trigger, disagreement with the shadow included (None: no answer)."""
        ctx = item.context
        self._report(
            ctx["raw"],
            ctx["frame_id"],
            item.model_version,
            item.model_poses,
            ctx.get("robot_id", ""),
            shadow_poses,
            found,
        )

    def close(self) -> None:
        self.producer.close()
