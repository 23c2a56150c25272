"""The durable outbox: data and alarm events wait here until the cloud acknowledged them.

One SQLite file (WAL, ``synchronous=FULL``: a commit survives a power cut).

Data (cloud protocol §7) goes through three states:

``chunk``
    Samples drained from the rings, stored as batches numbered
    *provisionally* 0. While the cloud is unreachable, small chunks are
    compacted into full batches (up to the hub's 256,000 bytes, zstd level
    19), which is what keeps a month at the product ceiling within about 70 MB.
``sealed``
    At most one batch at a time: the next one to send, its ``seq`` and its
    content fixed in the same transaction that removes the chunks it was made
    from, before it is first sent. Across crashes it is sent again unchanged,
    so a lost acknowledgement heals as a duplicate at the cloud and a ``seq``
    never carries other content.
``acknowledged``
    Deleted, and ``last_acked`` moves on. Nothing is deleted before.

A batch the cloud refuses with 400 is set aside in ``refused`` (kept,
counted, visible) and its ``seq`` is reused for the next content, as §7 says.

Alarm states (active, and since when a pending delay runs) are kept here
too, written in the same transaction as the events of their transitions:
after a crash at any instant the file holds an event together with the state
it led to, or neither, so no alarm is announced twice nor a transition lost.

Disk quota policy: when the file's live pages exceed the quota, the oldest
chunks are dropped, their samples counted in ``dropped_samples`` and logged as
a warning; the sealed batch and alarm events are never dropped.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from panelfast._native import (
    DEFAULT_LEVEL,
    MAX_BODY_BYTES,
    AlarmEvent,
    EncodedBatch,
    SeriesSet,
    encode_batches,
    rebatch,
)
from panelfast._sqlite import Database
from panelfast.clock import Clock

__all__ = ["Outbox", "OutboxStats", "PendingEvent", "PreparedBatch", "SavedAlarm", "SealedBatch"]

log = logging.getLogger(__name__)

#: zstd level of chunks as they are drained: fast, since compaction or
#: sealing re-encodes them at ``DEFAULT_LEVEL`` anyway.
CHUNK_LEVEL = 3
#: Compact once this many small chunks of one configuration have gathered.
COMPACT_AFTER = 32

_SCHEMA = """
CREATE TABLE IF NOT EXISTS chunk (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    config_version TEXT NOT NULL,
    first_ms INTEGER NOT NULL,
    end_ms INTEGER NOT NULL,
    samples INTEGER NOT NULL,
    full INTEGER NOT NULL DEFAULT 0,
    body BLOB NOT NULL
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
class PreparedBatch:
    """The next batch, encoded ahead of its sealing (see :meth:`Outbox.prepare`)."""

    seq: int
    config_version: str
    #: The chunks it is made of, oldest first.
    chunk_ids: tuple[int, ...]
    #: The batch to seal, then what did not fit it (back to the chunks).
    batches: tuple[EncodedBatch, ...]


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


class Outbox(Database):
    """The gateway's durable buffer of data batches and alarm events.

    Thread-safe: the gateway calls the slow operations (compaction, sealing)
    from a worker thread, and the Rust encoder releases the GIL meanwhile.
    """

    def __init__(
        self,
        path: Path,
        *,
        quota_bytes: int,
        level: int = DEFAULT_LEVEL,
        clock: Clock | None = None,
    ) -> None:
        # synchronous=FULL: a committed sample survives a power cut.
        super().__init__(path, _SCHEMA, synchronous="FULL")
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
        batches: Sequence[EncodedBatch],
        ids: Sequence[int],
    ) -> None:
        """Store re-encoded batches as chunks at the given places (ids order
        is time order); a batch of at least half the hub's limit counts as
        full, so compaction leaves it alone."""
        db.executemany(
            "INSERT INTO chunk (id, config_version, first_ms, end_ms, samples, full, body)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    i,
                    version,
                    b.first_ms,
                    b.end_ms,
                    b.samples,
                    int(len(b.body) >= MAX_BODY_BYTES // 2),
                    b.body,
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

    def add_samples(self, series: SeriesSet, config_version: str) -> int:
        """Store drained samples taken under ``config_version``; returns how many."""
        if series.samples == 0:
            return 0
        chunks = encode_batches(series, config_version, 0, level=CHUNK_LEVEL)
        with self._transaction() as db:
            db.executemany(
                "INSERT INTO chunk (config_version, first_ms, end_ms, samples, body)"
                " VALUES (?, ?, ?, ?, ?)",
                [(config_version, c.first_ms, c.end_ms, c.samples, c.body) for c in chunks],
            )
            self._enforce_quota(db)
        return series.samples

    def compact(self) -> int:
        """Gather small chunks into full batches; returns the chunks merged.

        Only runs of at least ``COMPACT_AFTER`` small chunks of one
        configuration are merged, so a connected gateway does not spend CPU
        here: its chunks are sealed at each publication instead.
        """
        merged = 0
        with self._lock:
            versions = self._db.execute(
                "SELECT config_version FROM chunk WHERE full = 0"
                " GROUP BY config_version HAVING count(*) >= ?",
                (COMPACT_AFTER,),
            ).fetchall()
        for (version,) in versions:
            with self._lock:
                rows = self._db.execute(
                    "SELECT id, body FROM chunk WHERE full = 0 AND config_version = ? ORDER BY id",
                    (version,),
                ).fetchall()
            batches = rebatch([r[1] for r in rows], version, 0, level=self.level)
            ids = [r[0] for r in rows]
            if len(batches) >= len(ids):
                continue  # nothing to gain
            try:
                with self._transaction() as db:
                    self._take_chunks(db, ids)
                    # The merged batches take the places of the first chunks.
                    self._put_chunks(db, version, batches, ids[: len(batches)])
            except _Stale:
                continue
            merged += len(ids)
        return merged

    def sealed(self) -> SealedBatch | None:
        """The batch being sent, if one is sealed."""
        with self._lock:
            row = self._db.execute(
                "SELECT seq, config_version, samples, first_ms, end_ms, body, attempts FROM sealed"
            ).fetchone()
        return SealedBatch(*row) if row else None

    def prepare(
        self, seq: int | None = None, *, max_bytes: int = MAX_BODY_BYTES
    ) -> PreparedBatch | None:
        """Encode the batch to seal next (under ``seq``, by default the next
        one) without sealing it: the slow part of :meth:`next_batch`, which
        the publisher does while the batch before is in flight."""
        with self._lock:
            head = self._db.execute(
                "SELECT config_version FROM chunk ORDER BY id LIMIT 1"
            ).fetchone()
            if head is None:
                return None
            rows, size = [], 0
            for row in self._db.execute(
                "SELECT id, body, config_version, full FROM chunk ORDER BY id"
            ):  # the oldest run of one configuration, about a batch and a half of it
                if row[2] != head[0] or size >= max_bytes * 3 // 2:
                    break
                rows.append(row)
                size += len(row[1])
                if row[3] and len(row[1]) <= max_bytes:
                    # A compacted chunk is a whole batch already: sealed alone, it is
                    # encoded once more (for its seq), not merged with the next one
                    # and that one encoded twice, which halves the cost of a backlog.
                    break
            if seq is None:
                seq = self._meta(self._db, "next_seq", 1)
        batches = rebatch([r[1] for r in rows], head[0], seq, max_bytes=max_bytes, level=self.level)
        return PreparedBatch(seq, head[0], tuple(r[0] for r in rows), tuple(batches))

    def next_batch(
        self, *, max_bytes: int = MAX_BODY_BYTES, prepared: PreparedBatch | None = None
    ) -> SealedBatch | None:
        """The batch to send now: the sealed one, or a new one sealed from the
        oldest chunks (of the oldest configuration) under the next ``seq``:
        ``prepared`` if it is still exactly that, else encoded now."""
        current = self.sealed()
        if current is not None:
            return current
        if prepared is not None and self._seal(prepared):
            return self.sealed()
        # None prepared, or outdated (a renumbering, a split, the quota): encoded now.
        fresh = self.prepare(max_bytes=max_bytes)
        if fresh is None:
            return None
        if not self._seal(fresh):
            return None  # raced with the quota or another sealer: the caller tries again
        return self.sealed()

    def _seal(self, prepared: PreparedBatch) -> bool:
        """Seal ``prepared`` if it still is the oldest data under the next ``seq``."""
        ids = prepared.chunk_ids
        first, rest = prepared.batches[0], prepared.batches[1:]
        version = prepared.config_version
        try:
            with self._transaction() as db:
                if db.execute("SELECT 1 FROM sealed").fetchone() or (
                    self._meta(db, "next_seq", 1) != prepared.seq
                ):
                    raise _Stale
                # Nothing older came back meanwhile (what did not fit a batch, a split).
                if db.execute("SELECT min(id) FROM chunk").fetchone()[0] != ids[0]:
                    raise _Stale
                self._take_chunks(db, ids)
                db.execute(
                    "INSERT INTO sealed (seq, config_version, first_ms, end_ms, samples, body)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (first.seq, version, first.first_ms, first.end_ms, first.samples, first.body),
                )
                # What did not fit is the oldest data pending: it goes first.
                self._put_chunks(db, version, rest, self._oldest_places(db, len(rest)))
                self._set_meta(db, "next_seq", prepared.seq + 1)
        except _Stale:
            return False
        return True

    def attempted(self, seq: int) -> None:
        """Count one more send of the sealed batch ``seq``."""
        with self._transaction() as db:
            db.execute("UPDATE sealed SET attempts = attempts + 1 WHERE seq = ?", (seq,))

    def acknowledged(self, seq: int) -> None:
        """The cloud took ``seq`` (``200 {"ack": seq}``, duplicate or not)."""
        with self._transaction() as db:
            if db.execute("DELETE FROM sealed WHERE seq = ?", (seq,)).rowcount == 0:
                return  # already recorded: an acknowledgement heard twice
            self._set_meta(db, "last_acked", seq)
            self._set_meta(db, "next_seq", max(self._meta(db, "next_seq", 1), seq + 1))

    def renumber(self, expected: int) -> SealedBatch | None:
        """``409 {"expected": N}``: the cloud declared N and the numbers after
        it free; the sealed batch is numbered N, its samples unchanged."""
        current = self.sealed()
        if current is None:
            with self._transaction() as db:
                self._set_meta(db, "next_seq", expected)
            return None
        log.warning(
            "the cloud expects data batch %d where the gateway sent %d: renumbering "
            "(the cloud declared the numbers from %d free; no sample is lost)",
            expected,
            current.seq,
            expected,
            extra={"event": "batch.renumbered", "seq": current.seq, "expected_seq": expected},
        )
        (batch,) = rebatch([current.body], current.config_version, expected, level=self.level)
        with self._transaction() as db:
            db.execute("DELETE FROM sealed WHERE seq = ?", (current.seq,))
            db.execute(
                "INSERT INTO sealed (seq, config_version, first_ms, end_ms, samples, body)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    expected,
                    current.config_version,
                    batch.first_ms,
                    batch.end_ms,
                    batch.samples,
                    batch.body,
                ),
            )
            self._set_meta(db, "next_seq", expected + 1)
        return self.sealed()

    def refuse(self, seq: int, reason: str) -> None:
        """``400``: set the sealed batch aside; its ``seq`` is free for the next content."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT config_version, samples, body FROM sealed WHERE seq = ?", (seq,)
            ).fetchone()
            if row is None:
                return
            db.execute(
                "INSERT INTO refused (seq, config_version, samples, reason, refused_at, body)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (seq, row[0], row[1], reason, int(self._clock.now()), row[2]),
            )
            db.execute("DELETE FROM sealed WHERE seq = ?", (seq,))
            self._set_meta(db, "next_seq", seq)
        log.error(
            "the cloud refused data batch %d (%s): set aside, not resent",
            seq,
            reason,
            extra={"event": "batch.refused", "seq": seq, "samples": row[1], "reason": reason},
        )

    def split(self, seq: int) -> SealedBatch | None:
        """``413``: the sealed batch was too large for this hub; cut it in two."""
        current = self.sealed()
        if current is None or current.seq != seq:
            return current
        half = max(1024, len(current.body) // 2)
        first, *rest = rebatch(
            [current.body], current.config_version, seq, max_bytes=half, level=self.level
        )
        with self._transaction() as db:
            db.execute("DELETE FROM sealed WHERE seq = ?", (seq,))
            db.execute(
                "INSERT INTO sealed (seq, config_version, first_ms, end_ms, samples, body)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    seq,
                    current.config_version,
                    first.first_ms,
                    first.end_ms,
                    first.samples,
                    first.body,
                ),
            )
            self._put_chunks(db, current.config_version, rest, self._oldest_places(db, len(rest)))
        return self.sealed()

    def resume_from(self, data_seq: int) -> None:
        """After bootstrap: continue after the cloud's last acknowledged ``seq``.

        A gateway that lost its state (factory reset, new disk) starts again
        after ``data_seq``; a sealed batch is left as it is (if the cloud
        already holds it, it answers duplicate, or 409 with the number to use).
        """
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM sealed").fetchone():
                return
            if self._meta(db, "next_seq", 1) <= data_seq:
                self._set_meta(db, "next_seq", data_seq + 1)
                self._set_meta(db, "last_acked", data_seq)

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

    # -- alarm events -------------------------------------------------------

    def add_events(
        self, events: Sequence[AlarmEvent], states: Sequence[SavedAlarm] | None = None
    ) -> list[str]:
        """Store alarm transitions as §8 events, and the alarms' ``states`` they
        led to in the same transaction; returns the events' ids."""
        rows = []
        for e in events:
            event_id = str(uuid.uuid4())
            body = {
                "id": event_id,
                "alarm": e.alarm,
                "state": "active" if e.active else "inactive",
                "ts": e.ts_ms,
                "value": e.value,
            }
            rows.append((event_id, json.dumps(body, allow_nan=False)))
        with self._transaction() as db:
            db.executemany("INSERT INTO event (id, body) VALUES (?, ?)", rows)
            if states is not None:
                self._put_alarm_states(db, states)
        return [r[0] for r in rows]

    def save_alarm_states(self, states: Sequence[SavedAlarm]) -> None:
        """Replace the alarms' saved states (the alarms in force, each one)."""
        with self._transaction() as db:
            self._put_alarm_states(db, states)

    @staticmethod
    def _put_alarm_states(db: sqlite3.Connection, states: Sequence[SavedAlarm]) -> None:
        db.execute("DELETE FROM alarm_state")
        db.executemany(
            "INSERT INTO alarm_state (id, definition, active, since_ms) VALUES (?, ?, ?, ?)",
            [(s.id, s.definition, int(s.active), s.since_ms) for s in states],
        )

    def alarm_states(self) -> dict[str, SavedAlarm]:
        """The alarms' states saved last, by alarm id."""
        with self._read() as db:
            rows = db.execute("SELECT id, definition, active, since_ms FROM alarm_state").fetchall()
        return {r[0]: SavedAlarm(r[0], r[1], bool(r[2]), r[3]) for r in rows}

    def pending_events(self, limit: int = 500) -> list[PendingEvent]:
        """The oldest events not yet acknowledged, in order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, body FROM event ORDER BY rowid LIMIT ?", (limit,)
            ).fetchall()
        return [PendingEvent(r[0], json.loads(r[1])) for r in rows]

    def events_acknowledged(self, ids: Sequence[str]) -> None:
        with self._transaction() as db:
            db.executemany("DELETE FROM event WHERE id = ?", [(i,) for i in ids])

    # -- what the user sees -------------------------------------------------

    def stats(self) -> OutboxStats:
        with self._lock:
            db = self._db
            chunks, samples = db.execute(
                "SELECT count(*), coalesce(sum(samples), 0) FROM chunk"
            ).fetchone()
            sealed = db.execute("SELECT seq, samples, first_ms FROM sealed").fetchone()
            # The sealed batch is older than every chunk; chunks are in time order by id.
            oldest = sealed[2] if sealed else None
            if oldest is None:
                row = db.execute("SELECT first_ms FROM chunk ORDER BY id LIMIT 1").fetchone()
                oldest = row[0] if row else None
            page_size = db.execute("PRAGMA page_size").fetchone()[0]
            pages = db.execute("PRAGMA page_count").fetchone()[0]
            free = db.execute("PRAGMA freelist_count").fetchone()[0]
            return OutboxStats(
                chunks=chunks,
                pending_samples=samples + (sealed[1] if sealed else 0),
                sealed_seq=sealed[0] if sealed else None,
                next_seq=self._meta(db, "next_seq", 1),
                last_acked=self._meta(db, "last_acked"),
                dropped_samples=self._meta(db, "dropped_samples"),
                refused_batches=db.execute("SELECT count(*) FROM refused").fetchone()[0],
                pending_events=db.execute("SELECT count(*) FROM event").fetchone()[0],
                bytes_used=(pages - free) * page_size,
                quota_bytes=self.quota_bytes,
                oldest_ms=oldest,
                file_bytes=_file_bytes(self.path),
            )


def _file_bytes(path: Path) -> int:
    total = 0
    for file in (path, path.with_name(path.name + "-wal")):
        with contextlib.suppress(FileNotFoundError):
            total += file.stat().st_size
    return total
