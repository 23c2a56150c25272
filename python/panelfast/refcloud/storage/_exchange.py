"""Alarm events, commands and their results, output states, disconnects, uploads."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Sequence
from typing import Any

from panelfast.refcloud.storage._model import (
    CommandRecord,
    UploadRecord,
    _Base,
)


class Exchange(_Base):
    # -- alarms ----------------------------------------------------------------------

    def alarm_event_contents(self, event_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        """``event id -> (device id, canonical content)`` of the ids already stored."""
        found: dict[str, tuple[str, str]] = {}
        with self._transaction() as db:
            for event_id in event_ids:
                row = db.execute(
                    "SELECT device_id, content FROM alarm_events WHERE event_id = ?", (event_id,)
                ).fetchone()
                if row is not None:
                    found[event_id] = (str(row[0]), str(row[1]))
        return found

    def store_alarm_events(self, device_id: str, events: Sequence[tuple[str, str]]) -> None:
        """Store ``(event id, canonical content)``; an id already stored counts as seen again."""
        now = time.time()
        with self._transaction() as db:
            for event_id, content in events:
                db.execute(
                    "INSERT INTO alarm_events (event_id, device_id, content, received_at) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT (event_id) DO UPDATE SET seen = seen + 1",
                    (event_id, device_id, content, now),
                )

    def alarm_events(self, device_id: str) -> list[dict[str, Any]]:
        with self._transaction() as db:
            rows = db.execute(
                "SELECT content, seen FROM alarm_events WHERE device_id = ? ORDER BY rowid",
                (device_id,),
            ).fetchall()
        return [{**json.loads(r[0]), "seen": r[1]} for r in rows]

    # -- commands --------------------------------------------------------------------

    def queue_command(self, device_id: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._transaction() as db:
            cur = db.execute(
                "INSERT INTO commands (command_id, device_id, body, created_at) "
                "VALUES (?, ?, '', ?)",
                ("pending-" + secrets.token_hex(8), device_id, time.time()),
            )
            command_id = f"c-{cur.lastrowid}"
            command = {"id": command_id, **body}
            db.execute(
                "UPDATE commands SET command_id = ?, body = ? WHERE num = ?",
                (command_id, json.dumps(command), cur.lastrowid),
            )
        return command

    def pending_commands(self, device_id: str) -> list[dict[str, Any]]:
        """Every command of the device with no result yet, oldest first; counted as delivered."""
        with self._transaction() as db:
            rows = db.execute(
                "SELECT num, body FROM commands WHERE device_id = ? AND result_status IS NULL "
                "ORDER BY num",
                (device_id,),
            ).fetchall()
            db.executemany(
                "UPDATE commands SET deliveries = deliveries + 1 WHERE num = ?",
                [(r[0],) for r in rows],
            )
        return [json.loads(r[1]) for r in rows]

    def command(self, device_id: str, command_id: str) -> CommandRecord | None:
        with self._transaction() as db:
            row = db.execute(
                "SELECT command_id, body, created_at, deliveries, result_status, result_reason "
                "FROM commands WHERE device_id = ? AND command_id = ?",
                (device_id, command_id),
            ).fetchone()
        if row is None:
            return None
        return CommandRecord(row[0], json.loads(row[1]), row[2], row[3], row[4], row[5])

    def commands(self, device_id: str) -> list[CommandRecord]:
        with self._transaction() as db:
            rows = db.execute(
                "SELECT command_id, body, created_at, deliveries, result_status, result_reason "
                "FROM commands WHERE device_id = ? ORDER BY num",
                (device_id,),
            ).fetchall()
        return [CommandRecord(r[0], json.loads(r[1]), r[2], r[3], r[4], r[5]) for r in rows]

    def set_result(self, device_id: str, command_id: str, status: str, reason: str | None) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE commands SET result_status = ?, result_reason = ?, result_at = ? "
                "WHERE device_id = ? AND command_id = ?",
                (status, reason, time.time(), device_id, command_id),
            )

    # -- outputs, disconnects ----------------------------------------------------------

    def store_output_states(self, device_id: str, states: Sequence[dict[str, Any]]) -> None:
        now = time.time()
        with self._transaction() as db:
            db.executemany(
                "INSERT INTO output_states (device_id, output, state, ts, source, received_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(device_id, s["output"], s["state"], s["ts"], s["source"], now) for s in states],
            )

    def output_states(self, device_id: str) -> list[dict[str, Any]]:
        with self._transaction() as db:
            rows = db.execute(
                "SELECT output, state, ts, source FROM output_states WHERE device_id = ? "
                "ORDER BY id",
                (device_id,),
            ).fetchall()
        return [{"output": r[0], "state": r[1], "ts": r[2], "source": r[3]} for r in rows]

    def record_disconnect(self, device_id: str) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO disconnects (device_id, at) VALUES (?, ?)", (device_id, time.time())
            )

    def disconnects(self, device_id: str) -> list[float]:
        with self._transaction() as db:
            rows = db.execute(
                "SELECT at FROM disconnects WHERE device_id = ? ORDER BY id", (device_id,)
            ).fetchall()
        return [float(r[0]) for r in rows]

    # -- uploads -----------------------------------------------------------------------

    def create_upload(
        self, device_id: str, kind: str, size: int, sha256: str, content_type: str
    ) -> str:
        upload_id = "u-" + secrets.token_hex(8)
        with self._transaction() as db:
            db.execute(
                "INSERT INTO uploads (upload_id, device_id, kind, size, sha256, content_type, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (upload_id, device_id, kind, size, sha256.lower(), content_type, time.time()),
            )
        return upload_id

    def upload(self, upload_id: str) -> UploadRecord | None:
        with self._transaction() as db:
            row = db.execute(
                "SELECT upload_id, device_id, kind, size, sha256, content_type, received_size, "
                "received_sha256, completed_at, topology_version FROM uploads WHERE upload_id = ?",
                (upload_id,),
            ).fetchone()
        if row is None:
            return None
        return UploadRecord(
            upload_id=row[0],
            device_id=row[1],
            kind=row[2],
            size=row[3],
            sha256=row[4],
            content_type=row[5],
            received_size=row[6],
            received_sha256=row[7],
            completed=row[8] is not None,
            topology_version=row[9],
        )

    def uploads(self, device_id: str) -> list[UploadRecord]:
        with self._transaction() as db:
            rows = db.execute(
                "SELECT upload_id FROM uploads WHERE device_id = ? ORDER BY created_at",
                (device_id,),
            ).fetchall()
        return [u for u in (self.upload(str(r[0])) for r in rows) if u is not None]

    def record_upload_bytes(self, upload_id: str, size: int, sha256: str) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE uploads SET received_size = ?, received_sha256 = ? WHERE upload_id = ?",
                (size, sha256, upload_id),
            )

    def complete_upload(self, upload_id: str, topology_version: str | None) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE uploads SET completed_at = ?, topology_version = ? WHERE upload_id = ?",
                (time.time(), topology_version, upload_id),
            )
