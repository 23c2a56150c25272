"""What gateways publish and are sent: topologies, remote configurations, reports."""

from __future__ import annotations

import json
import time
from typing import Any

from panelfast.refcloud.storage._model import (
    ConfigRecord,
    _Base,
)


class Documents(_Base):
    # -- topology --------------------------------------------------------------------

    def store_topology(self, device_id: str, version: str, document: str, via: str) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO topologies (device_id, version, document) VALUES (?, ?, ?)",
                (device_id, version, document),
            )
            db.execute(
                "INSERT INTO topology_receipts (device_id, version, via, received_at) "
                "VALUES (?, ?, ?, ?)",
                (device_id, version, via, time.time()),
            )

    def latest_topology(self, device_id: str) -> tuple[str, dict[str, Any]] | None:
        with self._transaction() as db:
            row = db.execute(
                "SELECT t.version, t.document FROM topology_receipts r JOIN topologies t "
                "ON t.device_id = r.device_id AND t.version = r.version "
                "WHERE r.device_id = ? ORDER BY r.id DESC LIMIT 1",
                (device_id,),
            ).fetchone()
        return None if row is None else (str(row[0]), json.loads(row[1]))

    def topology_receipts(self, device_id: str) -> list[dict[str, Any]]:
        with self._transaction() as db:
            rows = db.execute(
                "SELECT version, via, received_at FROM topology_receipts WHERE device_id = ? "
                "ORDER BY id",
                (device_id,),
            ).fetchall()
        return [{"version": r[0], "via": r[1], "received_at": r[2]} for r in rows]

    # -- remote configuration --------------------------------------------------------

    def add_config(self, device_id: str, document: dict[str, Any], *, raw: bool) -> ConfigRecord:
        """Keep a new configuration; its version is the next integer (as a string).

        Unless ``raw``, the document's ``version`` is set to it; a raw document is
        served as given (for testing how a gateway rejects a bad one).
        """
        with self._transaction() as db:
            row = db.execute(
                "SELECT COALESCE(MAX(version), 0) FROM configs WHERE device_id = ?", (device_id,)
            ).fetchone()
            version = int(row[0]) + 1
            doc = dict(document)
            if not raw:
                doc["version"] = str(version)
            now = time.time()
            db.execute(
                "INSERT INTO configs (device_id, version, document, created_at) "
                "VALUES (?, ?, ?, ?)",
                (device_id, version, json.dumps(doc), now),
            )
        return ConfigRecord(version=str(version), document=doc, created_at=now)

    def config(self, device_id: str, version: str) -> ConfigRecord | None:
        if not version.isdigit() or len(version) > 18:
            return None
        with self._transaction() as db:
            row = db.execute(
                "SELECT version, document, created_at FROM configs "
                "WHERE device_id = ? AND version = ?",
                (device_id, int(version)),
            ).fetchone()
        if row is None or str(row[0]) != version:
            return None
        return ConfigRecord(version=str(row[0]), document=json.loads(row[1]), created_at=row[2])

    def latest_config(self, device_id: str) -> ConfigRecord | None:
        with self._transaction() as db:
            row = db.execute(
                "SELECT version, document, created_at FROM configs WHERE device_id = ? "
                "ORDER BY version DESC LIMIT 1",
                (device_id,),
            ).fetchone()
        if row is None:
            return None
        return ConfigRecord(version=str(row[0]), document=json.loads(row[1]), created_at=row[2])

    def record_report(
        self, device_id: str, version: str, status: str, errors: list[dict[str, str]]
    ) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO config_reports (device_id, version, status, errors, received_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (device_id, version, status, json.dumps(errors), time.time()),
            )

    def reports(self, device_id: str) -> list[dict[str, Any]]:
        with self._transaction() as db:
            rows = db.execute(
                "SELECT version, status, errors, received_at FROM config_reports "
                "WHERE device_id = ? ORDER BY id",
                (device_id,),
            ).fetchall()
        return [
            {"version": r[0], "status": r[1], "errors": json.loads(r[2]), "received_at": r[3]}
            for r in rows
        ]
