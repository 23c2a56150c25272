"""Sending data (§7): the one sealed batch, its number and content fixed before its
first send, and what each answer of the cloud does to it."""

from __future__ import annotations

import logging

from panelfast._native import (
    MAX_BODY_BYTES,
    rebatch,
)
from panelfast.outbox._model import PreparedBatch, SealedBatch, StoredBatch, _Stale, _Store

log = logging.getLogger("panelfast.outbox")


class Sending(_Store):
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
        """The batch to seal next (under ``seq``, by default the next one),
        without sealing it: the slow part of :meth:`next_batch`, which the
        publisher does while the batch before is in flight.

        A chunk compaction already made into a whole batch, numbered ``seq``,
        is that batch as it is; anything else is encoded here."""
        with self._lock:
            head = self._db.execute(
                "SELECT config_version FROM chunk ORDER BY id LIMIT 1"
            ).fetchone()
            if head is None:
                return None
            rows, size = [], 0
            for row in self._db.execute(
                "SELECT id, body, config_version, full, seq, samples, first_ms, end_ms"
                " FROM chunk ORDER BY id"
            ):  # the oldest run of one configuration, about a batch and a half of it
                if row[2] != head[0] or size >= max_bytes * 3 // 2:
                    break
                rows.append(row)
                size += len(row[1])
                if row[3] and len(row[1]) <= max_bytes:
                    # A compacted chunk is a whole batch already: sealed alone, not
                    # merged with the next one (and that one encoded twice).
                    break
            if seq is None:
                seq = self._meta(self._db, "next_seq", 1)
        ids = tuple(r[0] for r in rows)
        first = rows[0]
        if len(rows) == 1 and first[4] == seq and len(first[1]) <= max_bytes:
            # Numbered at compaction as it is now sent: no re-encoding at zstd 19
            # (the gateway's main cost in draining a backlog).
            stored = StoredBatch(seq, first[1], first[5], first[6], first[7])
            return PreparedBatch(seq, head[0], ids, (stored,))
        batches = rebatch([r[1] for r in rows], head[0], seq, max_bytes=max_bytes, level=self.level)
        return PreparedBatch(seq, head[0], ids, tuple(batches))

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
