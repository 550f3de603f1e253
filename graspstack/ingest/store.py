"""Frames stored briefly in Redis under their content id, so services pass references, not pixels."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import redis

from graspstack.frames import Intrinsics
from graspstack.ingest.validate import RawFrame, frame_id

KEY_PREFIX = "graspstack:frame:"


class FrameStoreUnavailable(RuntimeError):
    """Redis cannot be reached or refused the operation; the caller may retry later."""


@dataclass(frozen=True)
class StoredFrame:
    frame_id: str
    duplicate: bool  # it was already stored; its time-to-live was refreshed
    ttl_s: int


class FrameStore:
    def __init__(self, client: redis.Redis, ttl_s: int = 300):
        self.client = client
        self.ttl_s = ttl_s

    @classmethod
    def from_url(cls, url: str, ttl_s: int = 300, timeout_s: float = 2.0) -> FrameStore:
        client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        return cls(client, ttl_s)

    def put(self, raw: RawFrame) -> StoredFrame:
        fid = frame_id(raw)
        key = KEY_PREFIX + fid
        i = raw.intrinsics
        meta = json.dumps({"depth_scale": raw.effective_depth_scale, **asdict(i)})
        try:
            # One transaction: a frame is either fully there or not at all.
            pipe = self.client.pipeline(transaction=True)
            pipe.exists(key)
            pipe.hset(key, mapping={"rgb": raw.rgb, "depth": raw.depth, "meta": meta})
            pipe.expire(key, self.ttl_s)
            existed, _, _ = pipe.execute()
        except redis.RedisError as err:
            raise FrameStoreUnavailable(f"frame store unavailable: {err}") from err
        return StoredFrame(fid, bool(existed), self.ttl_s)

    def get(self, fid: str) -> RawFrame | None:
        try:
            data = self.client.hgetall(KEY_PREFIX + fid)
        except redis.RedisError as err:
            raise FrameStoreUnavailable(f"frame store unavailable: {err}") from err
        if not data:
            return None
        meta = json.loads(data[b"meta"])
        intr = Intrinsics(meta["fx"], meta["fy"], meta["cx"], meta["cy"], meta["width"], meta["height"])
        return RawFrame(data[b"rgb"], data[b"depth"], meta["depth_scale"], intr)

    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except redis.RedisError:
            return False
