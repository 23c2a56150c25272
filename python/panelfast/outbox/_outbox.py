"""The outbox itself: samples come in as chunks, are compacted offline, and the
whole is shown to the user; sending and alarm events are its two other parts."""

from __future__ import annotations

import logging

from panelfast._native import (
    SeriesSet,
    encode_batches,
    rebatch,
)
from panelfast.outbox._events import AlarmEvents
from panelfast.outbox._model import (
    CHUNK_LEVEL,
    COMPACT_AFTER,
    OutboxStats,
    _file_bytes,
    _Stale,
)
from panelfast.outbox._sending import Sending

log = logging.getLogger("panelfast.outbox")


class Outbox(AlarmEvents, Sending):
    """The gateway's durable buffer of data batches and alarm events.

    Thread-safe: the gateway calls the slow operations (compaction, sealing)
    from a worker thread, and the Rust encoder releases the GIL meanwhile.
    """

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
                # Numbered as they will be sent if every chunk before them goes as one
                # batch (a backlog of compacted batches does): then sealing sends them
                # as they are. Otherwise they are encoded again under their seq then.
                ahead = self._db.execute(
                    "SELECT count(*) FROM chunk WHERE id < ?", (rows[0][0],)
                ).fetchone()[0]
                first_seq = self._meta(self._db, "next_seq", 1) + ahead
            batches = rebatch([r[1] for r in rows], version, first_seq, level=self.level)
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
