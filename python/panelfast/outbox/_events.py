"""Alarm events (§8) waiting for the cloud, and the alarms' states kept with them.

An event and the state its transition led to are written in one transaction:
after a crash the file holds both or neither, so no alarm is announced twice
nor a transition lost.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import uuid
from collections.abc import Sequence

from panelfast._native import (
    AlarmEvent,
)
from panelfast.outbox._model import PendingEvent, SavedAlarm, _Store

log = logging.getLogger("panelfast.outbox")


class AlarmEvents(_Store):
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
