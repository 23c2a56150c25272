"""The commands' durable state: one SQLite file (WAL, ``synchronous=FULL``).

- ``command``: every command id received, ``executing`` from just before it
  acts until its result is recorded, then ``finished`` with that result and
  whether the cloud has it (``posted``). A command id is executed at most
  once: a redelivery finds its row; a row still ``executing`` when the
  gateway starts is one a crash interrupted (:meth:`CommandStore.interrupted`).
- ``schedule``: the schedules the cloud sent, with how far each was evaluated.
- ``output_known`` and ``output_report``: each output's last known state (when
  it changed, by which source), and the state changes waiting to be reported
  to the cloud, in order.
- ``audit``: what was done, by whom (the source, and for a local action the
  control API's caller), with what result and read-back: the command history.
- ``setting``: whether outputs remote control is enabled, and since when.

Bounds: the newest :data:`KEEP_COMMANDS` finished and posted commands are
kept (older ids are forgotten; the cloud delivers a command again only until
its result is posted), the newest :data:`KEEP_AUDIT` audit entries, and at most
:data:`KEEP_REPORTS` unreported state changes (the oldest dropped, counted).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from panelfast._sqlite import Database

__all__ = [
    "CommandRecord",
    "CommandStore",
    "HistoryEntry",
    "KnownState",
    "PendingResult",
    "ReportedState",
]

log = logging.getLogger(__name__)

KEEP_COMMANDS = 20_000
KEEP_AUDIT = 10_000
KEEP_REPORTS = 50_000

Status = Literal["done", "rejected", "failed"]
Source = Literal["cloud", "schedule", "local"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS command (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    body TEXT NOT NULL,
    state TEXT NOT NULL,
    status TEXT,
    reason TEXT,
    received_ms INTEGER NOT NULL,
    finished_ms INTEGER,
    result_seq INTEGER,
    posted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS command_unposted ON command (posted, result_seq);
CREATE TABLE IF NOT EXISTS schedule (
    id TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    command_id TEXT NOT NULL,
    checked_until REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS output_known (
    output TEXT PRIMARY KEY,
    state INTEGER NOT NULL,
    ts_ms INTEGER NOT NULL,
    source TEXT NOT NULL DEFAULT 'local'
);
CREATE TABLE IF NOT EXISTS output_report (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    output TEXT NOT NULL,
    state TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    source TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ts_ms INTEGER NOT NULL,
    source TEXT NOT NULL,
    kind TEXT NOT NULL,
    command_id TEXT,
    target TEXT,
    action TEXT,
    status TEXT NOT NULL,
    reason TEXT,
    readback TEXT,
    who TEXT
);
CREATE TABLE IF NOT EXISTS setting (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""
_MIGRATIONS = {
    # 2: the source of each output's last change; who made a local action.
    2: "ALTER TABLE output_known ADD COLUMN source TEXT NOT NULL DEFAULT 'local';"
    "ALTER TABLE audit ADD COLUMN who TEXT",
}


@dataclass(frozen=True, slots=True)
class CommandRecord:
    id: str
    type: str
    state: Literal["executing", "finished"]
    status: Status | None
    reason: str | None
    posted: bool


@dataclass(frozen=True, slots=True)
class PendingResult:
    """A result the cloud does not have yet, in the order it is to be posted."""

    command_id: str
    status: Status
    reason: str | None


@dataclass(frozen=True, slots=True)
class ReportedState:
    """One output state change waiting for ``POST .../outputs``."""

    seq: int
    output: str
    state: str
    ts_ms: int
    source: str

    def body(self) -> dict[str, Any]:
        return {"output": self.output, "state": self.state, "ts": self.ts_ms, "source": self.source}


@dataclass(frozen=True, slots=True)
class KnownState:
    """An output's last known state, since when, and who set it."""

    state: bool
    ts_ms: int
    #: ``cloud``, ``schedule`` or ``local`` (a local switch, or a change seen on the device).
    source: str


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """What was done: a command (cloud, schedule, local), a state change seen, a setting."""

    seq: int
    ts_ms: int
    #: ``cloud``, ``schedule`` or ``local``.
    source: str
    #: ``output``, ``schedule``, ``schedule_delete``, ``upload_logs``, a command type
    #: the gateway does not know, ``state_change`` (seen on the device) or ``remote_control``.
    kind: str
    command_id: str | None
    #: The output (``io-1/Q1``) or schedule concerned.
    target: str | None
    action: str | None
    #: ``done``, ``rejected``, ``failed``, ``observed``, ``enabled``, ``disabled``.
    status: str
    reason: str | None
    #: The output's state as read back after the write (``on``/``off``), if any.
    readback: str | None
    #: For a local action: who asked, as the control API's audit log names the caller
    #: (``socket:uid=1000``, ``web:admin``; ``cli:uid=1000`` with no gateway running).
    who: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "ts": self.ts_ms,
            "source": self.source,
            "kind": self.kind,
            "command_id": self.command_id,
            "target": self.target,
            "action": self.action,
            "status": self.status,
            "reason": self.reason,
            "readback": self.readback,
            "who": self.who,
        }


class CommandStore(Database):
    """See the module docstring. Every method is one transaction."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            path, _SCHEMA, synchronous="FULL", schema_version=2, migrations=_MIGRATIONS
        )

    # -- commands

    def begin(
        self, command_id: str, kind: str, body: dict[str, Any], now_ms: int
    ) -> CommandRecord | None:
        """Record a command as ``executing``; None if it is new (go on and execute it),
        else what is known of it (never execute it again)."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT id, type, state, status, reason, posted FROM command WHERE id = ?",
                (command_id,),
            ).fetchone()
            if row is not None:
                return CommandRecord(row[0], row[1], row[2], row[3], row[4], bool(row[5]))
            db.execute(
                "INSERT INTO command (id, type, body, state, received_ms) "
                "VALUES (?, ?, ?, 'executing', ?)",
                (command_id, kind, json.dumps(body, separators=(",", ":")), now_ms),
            )
        return None

    def finish(
        self,
        command_id: str,
        status: Status,
        reason: str | None,
        now_ms: int,
        audit: dict[str, Any],
    ) -> None:
        """Record a command's result, to be posted, and its audit entry, together."""
        with self._transaction() as db:
            next_seq = db.execute("SELECT coalesce(max(result_seq), 0) + 1 FROM command").fetchone()
            db.execute(
                "UPDATE command SET state = 'finished', status = ?, reason = ?, finished_ms = ?, "
                "result_seq = ?, posted = 0 WHERE id = ?",
                (status, reason, now_ms, next_seq[0], command_id),
            )
            self._audit(db, now_ms, status=status, reason=reason, command_id=command_id, **audit)

    def interrupted(self) -> list[tuple[str, str, dict[str, Any]]]:
        """Commands a crash left ``executing``: (id, type, body)."""
        with self._read() as db:
            rows = db.execute(
                "SELECT id, type, body FROM command WHERE state = 'executing' ORDER BY seq"
            ).fetchall()
        return [(r[0], r[1], json.loads(r[2])) for r in rows]

    def repost(self, command_id: str) -> None:
        """The cloud delivered a finished command again: it lacks the result, send it again."""
        with self._transaction() as db:
            db.execute(
                "UPDATE command SET posted = 0 WHERE id = ? AND state = 'finished'", (command_id,)
            )

    def pending_results(self, limit: int = 100) -> list[PendingResult]:
        with self._read() as db:
            rows = db.execute(
                "SELECT id, status, reason FROM command WHERE state = 'finished' AND posted = 0 "
                "ORDER BY result_seq LIMIT ?",
                (limit,),
            ).fetchall()
        return [PendingResult(r[0], r[1], r[2]) for r in rows]

    def posted(self, command_id: str) -> None:
        with self._transaction() as db:
            db.execute("UPDATE command SET posted = 1 WHERE id = ?", (command_id,))
            # Forget the oldest settled commands beyond the bound.
            db.execute(
                "DELETE FROM command WHERE posted = 1 AND seq <= "
                "(SELECT seq FROM command WHERE posted = 1 ORDER BY seq DESC LIMIT 1 OFFSET ?)",
                (KEEP_COMMANDS,),
            )

    def command(self, command_id: str) -> CommandRecord | None:
        with self._read() as db:
            row = db.execute(
                "SELECT id, type, state, status, reason, posted FROM command WHERE id = ?",
                (command_id,),
            ).fetchone()
        return (
            None
            if row is None
            else CommandRecord(row[0], row[1], row[2], row[3], row[4], bool(row[5]))
        )

    # -- schedules

    def put_schedule(
        self, schedule_id: str, body: dict[str, Any], command_id: str, now: float
    ) -> None:
        """Store (or replace) a schedule; it is evaluated from ``now`` on."""
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO schedule (id, body, command_id, checked_until) "
                "VALUES (?, ?, ?, ?)",
                (schedule_id, json.dumps(body, separators=(",", ":")), command_id, now),
            )

    def delete_schedule(self, schedule_id: str) -> bool:
        with self._transaction() as db:
            return db.execute("DELETE FROM schedule WHERE id = ?", (schedule_id,)).rowcount > 0

    def schedule_count(self) -> int:
        with self._read() as db:
            return int(db.execute("SELECT count(*) FROM schedule").fetchone()[0])

    def schedules(self) -> list[tuple[dict[str, Any], float]]:
        """Each schedule's body and the instant up to which it was evaluated."""
        with self._read() as db:
            rows = db.execute("SELECT body, checked_until FROM schedule ORDER BY id").fetchall()
        return [(json.loads(r[0]), float(r[1])) for r in rows]

    def checked(
        self, schedule_id: str, until: float, audit: dict[str, Any] | None = None, now_ms: int = 0
    ) -> None:
        """The schedule was evaluated up to ``until``; with ``audit``, what it did then,
        in the same transaction (a crash before it runs that entry again)."""
        with self._transaction() as db:
            db.execute(
                "UPDATE schedule SET checked_until = max(checked_until, ?) WHERE id = ?",
                (until, schedule_id),
            )
            if audit is not None:
                self._audit(db, now_ms, **audit)

    # -- output states

    def known_states(self) -> dict[str, KnownState]:
        with self._read() as db:
            rows = db.execute("SELECT output, state, ts_ms, source FROM output_known").fetchall()
        return {r[0]: KnownState(bool(r[1]), r[2], r[3]) for r in rows}

    def record_state(
        self, output: str, state: bool, ts_ms: int, source: Source, *, observed: bool = False
    ) -> bool:
        """Note an output's state; if it changed (or was unknown), queue its report. True if so.

        ``observed``: seen on the device, made by nobody here (audited as such)."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT state FROM output_known WHERE output = ?", (output,)
            ).fetchone()
            if row is not None and bool(row[0]) == state:
                return False
            db.execute(
                "INSERT OR REPLACE INTO output_known (output, state, ts_ms, source) "
                "VALUES (?, ?, ?, ?)",
                (output, int(state), ts_ms, source),
            )
            db.execute(
                "INSERT INTO output_report (output, state, ts_ms, source) VALUES (?, ?, ?, ?)",
                (output, "on" if state else "off", ts_ms, source),
            )
            dropped = db.execute(
                "DELETE FROM output_report WHERE seq <= "
                "(SELECT seq FROM output_report ORDER BY seq DESC LIMIT 1 OFFSET ?)",
                (KEEP_REPORTS,),
            ).rowcount
            if dropped:
                log.warning("output states: %d oldest unreported changes dropped", dropped)
            if row is not None and observed:
                self._audit(
                    db, ts_ms, source="local", kind="state_change", target=output,
                    action=None, status="observed", readback="on" if state else "off",
                )  # fmt: skip
        return True

    def pending_states(self, limit: int) -> list[ReportedState]:
        with self._read() as db:
            rows = db.execute(
                "SELECT seq, output, state, ts_ms, source FROM output_report ORDER BY seq LIMIT ?",
                (limit,),
            ).fetchall()
        return [ReportedState(*r) for r in rows]

    def reported(self, up_to_seq: int) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM output_report WHERE seq <= ?", (up_to_seq,))

    # -- settings and audit

    def setting(self, key: str) -> dict[str, Any] | None:
        with self._read() as db:
            row = db.execute("SELECT value FROM setting WHERE key = ?", (key,)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def set_setting(
        self, key: str, value: dict[str, Any], now_ms: int, audit: dict[str, Any]
    ) -> int:
        """Change a setting and audit it together; the audit entry's ``seq``."""
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO setting (key, value) VALUES (?, ?)",
                (key, json.dumps(value, separators=(",", ":"))),
            )
            return self._audit(db, now_ms, **audit)

    def audit(self, now_ms: int, **entry: Any) -> int:
        """Record one history entry; its ``seq``."""
        with self._transaction() as db:
            return self._audit(db, now_ms, **entry)

    def last_history_seq(self) -> int:
        """The newest history entry's ``seq`` (0: none yet)."""
        with self._read() as db:
            row = db.execute("SELECT MAX(seq) FROM audit").fetchone()
        return int(row[0] or 0)

    def history(self, limit: int = 100, before: int | None = None) -> list[HistoryEntry]:
        """The newest audit entries first (``before``: older than that ``seq``)."""
        with self._read() as db:
            rows = db.execute(
                "SELECT seq, ts_ms, source, kind, command_id, target, action, status, reason, "
                "readback, who FROM audit WHERE seq < ? ORDER BY seq DESC LIMIT ?",
                (before if before is not None else 2**62, limit),
            ).fetchall()
        return [HistoryEntry(*r) for r in rows]

    @staticmethod
    def _audit(
        db: Any,
        ts_ms: int,
        *,
        source: str,
        kind: str,
        status: str,
        command_id: str | None = None,
        target: str | None = None,
        action: str | None = None,
        reason: str | None = None,
        readback: str | None = None,
        who: str | None = None,
    ) -> int:
        cursor = db.execute(
            "INSERT INTO audit (ts_ms, source, kind, command_id, target, action, status, reason, "
            "readback, who) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (ts_ms, source, kind, command_id, target, action, status, reason, readback, who),
        )
        db.execute(
            "DELETE FROM audit WHERE seq <= "
            "(SELECT seq FROM audit ORDER BY seq DESC LIMIT 1 OFFSET ?)",
            (KEEP_AUDIT,),
        )
        return int(cursor.lastrowid or 0)
