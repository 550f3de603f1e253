"""The labelers' workflow over the case store: leased batches, labels, skips and stats.

A pull takes unlabelled cases whose lease is free or expired and leases them to the labeler, in
one write transaction (BEGIN IMMEDIATE), so two labelers can never be handed the same case while
a lease holds. A lease that runs out frees the case for the next pull; a late submission from
its old holder is still accepted unless someone else holds it now.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from graspstack import metrics
from graspstack.flywheel.cases import HardCase, pose_to_dict
from graspstack.flywheel.store import CaseNotFound, CaseStore
from graspstack.frames import ObjectPose

UNLABELLED, LABELLED, SKIPPED = "unlabelled", "labelled", "skipped"


class LeaseError(RuntimeError):
    """The case is leased to another labeler, or already labelled."""


@dataclass
class Lease:
    labeler: str
    case_ids: list[str]
    expires_at: float  # Unix seconds


class Labeling:
    def __init__(
        self,
        store: CaseStore,
        lease_s: float = 600.0,
        max_skips: int = 3,
        clock: Callable[[], float] = time.time,
    ):
        self.store = store
        self.lease_s = lease_s
        self.max_skips = max_skips  # skipped this often, a case leaves the queue (status skipped)
        self.clock = clock

    def pull(self, labeler: str, max_cases: int = 8) -> tuple[Lease, list[HardCase]]:
        """Lease up to max_cases unlabelled cases, least skipped then oldest first.

        Pulling again returns (and renews) one's own leases first.
        """
        if not labeler:
            raise ValueError("a labeler name is required (leases are per labeler)")
        now = self.clock()
        expires = now + self.lease_s
        with self.store.transaction() as db:
            rows = db.execute(
                "SELECT case_id FROM cases WHERE status = ? "
                "AND (lease_owner IS NULL OR lease_until <= ? OR lease_owner = ?) "
                "ORDER BY skips, stored_at LIMIT ?",  # skipped cases after fresh ones
                (UNLABELLED, now, labeler, max_cases),
            ).fetchall()
            ids = [r[0] for r in rows]
            db.executemany(
                "UPDATE cases SET lease_owner = ?, lease_until = ? WHERE case_id = ?",
                [(labeler, expires, i) for i in ids],
            )
        return Lease(labeler, ids, expires), [self.store.get(i) for i in ids]

    def _check_lease(self, db, case_id: str, labeler: str) -> None:
        row = db.execute(
            "SELECT status, lease_owner, lease_until FROM cases WHERE case_id = ?", (case_id,)
        ).fetchone()
        if row is None:
            raise CaseNotFound(f"no stored case {case_id!r}")
        if row["status"] == LABELLED:
            raise LeaseError(f"{case_id} is already labelled")
        held_by_other = row["lease_owner"] not in (None, labeler) and row["lease_until"] > self.clock()
        if held_by_other:
            raise LeaseError(f"{case_id} is leased to {row['lease_owner']} until {row['lease_until']:.0f}")

    def submit(self, labeler: str, case_id: str, poses: Sequence[ObjectPose], source: str = "human") -> None:
        """Record the labels (object poses in the camera frame) and release the lease."""
        labels = json.dumps([pose_to_dict(p) for p in poses])
        try:
            with self.store.transaction() as db:
                self._check_lease(db, case_id, labeler)
                db.execute(
                    "UPDATE cases SET status = ?, labels = ?, label_source = ?, labelled_by = ?, "
                    "labelled_at = ?, lease_owner = NULL, lease_until = NULL WHERE case_id = ?",
                    (LABELLED, labels, source, labeler, self.clock(), case_id),
                )
        except (LeaseError, CaseNotFound):
            metrics.FLYWHEEL_LABELS.labels("rejected").inc()
            raise
        metrics.FLYWHEEL_LABELS.labels("labelled").inc()

    def skip(self, labeler: str, case_id: str, reason: str = "") -> None:
        """Give the case back (unlabellable for this labeler); after max_skips it leaves the queue."""
        with self.store.transaction() as db:
            self._check_lease(db, case_id, labeler)
            db.execute(
                "UPDATE cases SET skips = skips + 1, lease_owner = NULL, lease_until = NULL, "
                "status = CASE WHEN skips + 1 >= ? THEN ? ELSE status END "
                "WHERE case_id = ?",
                (self.max_skips, SKIPPED, case_id),
            )
        metrics.FLYWHEEL_LABELS.labels("skipped").inc()

    def labels(self, case_id: str) -> list[dict] | None:
        row = self.store.row(case_id)
        return None if row["labels"] is None else json.loads(row["labels"])

    def stats(self) -> dict:
        now = self.clock()
        by_status = self.store.counts_by("status")
        leased = self.store.query(
            "SELECT COUNT(*) FROM cases WHERE status = ? AND lease_until > ?", (UNLABELLED, now)
        )[0][0]
        return {
            "stored": self.store.count(),
            "unlabelled": by_status.get(UNLABELLED, 0),
            "leased": int(leased),
            "labelled": by_status.get(LABELLED, 0),
            "skipped": by_status.get(SKIPPED, 0),
            "by_trigger": self.store.counts_by("trigger"),
            "store_bytes": self.store.size_bytes(),
        }
