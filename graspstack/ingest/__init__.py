"""Frame ingestion core: decode and validate what robots send, store it briefly by content."""

from graspstack.ingest.store import FrameStore, FrameStoreUnavailable, StoredFrame
from graspstack.ingest.validate import FrameError, RawFrame, decode_frame, frame_id

__all__ = [
    "FrameError",
    "FrameStore",
    "FrameStoreUnavailable",
    "RawFrame",
    "StoredFrame",
    "decode_frame",
    "frame_id",
]
