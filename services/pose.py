"""Pose estimation (50052) and the shadow baseline (50054): one servicer, two configurations.

The pose service serves a registry model version and mirrors every request to the shadow; the
shadow serves the scripted baseline behind the same interface and mirrors nothing.
"""

from __future__ import annotations

import functools
import time

import grpc

from graspstack import metrics
from graspstack.frames import Frame
from graspstack.ingest import FrameError, FrameStore, RawFrame, decode_frame, frame_id
from graspstack.predictors.base import Predictor, load_predictor
from graspstack.serving.hard_cases import HardCaseReporter
from graspstack.serving.pose_estimator import PoseEstimator
from graspstack.serving.shadow import MirrorItem, ShadowMirror
from graspstack.v1 import pose_pb2, pose_pb2_grpc
from services.convert import pose_from_proto, pose_to_proto, raw_frame_from_proto
from services.errors import NotFound, check_deadline, grpc_errors
from services.server import ServiceSpec
from services.settings import PoseSettings, ShadowSettings

BASELINES = ("mean", "scripted")


class PoseServicer(pose_pb2_grpc.PoseEstimationServicer):
    def __init__(
        self,
        estimator: PoseEstimator,
        store: FrameStore | None,
        mirror: ShadowMirror | None = None,
        hard_cases: HardCaseReporter | None = None,
    ):
        self.estimator = estimator
        self.store = store
        self.mirror = mirror
        self.hard_cases = hard_cases

    def _frame(self, request: pose_pb2.EstimatePosesRequest) -> tuple[RawFrame, Frame, str]:
        source = request.WhichOneof("source")
        if source == "frame":
            raw = raw_frame_from_proto(request.frame)
        elif source == "frame_ref":
            if self.store is None:
                raise NotFound("this service has no frame store; send the frame inline")
            raw = self.store.get(request.frame_ref.frame_id)
            if raw is None:
                raise NotFound(f"frame {request.frame_ref.frame_id!r} is not stored (expired, or never sent)")
        else:
            raise FrameError("request has neither a frame nor a frame_ref")
        return raw, decode_frame(raw), frame_id(raw)

    def EstimatePoses(self, request, context):
        start = time.perf_counter()
        with grpc_errors(context):
            check_deadline(context, "estimating poses")
            raw, frame, fid = self._frame(request)
            est = self.estimator.estimate(frame, timeout_s=context.time_remaining())
            metrics.POSE_LATENCY_SECONDS.labels(
                self.estimator.service, est.model_version, self.estimator.stage
            ).observe(time.perf_counter() - start)
            robot_id = request.frame.robot_id if request.HasField("frame") else ""
            mirrored = False
            if self.mirror is not None:
                context_ = {"frame_id": fid, "raw": raw, "robot_id": robot_id}
                mirrored = self.mirror.offer(MirrorItem(request, est.poses, est.model_version, context_))
            if self.hard_cases is not None and not mirrored:  # else the mirror's thread reports it
                self.hard_cases.on_answer(raw, fid, est.model_version, est.poses, robot_id)
            return pose_pb2.EstimatePosesResponse(
                objects=[pose_to_proto(p) for p in est.poses],
                model_version=est.model_version,
                queue_ms=est.queue_ms,
                compute_ms=est.compute_ms,
                frame_id=fid,
            )


def resolve_version(version: str) -> str:
    """Empty means the registry's active model; baselines are served under their own names."""
    if version:
        return version
    from graspstack.pose_model.registry import active_version

    return active_version()


def load_version(version: str, threads: int = 2, object_workers: int | None = None) -> Predictor:
    spec = version if version in BASELINES else f"model:{version}"
    return load_predictor(spec, threads=threads, object_workers=object_workers)


def _shadow_client(target: str, timeout_s: float):
    channel = grpc.insecure_channel(target, options=[("grpc.max_send_message_length", 64 * 1024 * 1024)])
    stub = pose_pb2_grpc.PoseEstimationStub(channel)

    def ask(request: pose_pb2.EstimatePosesRequest):
        response = stub.EstimatePoses(request, timeout=timeout_s)
        return [pose_from_proto(p) for p in response.objects]

    return ask, channel


def _spec(
    name: str, servicer: PoseServicer, estimator: PoseEstimator, store: FrameStore, extra_stop, on_reload=None
) -> ServiceSpec:
    return ServiceSpec(
        name=name,
        grpc_services=[pose_pb2.DESCRIPTOR.services_by_name["PoseEstimation"].full_name],
        register=lambda server: pose_pb2_grpc.add_PoseEstimationServicer_to_server(servicer, server),
        ready=store.ping,  # the model is loaded before the server starts; frame refs need Redis
        on_stop=[estimator.close, *extra_stop],
        on_reload=on_reload,
    )


def build(settings: PoseSettings | None = None) -> tuple[ServiceSpec, PoseSettings]:
    settings = settings or PoseSettings()
    version = resolve_version(settings.model)
    estimator = PoseEstimator(
        functools.partial(
            load_version, threads=settings.torch_threads, object_workers=settings.object_workers
        ),
        version,
        service="pose",
        stage=settings.stage,
        max_batch_size=settings.max_batch_size,
        max_wait_s=settings.max_wait_ms / 1e3,
        max_queue=settings.max_queue,
        warmup_rounds=settings.warmup_rounds,
    )
    store = FrameStore.from_url(settings.redis_url, timeout_s=settings.redis_timeout_s)
    hard_cases, stops = None, []
    if settings.hard_cases:
        from graspstack.flywheel.producer import CaseProducer
        from graspstack.flywheel.triggers import TriggerConfig

        producer = CaseProducer.from_url(settings.redis_url, stream=settings.hard_case_stream)
        hard_cases = HardCaseReporter(producer, TriggerConfig.load(), settings.stage)
    mirror = None
    if settings.shadow_target:
        ask, channel = _shadow_client(settings.shadow_target, settings.shadow_timeout_s)
        mirror = ShadowMirror(
            ask,
            max_queue=settings.shadow_queue,
            on_result=hard_cases.on_shadow if hard_cases else None,
            on_failure=hard_cases.on_shadow_failed if hard_cases else None,
        )
        stops = [mirror.close, channel.close]
    if hard_cases:
        stops.append(hard_cases.close)  # after the mirror: its last results still become cases
    servicer = PoseServicer(estimator, store, mirror, hard_cases)
    # SIGHUP: serve the registry's active version now (a pilot promoted or rolled back), unless this
    # service was pinned to a version.
    reload = None if settings.model else lambda: estimator.switch(resolve_version(""))
    return _spec("pose", servicer, estimator, store, stops, reload), settings


def build_shadow(settings: ShadowSettings | None = None) -> tuple[ServiceSpec, ShadowSettings]:
    settings = settings or ShadowSettings()
    estimator = PoseEstimator(
        load_predictor,
        settings.predictor,
        service="shadow",
        max_batch_size=settings.max_batch_size,
        max_wait_s=settings.max_wait_ms / 1e3,
        max_queue=settings.max_queue,
        warmup_rounds=settings.warmup_rounds,
    )
    store = FrameStore.from_url(settings.redis_url, timeout_s=settings.redis_timeout_s)
    return _spec("shadow", PoseServicer(estimator, store), estimator, store, []), settings
