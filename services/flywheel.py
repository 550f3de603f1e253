"""The flywheel service (port 50055): consumes the hard-case stream into the durable store in a
background thread, and serves labelers (pull under lease, submit, skip, stats).

SERVING only while Redis answers and the store is writable: without either, cases cannot move.
"""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager

import grpc
import redis
from google.protobuf.timestamp_pb2 import Timestamp

from graspstack.flywheel.cases import HardCase
from graspstack.flywheel.consumer import CaseConsumer
from graspstack.flywheel.labeling import Labeling, LeaseError
from graspstack.flywheel.store import CaseNotFound, CaseStore
from graspstack.flywheel.streams import redis_client, stream_stats
from graspstack.ingest import RawFrame
from graspstack.v1 import flywheel_pb2, flywheel_pb2_grpc
from services.convert import pose_from_proto, pose_to_proto, raw_frame_from_proto, raw_frame_to_proto
from services.errors import grpc_errors
from services.server import ServiceSpec
from services.settings import FlywheelSettings

MAX_PULL = 64


def _timestamp(seconds: float) -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(int(seconds * 1e9))
    return ts


def case_to_proto(case: HardCase) -> flywheel_pb2.HardCase:
    frame = raw_frame_to_proto(
        RawFrame(case.rgb, case.depth, case.depth_scale, case.intrinsics), case.robot_id
    )
    return flywheel_pb2.HardCase(
        case_id=case.case_id,
        frame_id=case.frame_id,
        frame=frame,
        trigger=case.trigger,
        trigger_config_version=case.trigger_config_version,
        model_version=case.model_version,
        poses=[pose_to_proto(p) for p in case.poses],
        shadow_poses=[pose_to_proto(p) for p in case.shadow_poses],
        robot_id=case.robot_id,
        stage=case.stage,
        created_at=_timestamp(case.created_at),
        ground_truth=[pose_to_proto(p) for p in case.ground_truth or []],
        has_ground_truth=case.ground_truth is not None,
        detail_json=json.dumps(case.detail),
    )


def case_from_proto(msg: flywheel_pb2.HardCase) -> HardCase:
    raw = raw_frame_from_proto(msg.frame)
    return HardCase(
        frame_id=msg.frame_id,
        trigger=msg.trigger,
        model_version=msg.model_version,
        intrinsics=raw.intrinsics,
        poses=[pose_from_proto(p) for p in msg.poses],
        trigger_config_version=msg.trigger_config_version,
        shadow_poses=[pose_from_proto(p) for p in msg.shadow_poses],
        robot_id=msg.robot_id,
        stage=msg.stage,
        created_at=msg.created_at.ToNanoseconds() / 1e9,
        depth_scale=raw.effective_depth_scale,
        rgb=raw.rgb,
        depth=raw.depth,
        ground_truth=[pose_from_proto(p) for p in msg.ground_truth] if msg.has_ground_truth else None,
        detail=json.loads(msg.detail_json or "{}"),
    )


@contextmanager
def _labeling_errors(context: grpc.ServicerContext):
    """The labeling core's own errors; the shared ones go through services.errors."""
    try:
        with grpc_errors(context):
            yield
    except CaseNotFound as err:
        context.abort(grpc.StatusCode.NOT_FOUND, str(err))
    except LeaseError as err:
        context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(err))
    except ValueError as err:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))


class FlywheelServicer(flywheel_pb2_grpc.FlywheelLabelingServicer):
    def __init__(self, labeling: Labeling, client: redis.Redis, settings: FlywheelSettings):
        self.labeling = labeling
        self.client = client
        self.settings = settings

    def PullCases(self, request, context):
        with _labeling_errors(context):
            n = min(request.max_cases or 8, MAX_PULL)
            lease, cases = self.labeling.pull(request.labeler, n)
            out = []
            for case in cases:
                msg = case_to_proto(case)
                if not request.include_frames:
                    msg.frame.rgb, msg.frame.depth = b"", b""
                out.append(msg)
            return flywheel_pb2.PullCasesResponse(cases=out, lease_expires_at=_timestamp(lease.expires_at))

    def SubmitLabels(self, request, context):
        with _labeling_errors(context):
            poses = [pose_from_proto(p) for p in request.objects]
            self.labeling.submit(request.labeler, request.case_id, poses, source=request.source or "human")
            return flywheel_pb2.SubmitLabelsResponse(labelled=self.labeling.stats()["labelled"])

    def SkipCase(self, request, context):
        with _labeling_errors(context):
            self.labeling.skip(request.labeler, request.case_id, request.reason)
            return flywheel_pb2.SkipCaseResponse()

    def Stats(self, request, context):
        with _labeling_errors(context):
            return stats_proto(full_stats(self.labeling, self.client, self.settings))


def full_stats(labeling: Labeling, client: redis.Redis, settings: FlywheelSettings) -> dict:
    """Store counts plus stream counts; the latter are None (0 on the wire) when Redis is down."""
    out = labeling.stats()
    try:
        out.update(stream_stats(client, settings.stream, settings.group))
        out["dead_lettered"] = int(client.xlen(settings.dead_letter_stream))
        out["redis_up"] = True
    except redis.RedisError:
        keys = ("produced", "in_stream", "pending", "lag", "dead_lettered")
        out.update({**dict.fromkeys(keys), "redis_up": False})
    return out


def stats_proto(s: dict) -> flywheel_pb2.FlywheelStats:
    return flywheel_pb2.FlywheelStats(
        produced=s["produced"] or 0,
        stored=s["stored"],
        pending=s["pending"] or 0,
        lag=s["lag"] or 0,
        dead_lettered=s["dead_lettered"] or 0,
        unlabelled=s["unlabelled"],
        leased=s["leased"],
        labelled=s["labelled"],
        skipped=s["skipped"],
        stored_by_trigger=s["by_trigger"],
        store_bytes=s["store_bytes"],
        redis_up=s["redis_up"],
    )


def build(settings: FlywheelSettings | None = None) -> tuple[ServiceSpec, FlywheelSettings]:
    settings = settings or FlywheelSettings()
    client = redis_client(settings.redis_url, settings.redis_timeout_s)
    store = CaseStore(settings.store_path)
    # The consumer blocks on XREADGROUP: its own connection, so RPCs never queue behind it.
    consumer = CaseConsumer(
        redis_client(settings.redis_url, settings.redis_timeout_s + 2.0),
        store,
        name=settings.consumer_name,
        stream=settings.stream,
        group=settings.group,
        dead_stream=settings.dead_letter_stream,
        max_deliveries=settings.max_deliveries,
        claim_idle_ms=settings.claim_idle_ms,
        batch_size=settings.consumer_batch,
        block_ms=int(min(1000, settings.redis_timeout_s * 500)),
        retry_base_s=settings.retry_base_s,
    )
    labeling = Labeling(store, lease_s=settings.lease_s)
    servicer = FlywheelServicer(labeling, client, settings)
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,), name="flywheel-consumer", daemon=True)

    def register(server: grpc.Server) -> None:
        flywheel_pb2_grpc.add_FlywheelLabelingServicer_to_server(servicer, server)
        thread.start()  # with the server: building a spec (e.g. to inspect it) consumes nothing

    def ready() -> bool:
        try:
            return bool(client.ping()) and store.writable()
        except redis.RedisError:
            return False

    def close() -> None:
        stop.set()
        if thread.is_alive():
            thread.join(timeout=5)
        store.close()

    spec = ServiceSpec(
        name="flywheel",
        grpc_services=[flywheel_pb2.DESCRIPTOR.services_by_name["FlywheelLabeling"].full_name],
        register=register,
        ready=ready,
        on_stop=[close],
    )
    spec.consumer = consumer  # type: ignore[attr-defined]  # for tests and the chaos runner
    return spec, settings
