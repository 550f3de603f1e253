"""Move hard cases from the Redis Stream into the durable store, losing and duplicating none.

Per entry: decode, write blobs and index row (CaseStore.put, durable when it returns), THEN XACK.
A crash anywhere before the XACK leaves the entry pending in the group, so it is delivered again;
the store is idempotent by case id, so the second delivery is acknowledged without a second row.

Each round of `poll`:
1. our own pending entries: on start all of them (read before a crash, never acknowledged), later
   only those whose retry back-off has passed. XCLAIM to ourselves so Redis counts the delivery;
2. entries idle longer than `claim_idle_ms` on any consumer (a dead one), via XAUTOCLAIM;
3. new entries (XREADGROUP ">").
An entry delivered `max_deliveries` times without being stored goes to the dead-letter stream
with the reason, and is acknowledged in the same MULTI, so it is in exactly one of the two.

The stream is trimmed only below the oldest pending entry and never past the group's last
delivered id: everything trimmed has been acknowledged, i.e. stored or dead-lettered.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from graspstack import metrics
from graspstack.flywheel.cases import CaseError, HardCase
from graspstack.flywheel.store import CaseStore
from graspstack.flywheel.streams import CASES_STREAM, DEAD_LETTER_STREAM, GROUP, stream_stats
from graspstack.ingest import FrameStore, RawFrame

log = logging.getLogger("graspstack.flywheel.consumer")


@dataclass
class ConsumerStats:
    stored: int = 0  # new cases written
    duplicates: int = 0  # redeliveries of cases already stored (absorbed, acknowledged)
    failures: int = 0  # attempts that failed and were left pending for a retry
    dead_lettered: int = 0
    recovered: int = 0  # own pending entries re-read after a restart
    claimed: int = 0  # entries taken over from idle consumers


def _decode_id(entry_id) -> str:
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


def _next_id(entry_id: str) -> str:
    ms, seq = entry_id.split("-")
    return f"{ms}-{int(seq) + 1}"


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, seq = entry_id.split("-")
    return int(ms), int(seq)


class CaseConsumer:
    def __init__(
        self,
        client: redis.Redis,
        store: CaseStore,
        *,
        name: str,
        stream: str = CASES_STREAM,
        group: str = GROUP,
        dead_stream: str = DEAD_LETTER_STREAM,
        max_deliveries: int = 5,
        claim_idle_ms: int = 60_000,
        batch_size: int = 16,
        block_ms: int = 1000,
        retry_base_s: float = 0.5,
        retry_max_s: float = 30.0,
        trim_every_s: float = 5.0,
        frame_loader: Callable[[str], RawFrame | None] | None = None,
    ):
        self.client = client
        self.store = store
        self.name = name
        self.stream = stream
        self.group = group
        self.dead_stream = dead_stream
        self.max_deliveries = max_deliveries
        self.claim_idle_ms = claim_idle_ms
        self.batch_size = batch_size
        self.block_ms = block_ms
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.trim_every_s = trim_every_s
        # Cases sent by reference: the frame lives briefly in the camera service's Redis store.
        self.frame_loader = frame_loader or FrameStore(client).get
        self.stats = ConsumerStats()
        # Test hook: called after the store write and before XACK (to crash exactly there).
        self.before_ack: Callable[[str], None] | None = None
        self._recovered = False
        self._retry_at: dict[str, float] = {}  # entry id -> monotonic time of its next attempt
        self._last_error: dict[str, str] = {}
        self._claim_cursor = "0-0"
        self._last_trim = 0.0

    # -- set-up ----------------------------------------------------------------------------------
    def ensure_group(self) -> None:
        """Create the group at the stream's start (id 0), so entries produced first are consumed."""
        try:
            self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as err:
            if "BUSYGROUP" not in str(err):
                raise

    # -- one round -------------------------------------------------------------------------------
    def poll(self) -> int:
        """Handle what is pending, claimable and new; returns how many entries were handled."""
        handled = self._own_pending()
        handled += self._claim_idle()
        reply = self.client.xreadgroup(
            self.group, self.name, {self.stream: ">"}, count=self.batch_size, block=self.block_ms or None
        )
        for _, entries in reply or []:
            for entry_id, fields in entries:
                self._handle(_decode_id(entry_id), fields, deliveries=1)
                handled += 1
        if time.monotonic() - self._last_trim > self.trim_every_s:
            self.trim()
            self.refresh_metrics()
            self._last_trim = time.monotonic()
        return handled

    def run(self, stop: threading.Event) -> None:
        """Poll until stopped. Redis being down is waited out, never fatal."""
        backoff = 0.05
        group_ok = False
        while not stop.is_set():
            try:
                if not group_ok:
                    self.ensure_group()
                    group_ok = True
                self.poll()
                backoff = 0.05
            except redis.RedisError as err:
                group_ok = False  # Redis may have come back without the group: make it again
                log.warning("flywheel consumer: Redis unavailable (%s); retrying in %.2f s", err, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 2.0)
            except Exception:
                log.exception("flywheel consumer round failed")
                stop.wait(1.0)

    def drain(self, timeout_s: float = 10.0) -> bool:
        """Poll until nothing is pending or new (tests and the chaos runner). False on timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.poll()
            self.trim()  # makes the lag exact when Redis cannot report it (see stream_stats)
            s = stream_stats(self.client, self.stream, self.group)
            if s["pending"] == 0 and s["lag"] == 0:
                return True
        return False

    # -- the three sources -----------------------------------------------------------------------
    def _pending_counts(self, consumer: str | None = None, count: int = 1000) -> dict[str, int]:
        rows = self.client.xpending_range(
            self.stream, self.group, min="-", max="+", count=count, consumername=consumer
        )
        return {_decode_id(r["message_id"]): int(r["times_delivered"]) for r in rows}

    def _own_pending(self) -> int:
        counts = self._pending_counts(self.name)
        now = time.monotonic()
        # After a restart: everything we read and never acknowledged; later only retries now due.
        due = [i for i in counts if not self._recovered or self._retry_at.get(i, 0.0) <= now]
        if not due:
            self._recovered = True
            return 0
        handled = 0
        for start in range(0, len(due), self.batch_size):
            ids = due[start : start + self.batch_size]
            # XCLAIM to ourselves: returns the data and makes Redis count this delivery.
            claimed = {
                _decode_id(i): f for i, f in self.client.xclaim(self.stream, self.group, self.name, 0, ids)
            }
            for entry_id in ids:
                if not self._recovered:
                    self.stats.recovered += 1
                self._handle(entry_id, claimed.get(entry_id), deliveries=counts[entry_id] + 1)
                handled += 1
        self._recovered = True
        return handled

    def _claim_idle(self) -> int:
        next_cursor, entries, deleted = self.client.xautoclaim(
            self.stream,
            self.group,
            self.name,
            self.claim_idle_ms,
            start_id=self._claim_cursor,
            count=self.batch_size,
        )[:3]
        self._claim_cursor = _decode_id(next_cursor)
        for entry_id in deleted or []:
            # Trimmed or deleted while pending: only a manual XDEL/XTRIM can do that. Say so loudly.
            log.error("pending entry %s vanished from the stream before it was stored", _decode_id(entry_id))
        if not entries:
            return 0
        counts = self._pending_counts(self.name)
        for entry_id, fields in entries:
            entry_id = _decode_id(entry_id)
            self.stats.claimed += 1
            self._handle(entry_id, fields, deliveries=counts.get(entry_id, self.max_deliveries))
        return len(entries)

    # -- one entry -------------------------------------------------------------------------------
    def _resolve_frame(self, case: HardCase) -> HardCase:
        raw = self.frame_loader(case.frame_id)
        if raw is None:
            raise CaseError(f"frame {case.frame_id} is neither inline nor in the frame store (expired?)")
        case.rgb, case.depth, case.depth_scale = raw.rgb, raw.depth, raw.effective_depth_scale
        return case

    def _handle(self, entry_id: str, fields: dict | None, deliveries: int) -> None:
        if fields is None:
            self._dead_letter(entry_id, {}, "entry deleted from the stream before it was stored", deliveries)
            return
        if deliveries > self.max_deliveries:
            # Delivered that often without an acknowledgement: it probably kills its consumer.
            reason = self._last_error.get(entry_id, "delivered too often without being stored")
            self._dead_letter(entry_id, fields, reason, deliveries)
            return
        try:
            case = HardCase.from_fields(fields)
            if not case.has_frame:
                case = self._resolve_frame(case)
            new = self.store.put(case, stream_id=entry_id)
        except Exception as err:
            self._failed(entry_id, fields, deliveries, err)
            return
        if self.before_ack is not None:
            self.before_ack(entry_id)
        self.client.xack(self.stream, self.group, entry_id)
        self._retry_at.pop(entry_id, None)
        self._last_error.pop(entry_id, None)
        if new:
            self.stats.stored += 1
            metrics.FLYWHEEL_STORED.labels(case.trigger).inc()
        else:
            self.stats.duplicates += 1

    def _failed(self, entry_id: str, fields: dict, deliveries: int, err: Exception) -> None:
        reason = f"{type(err).__name__}: {err}"
        self.stats.failures += 1
        self._last_error[entry_id] = reason
        metrics.FLYWHEEL_CONSUMER_RETRIES.labels(type(err).__name__).inc()
        if deliveries >= self.max_deliveries:
            self._dead_letter(entry_id, fields, reason, deliveries)
            return
        delay = min(self.retry_base_s * 2 ** (deliveries - 1), self.retry_max_s)
        self._retry_at[entry_id] = time.monotonic() + delay
        log.warning("entry %s failed (attempt %d/%d), retry in %.2f s: %s", entry_id, deliveries,
                    self.max_deliveries, delay, reason)  # fmt: skip

    def _dead_letter(self, entry_id: str, fields: dict, reason: str, deliveries: int) -> None:
        record = {k.decode() if isinstance(k, bytes) else k: v for k, v in fields.items()}
        record.update(
            {
                "dead_reason": reason,
                "dead_source_id": entry_id,
                "dead_deliveries": str(deliveries),
                "dead_consumer": self.name,
                "dead_at": f"{time.time():.3f}",
            }
        )
        # One transaction: the entry is in the dead-letter stream exactly when it left the group.
        pipe = self.client.pipeline(transaction=True)
        pipe.xadd(self.dead_stream, record)
        pipe.xack(self.stream, self.group, entry_id)
        pipe.execute()
        self._retry_at.pop(entry_id, None)
        self._last_error.pop(entry_id, None)
        self.stats.dead_lettered += 1
        metrics.FLYWHEEL_DEAD_LETTERED.inc()
        log.error("entry %s dead-lettered after %d deliveries: %s", entry_id, deliveries, reason)

    # -- housekeeping ----------------------------------------------------------------------------
    def trim(self) -> int:
        """Drop entries that are acknowledged (stored or dead-lettered), and only those."""
        last_delivered = None
        for g in self.client.xinfo_groups(self.stream):
            if _decode_id(g["name"]) == self.group:
                last_delivered = _decode_id(g["last-delivered-id"])
        if last_delivered is None:
            return 0
        horizon = _next_id(last_delivered)
        summary = self.client.xpending(self.stream, self.group)
        if summary["pending"]:
            oldest = _decode_id(summary["min"])
            horizon = min(horizon, oldest, key=_id_key)
        return int(self.client.xtrim(self.stream, minid=horizon, approximate=False))

    def refresh_metrics(self) -> None:
        s = stream_stats(self.client, self.stream, self.group)
        metrics.FLYWHEEL_PENDING.set(s["pending"])
        metrics.FLYWHEEL_LAG.set(s["lag"])
        metrics.FLYWHEEL_STORE_BYTES.set(self.store.size_bytes())


def dead_letters(client: redis.Redis, dead_stream: str = DEAD_LETTER_STREAM, count: int = 100) -> list[dict]:
    """The dead-letter entries with their reasons (images left out)."""
    out = []
    for entry_id, fields in client.xrange(dead_stream, count=count):
        f = {k.decode(): v for k, v in fields.items()}
        out.append(
            {
                "id": _decode_id(entry_id),
                "source_id": f.get("dead_source_id", b"").decode(),
                "case_id": f.get("case_id", b"").decode(errors="replace"),
                "reason": f.get("dead_reason", b"").decode(errors="replace"),
                "deliveries": int(f.get("dead_deliveries", b"0")),
            }
        )
    return out


def replay_dead_letters(
    client: redis.Redis, stream: str = CASES_STREAM, dead_stream: str = DEAD_LETTER_STREAM
) -> int:
    """Put dead letters back on the case stream (after fixing what killed them). Returns how many."""
    moved = 0
    for entry_id, fields in client.xrange(dead_stream):
        original = {k: v for k, v in fields.items() if not k.startswith(b"dead_")}
        pipe = client.pipeline(transaction=True)
        pipe.xadd(stream, original)
        pipe.xdel(dead_stream, entry_id)
        pipe.execute()
        moved += 1
    return moved
