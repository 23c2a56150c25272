"""The audit log: every change made through the control API — who, what, when, outcome.

Kept with the gateway's state (``audit.sqlite`` in the storage directory),
bounded to the most recent :data:`KEEP` entries, viewable through the API.
"Who" is the caller as the daemon knows it: a local user on the control
socket (its uid, from the kernel's peer credentials), or a web user.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from panelfast._sqlite import Database

__all__ = ["AuditEntry", "AuditLog"]

#: Entries kept; older ones are removed as new ones come.
KEEP = 10_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts_ms INTEGER NOT NULL,
    who TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL,
    outcome TEXT NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    #: Unix ms by the gateway's synchronised clock.
    ts_ms: int
    #: ``socket:uid=1000`` or ``web:admin``.
    who: str
    #: ``connect``, ``disconnect``, ``topology.publish``, ``settings.change``...
    action: str
    detail: dict[str, Any]
    #: ``ok``, or why it was refused / failed.
    outcome: str


class AuditLog(Database):
    def __init__(self, path: Path) -> None:
        # NORMAL: an audit entry lost to a power cut loses no data, and every
        # change's own state is written with full durability where it lives.
        super().__init__(path, _SCHEMA, synchronous="NORMAL", schema_version=1)

    def record(
        self, ts_ms: int, who: str, action: str, detail: dict[str, Any], outcome: str
    ) -> AuditEntry:
        text = json.dumps(detail, separators=(",", ":"), ensure_ascii=False, default=str)
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO audit (ts_ms, who, action, detail, outcome) VALUES (?, ?, ?, ?, ?)",
                (ts_ms, who, action, text, outcome),
            )
            entry_id = int(cursor.lastrowid or 0)
            db.execute("DELETE FROM audit WHERE id <= ?", (entry_id - KEEP,))
        return AuditEntry(entry_id, ts_ms, who, action, detail, outcome)

    def recent(self, limit: int = 100, after_id: int = 0) -> list[AuditEntry]:
        """Up to ``limit`` entries after ``after_id``, newest last."""
        with self._read() as db:
            rows = db.execute(
                "SELECT id, ts_ms, who, action, detail, outcome FROM audit WHERE id > ? "
                "ORDER BY id DESC LIMIT ?",
                (after_id, limit),
            ).fetchall()
        return [
            AuditEntry(i, ts, who, action, json.loads(detail), outcome)
            for i, ts, who, action, detail, outcome in reversed(rows)
        ]
