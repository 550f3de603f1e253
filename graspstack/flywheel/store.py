"""The durable case store: content-addressed image blobs on disk plus a SQLite index.

Order of a write, and why it is safe to crash anywhere in it:
1. each blob goes to a temporary file, is fsynced, renamed to its content address, and the folder
   is fsynced: a blob either exists whole under its hash or not at all;
2. one SQLite transaction (WAL, synchronous=FULL) inserts the index row, or does nothing if the
   case id is already there: idempotent, so a redelivered entry never makes a duplicate.
Only after `put` returns does the consumer acknowledge the stream entry. A crash between 1 and 2
leaves an orphan blob that the redelivery rewrites (same bytes, same name).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from graspstack.flywheel.cases import HardCase

SCHEMA = """
CREATE TABLE IF NOT EXISTS cases (
    case_id TEXT PRIMARY KEY,
    frame_id TEXT NOT NULL,
    trigger TEXT NOT NULL,
    trigger_config_version TEXT NOT NULL,
    model_version TEXT NOT NULL,
    robot_id TEXT NOT NULL,
    stage TEXT NOT NULL,
    created_at REAL NOT NULL,
    stored_at REAL NOT NULL,
    stream_id TEXT NOT NULL,          -- the stream entry it came from, for audit
    rgb_blob TEXT NOT NULL,           -- sha256 hex of the encoded colour image
    depth_blob TEXT NOT NULL,
    meta TEXT NOT NULL,               -- HardCase.meta() as JSON
    status TEXT NOT NULL DEFAULT 'unlabelled',   -- unlabelled | labelled | skipped
    lease_owner TEXT,
    lease_until REAL,
    skips INTEGER NOT NULL DEFAULT 0,
    labels TEXT,                      -- JSON list of poses, once labelled
    label_source TEXT,
    labelled_by TEXT,
    labelled_at REAL
);
CREATE INDEX IF NOT EXISTS cases_status ON cases (status, stored_at);
CREATE TABLE IF NOT EXISTS blobs (digest TEXT PRIMARY KEY, nbytes INTEGER NOT NULL);
"""


class CaseNotFound(LookupError):
    """No stored case has this id."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class CaseStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.blob_dir = self.root / "blobs"
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self.db_path = self.root / "index.sqlite"
        # One connection behind a lock: the consumer thread and the RPC threads share it, and
        # SQLite serialises writers anyway.
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.db_path, check_same_thread=False, isolation_level=None, timeout=10)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed transaction survives power loss, not only a process crash.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction taken up front (BEGIN IMMEDIATE), so read-then-update is atomic."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def query(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # -- blobs -----------------------------------------------------------------------------------
    def blob_path(self, digest: str) -> Path:
        return self.blob_dir / digest[:2] / digest

    def _write_blob(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        path = self.blob_path(digest)
        if path.exists() and path.stat().st_size == len(data):
            return digest  # content-addressed: same name, same bytes
        path.parent.mkdir(exist_ok=True)
        tmp = path.with_name(f".{digest}.{os.getpid()}.{threading.get_ident()}.tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)  # the rename itself must survive a power cut
        return digest

    def read_blob(self, digest: str) -> bytes:
        return self.blob_path(digest).read_bytes()

    # -- cases -----------------------------------------------------------------------------------
    def put(self, case: HardCase, stream_id: str = "") -> bool:
        """Store durably. True when new, False when the case id was already stored."""
        if not case.has_frame:
            raise ValueError(f"{case.case_id}: the store keeps frames inline; resolve the reference first")
        if self.contains(case.case_id):
            return False
        rgb, depth = self._write_blob(case.rgb), self._write_blob(case.depth)
        meta = case.meta()
        with self.transaction() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO cases (case_id, frame_id, trigger, trigger_config_version, "
                "model_version, robot_id, stage, created_at, stored_at, stream_id, rgb_blob, depth_blob, "
                "meta) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    case.case_id,
                    case.frame_id,
                    case.trigger,
                    case.trigger_config_version,
                    case.model_version,
                    case.robot_id,
                    case.stage,
                    case.created_at,
                    time.time(),
                    stream_id,
                    rgb,
                    depth,
                    json.dumps(meta, separators=(",", ":")),
                ),
            )
            db.executemany(
                "INSERT OR IGNORE INTO blobs (digest, nbytes) VALUES (?, ?)",
                [(rgb, len(case.rgb)), (depth, len(case.depth))],
            )
            return cur.rowcount == 1

    def contains(self, case_id: str) -> bool:
        return bool(self.query("SELECT 1 FROM cases WHERE case_id = ?", (case_id,)))

    def get(self, case_id: str, with_frame: bool = True) -> HardCase:
        rows = self.query("SELECT meta, rgb_blob, depth_blob FROM cases WHERE case_id = ?", (case_id,))
        if not rows:
            raise CaseNotFound(f"no stored case {case_id!r}")
        row = rows[0]
        rgb = self.read_blob(row["rgb_blob"]) if with_frame else b""
        depth = self.read_blob(row["depth_blob"]) if with_frame else b""
        return HardCase.from_meta(json.loads(row["meta"]), rgb, depth)

    def row(self, case_id: str) -> sqlite3.Row:
        rows = self.query("SELECT * FROM cases WHERE case_id = ?", (case_id,))
        if not rows:
            raise CaseNotFound(f"no stored case {case_id!r}")
        return rows[0]

    def case_ids(self, status: str | None = None) -> list[str]:
        if status is None:
            return [r[0] for r in self.query("SELECT case_id FROM cases ORDER BY stored_at")]
        return [
            r[0]
            for r in self.query("SELECT case_id FROM cases WHERE status = ? ORDER BY stored_at", (status,))
        ]

    def count(self) -> int:
        return int(self.query("SELECT COUNT(*) FROM cases")[0][0])

    def counts_by(self, column: str) -> dict[str, int]:
        if column not in ("trigger", "status", "stage", "model_version"):
            raise ValueError(f"cannot group by {column!r}")
        return {r[0]: r[1] for r in self.query(f"SELECT {column}, COUNT(*) FROM cases GROUP BY {column}")}

    def size_bytes(self) -> int:
        blobs = int(self.query("SELECT COALESCE(SUM(nbytes), 0) FROM blobs")[0][0])
        index = sum(p.stat().st_size for p in self.root.glob("index.sqlite*") if p.exists())
        return blobs + index

    def writable(self) -> bool:
        """Can we write a file and take a write lock on the index right now? (health check)"""
        try:
            probe = self.root / ".probe"
            probe.write_bytes(b"ok")
            probe.unlink()
            with self.transaction():
                pass
            return True
        except (OSError, sqlite3.Error):
            return False
