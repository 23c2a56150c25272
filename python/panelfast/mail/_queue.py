"""The durable queue of alarm emails: an event is stored before anything else is done.

One SQLite file (WAL, ``synchronous=FULL``: a commit survives a power cut).
An event is committed when the gateway hands it over; it is marked sent in a
transaction of its own right after the server answered 250 to its data, and
only then is the next one sent, so that emails leave in the order of the
events. The email alarms' states are kept here too, in the transaction of
their events: after a restart each alarm goes on from the state its last
stored event left it in, so an active alarm is not emailed again. Sent rows
are kept for a while (the most recent :data:`KEEP_SENT`) so that the same
event handed over twice is recognised by its Message-ID and not queued again.

The bound: at most ``limit`` unsent events. Beyond it the oldest unsent are
dropped, counted (``dropped``, kept across restarts) and logged, and the
oldest event still queued carries the count, so that its email tells the
reader that earlier ones were lost.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from panelfast._sqlite import Database
from panelfast.mail._compose import MailEvent
from panelfast.outbox import SavedAlarm

__all__ = ["KEEP_SENT", "MailQueue", "QueueCounts", "QueuedMail"]

log = logging.getLogger(__name__)

#: Sent events kept to recognise an event handed over again.
KEEP_SENT = 1000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS mail (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL UNIQUE,
    event TEXT NOT NULL,
    dropped_before INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    sent_ms INTEGER
);
CREATE INDEX IF NOT EXISTS mail_unsent ON mail (seq) WHERE sent_ms IS NULL;
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
class QueuedMail:
    """An event waiting for its email."""

    seq: int
    event: MailEvent
    #: Older events dropped at the bound just before this one.
    dropped_before: int
    #: Sessions that failed while this was the next email to send.
    attempts: int


@dataclass(frozen=True, slots=True)
class QueueCounts:
    queued: int
    sent: int
    dropped: int


class MailQueue(Database):
    """The alarm emails to send, in order; see the module docstring."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, _SCHEMA, synchronous="FULL")

    def add(
        self,
        events: Sequence[MailEvent],
        limit: int,
        states: Sequence[SavedAlarm] | None = None,
    ) -> int:
        """Store ``events``, and the alarms' ``states`` they led to, in one transaction
        (committed on return); returns how many events were dropped to stay within
        ``limit`` unsent. An event already queued or sent is not added again."""
        with self._transaction() as db:
            if states is not None:
                db.execute("DELETE FROM alarm_state")
                db.executemany(
                    "INSERT INTO alarm_state (id, definition, active, since_ms) "
                    "VALUES (?, ?, ?, ?)",
                    [(a.id, a.definition, int(a.active), a.since_ms) for a in states],
                )
            db.executemany(
                "INSERT OR IGNORE INTO mail (message_id, event) VALUES (?, ?)",
                [(e.message_id, e.to_json()) for e in events],
            )
            (queued,) = db.execute("SELECT count(*) FROM mail WHERE sent_ms IS NULL").fetchone()
            excess = int(queued) - limit
            if excess <= 0:
                return 0
            db.execute(
                "DELETE FROM mail WHERE seq IN (SELECT seq FROM mail WHERE sent_ms IS NULL "
                "ORDER BY seq LIMIT ?)",
                (excess,),
            )
            # The count moves to the oldest event left, whose email reports it.
            db.execute(
                "UPDATE mail SET dropped_before = dropped_before + ? WHERE seq = "
                "(SELECT min(seq) FROM mail WHERE sent_ms IS NULL)",
                (excess,),
            )
            self._count(db, "dropped", excess)
        log.warning(
            "%d alarm email(s) dropped: at most %d wait for the mail server (email.queue_limit)",
            excess,
            limit,
        )
        return excess

    def pending(self, limit: int) -> list[QueuedMail]:
        """The oldest ``limit`` unsent events, in order."""
        with self._transaction() as db:
            rows = db.execute(
                "SELECT seq, event, dropped_before, attempts FROM mail WHERE sent_ms IS NULL "
                "ORDER BY seq LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            QueuedMail(seq, MailEvent.from_json(body), dropped, n) for seq, body, dropped, n in rows
        ]

    def sent(self, seq: int, sent_ms: int) -> None:
        """The server accepted the email of ``seq``: never send it again."""
        with self._transaction() as db:
            done = db.execute(
                "UPDATE mail SET sent_ms = ? WHERE seq = ? AND sent_ms IS NULL", (sent_ms, seq)
            ).rowcount
            if done:
                self._count(db, "sent", 1)
            db.execute(
                "DELETE FROM mail WHERE sent_ms IS NOT NULL AND seq < (SELECT seq FROM mail "
                "WHERE sent_ms IS NOT NULL ORDER BY seq DESC LIMIT 1 OFFSET ?)",
                (KEEP_SENT,),
            )

    def attempted(self, seq: int) -> None:
        """A session failed while ``seq`` was next (shown, for a message that keeps failing)."""
        with self._transaction() as db:
            db.execute("UPDATE mail SET attempts = attempts + 1 WHERE seq = ?", (seq,))

    def alarm_states(self) -> dict[str, SavedAlarm]:
        """The email alarms' states stored last, by alarm id."""
        with self._read() as db:
            rows = db.execute("SELECT id, definition, active, since_ms FROM alarm_state").fetchall()
        return {r[0]: SavedAlarm(r[0], r[1], bool(r[2]), r[3]) for r in rows}

    def counts(self) -> QueueCounts:
        with self._transaction() as db:
            (queued,) = db.execute("SELECT count(*) FROM mail WHERE sent_ms IS NULL").fetchone()
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        return QueueCounts(queued, meta.get("sent", 0), meta.get("dropped", 0))

    def sent_ids(self) -> list[str]:
        """Message-IDs of the sent events still kept, oldest first."""
        with self._transaction() as db:
            rows = db.execute(
                "SELECT message_id FROM mail WHERE sent_ms IS NOT NULL ORDER BY seq"
            ).fetchall()
        return [message_id for (message_id,) in rows]

    @staticmethod
    def _count(db: sqlite3.Connection, key: str, n: int) -> None:
        db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = value + excluded.value",
            (key, n),
        )
