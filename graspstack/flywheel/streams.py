"""Stream names and Redis clients shared by the producer, the consumer and the stats."""

from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

CASES_STREAM = "graspstack:flywheel:cases"
DEAD_LETTER_STREAM = "graspstack:flywheel:dead"
GROUP = "flywheel"


def redis_client(url: str, timeout_s: float = 2.0) -> redis.Redis:
    """A client that fails fast: our own loops retry, so redis-py's built-in retries with
    second-long back-off would only stall a producer's flush or a health probe."""
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
    )


def stream_stats(client: redis.Redis, stream: str = CASES_STREAM, group: str = GROUP) -> dict:
    """produced (entries ever added), in_stream, pending (delivered, not acknowledged), lag
    (not yet delivered) and dead_lettered, straight from Redis."""
    out = {"produced": 0, "in_stream": 0, "pending": 0, "lag": 0}
    try:
        info = client.xinfo_stream(stream)
    except redis.ResponseError:  # no stream yet: nothing produced
        return out
    out["produced"] = int(info.get("entries-added", info.get("length", 0)))
    out["in_stream"] = int(info.get("length", 0))
    for g in client.xinfo_groups(stream):
        if g["name"] in (group, group.encode()):
            out["pending"] = int(g["pending"])
            lag = g.get("lag")
            if lag is None:
                # Redis 7.0 forgets the group's read counter when it reloads its AOF. Then: everything
                # in the stream that is not pending. Never less than the true lag (the consumer
                # trims only acknowledged entries and keeps every undelivered one), and exact right
                # after a trim with nothing pending; counting exactly would mean reading the frames.
                lag = max(0, out["in_stream"] - out["pending"])
            out["lag"] = int(lag)
    return out
