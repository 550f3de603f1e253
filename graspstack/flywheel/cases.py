"""The hard-case record: what the flywheel keeps about one frame a model handled badly.

On the stream a case is a flat map of fields: small metadata as one JSON document, the encoded
colour and depth images as raw bytes (no base64 inflation). The same record is what the store
indexes and what labelers receive.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from graspstack.frames import Intrinsics, ObjectPose

SCHEMA_VERSION = 1


class CaseError(ValueError):
    """A stream entry or record that is not a valid hard case (a poison entry)."""


def case_id_for(frame_id: str, trigger: str, model_version: str) -> str:
    """Case id: the same frame flagged by the same trigger for the same model is one case.

    So a producer retry or a stream redelivery can never make a second case.
    """
    digest = hashlib.sha256(f"{frame_id}\n{trigger}\n{model_version}".encode()).hexdigest()
    return "case:" + digest


def pose_to_dict(p: ObjectPose) -> dict:
    d = p.to_json()
    if p.extras:
        d["extras"] = {k: v for k, v in p.extras.items() if isinstance(v, str | int | float | bool)}
    return d


def pose_from_dict(d: dict) -> ObjectPose:
    try:
        return ObjectPose(
            d["class"],
            np.asarray(d["position_m"], dtype=np.float64),
            np.asarray(d["quaternion_xyzw"], dtype=np.float64),
            float(d.get("confidence", 1.0)),
            dict(d.get("extras", {})),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise CaseError(f"bad pose {d!r}: {err}") from err


@dataclass
class HardCase:
    frame_id: str  # content id of the frame, "sha256:..." (graspstack.ingest.frame_id)
    trigger: str  # low_confidence | shadow_disagreement | grasp_failure | gt_error
    model_version: str
    intrinsics: Intrinsics
    poses: list[ObjectPose]  # the model's answer, with confidences
    trigger_config_version: str = ""
    shadow_poses: list[ObjectPose] = field(default_factory=list)
    robot_id: str = ""
    stage: str = ""  # pilot stage: lab | pilot | production
    created_at: float = field(default_factory=time.time)  # when the trigger fired, Unix seconds
    captured_at: float | None = None  # when the camera took the frame, if known
    depth_scale: float = 0.001
    rgb: bytes = b""  # the encoded frame inline; empty when only referenced by frame_id
    depth: bytes = b""
    ground_truth: list[ObjectPose] | None = None  # the lab's truth, when it exists
    detail: dict = field(default_factory=dict)  # why the trigger fired (objects, values, thresholds)

    @property
    def case_id(self) -> str:
        return case_id_for(self.frame_id, self.trigger, self.model_version)

    @property
    def has_frame(self) -> bool:
        return bool(self.rgb) and bool(self.depth)

    def meta(self) -> dict:
        """Everything but the image bytes, as JSON-able data."""
        i = self.intrinsics
        return {
            "schema": SCHEMA_VERSION,
            "case_id": self.case_id,
            "frame_id": self.frame_id,
            "trigger": self.trigger,
            "trigger_config_version": self.trigger_config_version,
            "model_version": self.model_version,
            "intrinsics": asdict(i),
            "depth_scale": self.depth_scale,
            "poses": [pose_to_dict(p) for p in self.poses],
            "shadow_poses": [pose_to_dict(p) for p in self.shadow_poses],
            "robot_id": self.robot_id,
            "stage": self.stage,
            "created_at": self.created_at,
            "captured_at": self.captured_at,
            "ground_truth": None
            if self.ground_truth is None
            else [pose_to_dict(p) for p in self.ground_truth],
            "detail": self.detail,
        }

    @classmethod
    def from_meta(cls, meta: dict, rgb: bytes = b"", depth: bytes = b"") -> HardCase:
        try:
            i = meta["intrinsics"]
            gt = meta.get("ground_truth")
            case = cls(
                frame_id=str(meta["frame_id"]),
                trigger=str(meta["trigger"]),
                model_version=str(meta["model_version"]),
                intrinsics=Intrinsics(
                    float(i["fx"]),
                    float(i["fy"]),
                    float(i["cx"]),
                    float(i["cy"]),
                    int(i["width"]),
                    int(i["height"]),
                ),
                poses=[pose_from_dict(p) for p in meta.get("poses", [])],
                trigger_config_version=str(meta.get("trigger_config_version", "")),
                shadow_poses=[pose_from_dict(p) for p in meta.get("shadow_poses", [])],
                robot_id=str(meta.get("robot_id", "")),
                stage=str(meta.get("stage", "")),
                created_at=float(meta.get("created_at", 0.0)),
                captured_at=meta.get("captured_at"),
                depth_scale=float(meta.get("depth_scale", 0.001)),
                rgb=rgb,
                depth=depth,
                ground_truth=None if gt is None else [pose_from_dict(p) for p in gt],
                detail=dict(meta.get("detail", {})),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise CaseError(f"case metadata incomplete or malformed: {err!r}") from err
        if not case.frame_id.startswith("sha256:"):
            raise CaseError(f"frame_id {case.frame_id!r} is not a content id (sha256:...)")
        if "case_id" in meta and meta["case_id"] != case.case_id:
            raise CaseError(f"case_id {meta['case_id']!r} does not match its frame, trigger and model")
        return case

    # -- on the stream ---------------------------------------------------------------------------
    def to_fields(self) -> dict[str, bytes]:
        return {
            "case_id": self.case_id.encode(),
            "trigger": self.trigger.encode(),
            "meta": json.dumps(self.meta(), separators=(",", ":")).encode(),
            "rgb": self.rgb,
            "depth": self.depth,
        }

    @classmethod
    def from_fields(cls, fields: dict[bytes, bytes]) -> HardCase:
        if b"meta" not in fields:
            raise CaseError("stream entry has no 'meta' field")
        try:
            meta = json.loads(fields[b"meta"])
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise CaseError(f"stream entry 'meta' is not JSON: {err}") from err
        if not isinstance(meta, dict):
            raise CaseError("stream entry 'meta' is not a JSON object")
        if meta.get("schema", SCHEMA_VERSION) > SCHEMA_VERSION:
            raise CaseError(f"case schema {meta['schema']} is newer than this consumer ({SCHEMA_VERSION})")
        return cls.from_meta(meta, fields.get(b"rgb", b""), fields.get(b"depth", b""))
