"""The outbox's file: its schema, the records it hands out, and what its parts share."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from panelfast._native import DEFAULT_LEVEL, MAX_BODY_BYTES, EncodedBatch
from panelfast._sqlite import Database
from panelfast.clock import Clock

__all__ = [
    "OutboxStats",
    "PendingEvent",
    "PreparedBatch",
    "SavedAlarm",
    "SealedBatch",
    "StoredBatch",
]

log = logging.getLogger(__name__)

#: zstd level of chunks as they are drained: fast, since compaction or
#: sealing re-encodes them at ``DEFAULT_LEVEL`` anyway.
CHUNK_LEVEL = 3
#: Compact once this many small chunks of one configuration have gathered.
COMPACT_AFTER = 32

#: Version 1: a chunk keeps the ``seq`` its body carries (0: provisional), so
#: a compacted batch numbered as it will be sent is sealed without re-encoding.
_SCHEMA_VERSION = 1
_MIGRATIONS = {1: "ALTER TABLE chunk ADD COLUMN seq INTEGER NOT NULL DEFAULT 0"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS chunk (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    config_version TEXT NOT NULL,
    first_ms INTEGER NOT NULL,
    end_ms INTEGER NOT NULL,
    samples INTEGER NOT NULL,
    full INTEGER NOT NULL DEFAULT 0,
    body BLOB NOT NULL,
    seq INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS sealed (
    seq INTEGER PRIMARY KEY,
    config_version TEXT NOT NULL,
    first_ms INTEGER NOT NULL,
    end_ms INTEGER NOT NULL,
    samples INTEGER NOT NULL,
    body BLOB NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS refused (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    seq INTEGER NOT NULL,
    config_version TEXT NOT NULL,
    samples INTEGER NOT NULL,
    reason TEXT NOT NULL,
    refused_at INTEGER NOT NULL,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS event (
    rowid INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS alarm_state (
    id TEXT PRIMARY KEY,
    definition TEXT NOT NULL,
    active INTEGER NOT NULL,
    since_ms INTEGER
);
"""


@dataclass(frozen=True, slots=True)
class StoredBatch:
    """A chunk that already is the batch to send, numbered as it will be sent:
    sealed as it is, the same fields as an :class:`EncodedBatch`."""

    seq: int
    body: bytes
    samples: int
    first_ms: int
    end_ms: int


@dataclass(frozen=True, slots=True)
class PreparedBatch:
    """The next batch, encoded ahead of its sealing (see :meth:`Outbox.prepare`)."""

    seq: int
    config_version: str
    #: The chunks it is made of, oldest first.
    chunk_ids: tuple[int, ...]
    #: The batch to seal, then what did not fit it (back to the chunks).
    batches: tuple[EncodedBatch | StoredBatch, ...]


class _Stale(Exception):
    """Chunks changed (sealed, dropped) while they were being re-encoded."""


@dataclass(frozen=True, slots=True)
class SealedBatch:
    """The next data batch to send: its number and content are fixed."""

    seq: int
    config_version: str
    samples: int
    first_ms: int
    end_ms: int
    body: bytes
    attempts: int


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """An alarm event waiting for the cloud (§8 wire form in ``body``)."""

    id: str
    body: dict[str, object]


@dataclass(frozen=True, slots=True)
class SavedAlarm:
    """An alarm's state as kept across restarts, and the definition it was judged by."""

    id: str
    #: What decides the state (measurement, condition, threshold...): a state
    #: judged by another definition is not restored.
    definition: str
    active: bool
    #: Gateway-clock ms of the first reading of the excursion, while a delay runs.
    since_ms: int | None


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """What the outbox holds; the backlog shown to the user."""

    chunks: int
    pending_samples: int
    sealed_seq: int | None
    next_seq: int
    last_acked: int
    dropped_samples: int
    refused_batches: int
    pending_events: int
    bytes_used: int
    quota_bytes: int
    #: The first instant of the oldest sample waiting (unix ms); None: nothing waits.
    oldest_ms: int | None = None
    #: The outbox's files on disk (the database and its write-ahead log).
    file_bytes: int = 0


class _Store(Database):
    """The outbox's file and the helpers its parts share (meta values, chunks)."""

    def __init__(
        self,
        path: Path,
        *,
        quota_bytes: int,
        level: int = DEFAULT_LEVEL,
        clock: Clock | None = None,
    ) -> None:
        # synchronous=FULL: a committed sample survives a power cut.
        super().__init__(
            path,
            _SCHEMA,
            synchronous="FULL",
            schema_version=_SCHEMA_VERSION,
            migrations=_MIGRATIONS,
        )
        self.quota_bytes = quota_bytes
        self.level = level
        self._clock = clock or Clock()

    def _meta(self, db: sqlite3.Connection, key: str, default: int = 0) -> int:
        row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else default

    @staticmethod
    def _set_meta(db: sqlite3.Connection, key: str, value: int) -> None:
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    @staticmethod
    def _put_chunks(
        db: sqlite3.Connection,
        version: str,
        batches: Sequence[EncodedBatch | StoredBatch],
        ids: Sequence[int],
    ) -> None:
        """Store re-encoded batches as chunks at the given places (ids order
        is time order), with the ``seq`` each carries; a batch of at least
        half the hub's limit counts as full, so compaction leaves it alone."""
        db.executemany(
            "INSERT INTO chunk (id, config_version, first_ms, end_ms, samples, full, body, seq)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    i,
                    version,
                    b.first_ms,
                    b.end_ms,
                    b.samples,
                    int(len(b.body) >= MAX_BODY_BYTES // 2),
                    b.body,
                    b.seq,
                )
                for i, b in zip(ids, batches, strict=True)
            ],
        )

    def _oldest_places(self, db: sqlite3.Connection, count: int) -> list[int]:
        """``count`` chunk ids before every chunk held, in order: for data
        that is older than everything pending (what did not fit a batch)."""
        low = db.execute("SELECT coalesce(min(id), 1) FROM chunk").fetchone()[0]
        return list(range(low - count, low))

    @staticmethod
    def _take_chunks(db: sqlite3.Connection, ids: Sequence[int]) -> None:
        """Delete the chunks ``ids``, or raise ``_Stale`` (rolling the
        transaction back) if any is gone: the work done on them outside the
        lock is then stale."""
        before = db.total_changes
        db.executemany("DELETE FROM chunk WHERE id = ?", [(i,) for i in ids])
        if db.total_changes - before != len(ids):
            raise _Stale

    # -- data -------------------------------------------------------------

    def _enforce_quota(self, db: sqlite3.Connection) -> None:
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        while True:
            pages = db.execute("PRAGMA page_count").fetchone()[0]
            free = db.execute("PRAGMA freelist_count").fetchone()[0]
            if (pages - free) * page_size <= self.quota_bytes:
                return
            oldest = db.execute("SELECT id, samples FROM chunk ORDER BY id LIMIT 1").fetchone()
            if oldest is None:
                return  # only the sealed batch and events left: never dropped
            db.execute("DELETE FROM chunk WHERE id = ?", (oldest[0],))
            self._set_meta(db, "dropped_samples", self._meta(db, "dropped_samples") + oldest[1])
            log.warning(
                "outbox over its quota of %d bytes: dropped the oldest %d samples",
                self.quota_bytes,
                oldest[1],
                extra={
                    "event": "outbox.dropped",
                    "samples": oldest[1],
                    "quota_bytes": self.quota_bytes,
                },
            )


def _file_bytes(path: Path) -> int:
    total = 0
    for file in (path, path.with_name(path.name + "-wal")):
        with contextlib.suppress(FileNotFoundError):
            total += file.stat().st_size
    return total
