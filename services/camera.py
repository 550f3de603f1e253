"""Camera ingestion service (port 50051): validate frames, store them by content, answer references."""

from __future__ import annotations

import grpc

from graspstack import metrics
from graspstack.ingest import FrameError, FrameStore, decode_frame
from graspstack.v1 import camera_pb2, camera_pb2_grpc, frames_pb2
from services.convert import raw_frame_from_proto, raw_frame_to_proto, timestamp_in
from services.errors import NotFound, check_deadline, grpc_errors
from services.server import ServiceSpec
from services.settings import CameraSettings


class CameraIngestionServicer(camera_pb2_grpc.CameraIngestionServicer):
    def __init__(self, store: FrameStore, max_stream_frames: int = 1000):
        self.store = store
        self.max_stream_frames = max_stream_frames

    def _ingest(self, request: frames_pb2.Frame) -> tuple[frames_pb2.FrameRef, bool]:
        raw = raw_frame_from_proto(request)
        try:
            decode_frame(raw)  # validate fully before storing: stored frames are always usable
        except FrameError:
            metrics.FRAMES_REJECTED.inc()
            raise
        stored = self.store.put(raw)
        metrics.FRAMES_STORED.labels("duplicate" if stored.duplicate else "stored").inc()
        return frames_pb2.FrameRef(
            frame_id=stored.frame_id, expires_at=timestamp_in(stored.ttl_s)
        ), stored.duplicate

    def PutFrame(self, request, context):
        with grpc_errors(context):
            check_deadline(context, "storing the frame")
            ref, _ = self._ingest(request)
            return ref

    def StreamFrames(self, request_iterator, context):
        summary = camera_pb2.StreamSummary()
        with grpc_errors(context):
            for n, frame in enumerate(request_iterator):
                if n >= self.max_stream_frames:
                    context.abort(
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        f"more than {self.max_stream_frames} frames in one stream; open a new one",
                    )
                check_deadline(context, f"storing frame {n}")
                try:
                    ref, duplicate = self._ingest(frame)
                except FrameError as err:
                    raise FrameError(f"frame {n} of the stream: {err}") from err
                summary.refs.append(ref)
                summary.duplicates += int(duplicate)
        return summary

    def GetFrame(self, request, context):
        with grpc_errors(context):
            raw = self.store.get(request.frame_id)
            if raw is None:
                raise NotFound(f"frame {request.frame_id!r} is not stored (expired, or never sent)")
            return raw_frame_to_proto(raw)


def build(settings: CameraSettings | None = None) -> tuple[ServiceSpec, CameraSettings]:
    settings = settings or CameraSettings()
    store = FrameStore.from_url(
        settings.redis_url, ttl_s=settings.frame_ttl_s, timeout_s=settings.redis_timeout_s
    )
    servicer = CameraIngestionServicer(store, settings.max_stream_frames)
    spec = ServiceSpec(
        name="camera",
        grpc_services=[camera_pb2.DESCRIPTOR.services_by_name["CameraIngestion"].full_name],
        register=lambda server: camera_pb2_grpc.add_CameraIngestionServicer_to_server(servicer, server),
        ready=store.ping,
    )
    return spec, settings
