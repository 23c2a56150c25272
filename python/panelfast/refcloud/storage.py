"""Everything the reference cloud knows, in one SQLite file (WAL).

One connection guarded by a lock: the HTTP routes (event loop thread) and the
in-process operator API (a test's thread) both use it, and each method is one
short transaction, so a route's check-then-store runs without interleaving.
Secrets: claim keys live here, so the file is created 0600; device tokens are
stored as their SHA-256 only.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from panelfast._sqlite import Database

__all__ = [
    "BatchSeries",
    "CommandRecord",
    "ConfigRecord",
    "DeviceRecord",
    "SeriesSummary",
    "Storage",
    "UploadRecord",
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY, serial TEXT NOT NULL UNIQUE, claim_key TEXT NOT NULL,
    enrolled INTEGER NOT NULL, enrolled_at REAL NOT NULL,
    model TEXT, firmware TEXT, mac TEXT, last_bootstrap REAL);
CREATE TABLE IF NOT EXISTS tokens (
    token_hash TEXT PRIMARY KEY, device_id TEXT NOT NULL, issued_at REAL NOT NULL,
    expires_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS topologies (
    device_id TEXT NOT NULL, version TEXT NOT NULL, document TEXT NOT NULL,
    PRIMARY KEY (device_id, version));
CREATE TABLE IF NOT EXISTS topology_receipts (
    id INTEGER PRIMARY KEY, device_id TEXT NOT NULL, version TEXT NOT NULL,
    via TEXT NOT NULL, received_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS configs (
    device_id TEXT NOT NULL, version INTEGER NOT NULL, document TEXT NOT NULL,
    created_at REAL NOT NULL, PRIMARY KEY (device_id, version));
CREATE TABLE IF NOT EXISTS config_reports (
    id INTEGER PRIMARY KEY, device_id TEXT NOT NULL, version TEXT NOT NULL,
    status TEXT NOT NULL, errors TEXT NOT NULL, received_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS batches (
    device_id TEXT NOT NULL, seq INTEGER NOT NULL, digest TEXT NOT NULL, body BLOB NOT NULL,
    config_version TEXT NOT NULL, received_at REAL NOT NULL, duplicates INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (device_id, seq));
CREATE TABLE IF NOT EXISTS series (
    device_id TEXT NOT NULL, seq INTEGER NOT NULL, config_version TEXT NOT NULL,
    device TEXT NOT NULL, measurement TEXT NOT NULL, t0 INTEGER NOT NULL, dt INTEGER NOT NULL,
    n INTEGER NOT NULL, vals TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS series_by_device ON series (device_id, device, measurement, t0);
CREATE TABLE IF NOT EXISTS alarm_events (
    event_id TEXT PRIMARY KEY, device_id TEXT NOT NULL, content TEXT NOT NULL,
    received_at REAL NOT NULL, seen INTEGER NOT NULL DEFAULT 1);
CREATE TABLE IF NOT EXISTS commands (
    num INTEGER PRIMARY KEY AUTOINCREMENT, command_id TEXT NOT NULL UNIQUE,
    device_id TEXT NOT NULL, body TEXT NOT NULL, created_at REAL NOT NULL,
    deliveries INTEGER NOT NULL DEFAULT 0, result_status TEXT, result_reason TEXT,
    result_at REAL);
CREATE TABLE IF NOT EXISTS output_states (
    id INTEGER PRIMARY KEY, device_id TEXT NOT NULL, output TEXT NOT NULL, state TEXT NOT NULL,
    ts INTEGER NOT NULL, source TEXT NOT NULL, received_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS uploads (
    upload_id TEXT PRIMARY KEY, device_id TEXT NOT NULL, kind TEXT NOT NULL,
    size INTEGER NOT NULL, sha256 TEXT NOT NULL, content_type TEXT NOT NULL,
    created_at REAL NOT NULL, received_size INTEGER, received_sha256 TEXT,
    completed_at REAL, topology_version TEXT);
CREATE TABLE IF NOT EXISTS disconnects (
    id INTEGER PRIMARY KEY, device_id TEXT NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS presence (device_id TEXT PRIMARY KEY, last_seen REAL NOT NULL);
"""


@dataclass(frozen=True)
class DeviceRecord:
    device_id: str
    serial: str
    claim_key: str
    enrolled: bool
    model: str | None
    firmware: str | None
    mac: str | None
    last_bootstrap: float | None


@dataclass(frozen=True)
class ConfigRecord:
    version: str
    document: dict[str, Any]
    created_at: float


@dataclass(frozen=True)
class BatchSeries:
    """The samples of one measurement in one group of a stored batch."""

    seq: int
    config_version: str
    device: str
    measurement: str
    t0: int
    dt: int
    values: list[float | int | None]


@dataclass(frozen=True)
class SeriesSummary:
    """What was received of one measurement: how many samples, over which instants."""

    device: str
    measurement: str
    samples: int
    first: int
    last: int


@dataclass(frozen=True)
class CommandRecord:
    command_id: str
    body: dict[str, Any]
    created_at: float
    deliveries: int
    result_status: str | None
    result_reason: str | None


@dataclass(frozen=True)
class UploadRecord:
    upload_id: str
    device_id: str
    kind: str
    size: int
    sha256: str
    content_type: str
    received_size: int | None
    received_sha256: str | None
    completed: bool
    topology_version: str | None


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Storage(Database):
    """The reference cloud's SQLite state; every method is one transaction."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, _SCHEMA, synchronous="NORMAL", private=True)

    # -- secrets of the cloud itself -------------------------------------------------

    def secret(self, name: str) -> bytes:
        """A random 32-byte secret made on first use and kept (signs upload URLs)."""
        with self._transaction() as db:
            row = db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
            if row is not None:
                return bytes(row[0])
            value = secrets.token_bytes(32)
            db.execute("INSERT INTO meta (name, value) VALUES (?, ?)", (name, value))
            return value

    # -- enrolment and devices -------------------------------------------------------

    def enrol(self, serial: str, claim_key: str) -> str:
        """Enrol ``serial`` with ``claim_key``; a serial enrolled before keeps its device id
        (and its data), but its tokens expire if the claim key changed."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT device_id, claim_key FROM devices WHERE serial = ?", (serial,)
            ).fetchone()
            if row is not None:
                if row[1] != claim_key:
                    # A new claim key: whoever held the old one must not keep a live token.
                    db.execute(
                        "UPDATE tokens SET expires_at = ? WHERE device_id = ? AND expires_at > ?",
                        (int(time.time()) - 1, row[0], int(time.time()) - 1),
                    )
                db.execute(
                    "UPDATE devices SET claim_key = ?, enrolled = 1, enrolled_at = ? "
                    "WHERE serial = ?",
                    (claim_key, time.time(), serial),
                )
                return str(row[0])
            device_id = "d-" + secrets.token_hex(8)
            db.execute(
                "INSERT INTO devices (device_id, serial, claim_key, enrolled, enrolled_at) "
                "VALUES (?, ?, ?, 1, ?)",
                (device_id, serial, claim_key, time.time()),
            )
            return device_id

    def de_enrol(self, serial: str) -> bool:
        with self._transaction() as db:
            cur = db.execute(
                "UPDATE devices SET enrolled = 0 WHERE serial = ? AND enrolled = 1", (serial,)
            )
            return cur.rowcount > 0

    _DEVICE_COLS = "device_id, serial, claim_key, enrolled, model, firmware, mac, last_bootstrap"

    @staticmethod
    def _device(row: Sequence[Any] | None) -> DeviceRecord | None:
        if row is None:
            return None
        return DeviceRecord(
            device_id=row[0],
            serial=row[1],
            claim_key=row[2],
            enrolled=bool(row[3]),
            model=row[4],
            firmware=row[5],
            mac=row[6],
            last_bootstrap=row[7],
        )

    def device_by_serial(self, serial: str) -> DeviceRecord | None:
        with self._transaction() as db:
            row = db.execute(
                f"SELECT {self._DEVICE_COLS} FROM devices WHERE serial = ?",  # noqa: S608
                (serial,),
            ).fetchone()
        return self._device(row)

    def device_by_id(self, device_id: str) -> DeviceRecord | None:
        with self._transaction() as db:
            row = db.execute(
                f"SELECT {self._DEVICE_COLS} FROM devices WHERE device_id = ?",  # noqa: S608
                (device_id,),
            ).fetchone()
        return self._device(row)

    def devices(self) -> list[DeviceRecord]:
        with self._transaction() as db:
            rows = db.execute(
                f"SELECT {self._DEVICE_COLS} FROM devices ORDER BY serial"  # noqa: S608
            ).fetchall()
        return [d for d in (self._device(r) for r in rows) if d is not None]

    def record_bootstrap(self, device_id: str, model: str, firmware: str, mac: str) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE devices SET model = ?, firmware = ?, mac = ?, last_bootstrap = ? "
                "WHERE device_id = ?",
                (model, firmware, mac, time.time(), device_id),
            )

    # -- tokens ----------------------------------------------------------------------

    def issue_token(
        self, device_id: str, lifetime_s: int, *, now: float | None = None
    ) -> tuple[str, int]:
        """A new token, valid ``lifetime_s`` from ``now`` (the cloud's clock)."""
        token = secrets.token_urlsafe(32)
        expires_at = int(time.time() if now is None else now) + lifetime_s
        with self._transaction() as db:
            db.execute(
                "INSERT INTO tokens (token_hash, device_id, issued_at, expires_at) "
                "VALUES (?, ?, ?, ?)",
                (_token_hash(token), device_id, time.time(), expires_at),
            )
        return token, expires_at

    def token(self, token: str) -> tuple[str, int] | None:
        """The device a token was issued to and when it expires, or None for a forged one."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT device_id, expires_at FROM tokens WHERE token_hash = ?",
                (_token_hash(token),),
            ).fetchone()
        return None if row is None else (str(row[0]), int(row[1]))

    def expire_tokens(self, device_id: str | None) -> int:
        past = int(time.time()) - 1
        with self._transaction() as db:
            if device_id is None:
                cur = db.execute(
                    "UPDATE tokens SET expires_at = ? WHERE expires_at > ?", (past, past)
                )
            else:
                cur = db.execute(
                    "UPDATE tokens SET expires_at = ? WHERE device_id = ? AND expires_at > ?",
                    (past, device_id, past),
                )
            return cur.rowcount

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

    # -- data ------------------------------------------------------------------------

    def last_seq(self, device_id: str) -> int:
        with self._transaction() as db:
            row = db.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM batches WHERE device_id = ?", (device_id,)
            ).fetchone()
        return int(row[0])

    def batch_digest(self, device_id: str, seq: int) -> str | None:
        with self._transaction() as db:
            row = db.execute(
                "SELECT digest FROM batches WHERE device_id = ? AND seq = ?", (device_id, seq)
            ).fetchone()
        return None if row is None else str(row[0])

    def count_duplicate(self, device_id: str, seq: int) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE batches SET duplicates = duplicates + 1 WHERE device_id = ? AND seq = ?",
                (device_id, seq),
            )

    def store_batch(
        self,
        device_id: str,
        seq: int,
        digest: str,
        body: bytes,
        config_version: str,
        series: Sequence[tuple[str, str, int, int, list[float | int | None]]],
    ) -> None:
        """Store batch ``seq`` and its samples, one row per (group, measurement)."""
        now = time.time()
        with self._transaction() as db:
            db.execute(
                "INSERT INTO batches (device_id, seq, digest, body, config_version, received_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (device_id, seq, digest, body, config_version, now),
            )
            db.executemany(
                "INSERT INTO series (device_id, seq, config_version, device, measurement, "
                "t0, dt, n, vals) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        device_id,
                        seq,
                        config_version,
                        dev,
                        meas,
                        t0,
                        dt,
                        len(vals),
                        json.dumps(vals),
                    )
                    for dev, meas, t0, dt, vals in series
                ],
            )

    def batches(self, device_id: str) -> list[dict[str, Any]]:
        with self._transaction() as db:
            rows = db.execute(
                "SELECT seq, config_version, length(body), received_at, duplicates FROM batches "
                "WHERE device_id = ? ORDER BY seq",
                (device_id,),
            ).fetchall()
        return [
            {
                "seq": r[0],
                "config_version": r[1],
                "size": r[2],
                "received_at": r[3],
                "duplicates": r[4],
            }
            for r in rows
        ]

    def batch_body(self, device_id: str, seq: int) -> bytes | None:
        with self._transaction() as db:
            row = db.execute(
                "SELECT body FROM batches WHERE device_id = ? AND seq = ?", (device_id, seq)
            ).fetchone()
        return None if row is None else bytes(row[0])

    def series(self, device_id: str) -> list[BatchSeries]:
        with self._transaction() as db:
            rows = db.execute(
                "SELECT seq, config_version, device, measurement, t0, dt, vals FROM series "
                "WHERE device_id = ? ORDER BY device, measurement, t0, seq",
                (device_id,),
            ).fetchall()
        return [
            BatchSeries(
                seq=r[0],
                config_version=r[1],
                device=r[2],
                measurement=r[3],
                t0=r[4],
                dt=r[5],
                values=list(json.loads(r[6])),
            )
            for r in rows
        ]

    def sample_counts(self, device_id: str) -> Counter[tuple[str, int]]:
        """How many times each ``("<device>/<measurement>", t_ms)`` was received."""
        counts: Counter[tuple[str, int]] = Counter()
        for s in self.series(device_id):
            key = f"{s.device}/{s.measurement}"
            for j in range(len(s.values)):
                counts[(key, s.t0 + j * s.dt)] += 1
        return counts

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

    # -- what the operator page reads ----------------------------------------------------

    def record_seen(self, device_id: str, at: float) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO presence (device_id, last_seen) VALUES (?, ?) "
                "ON CONFLICT (device_id) "
                "DO UPDATE SET last_seen = MAX(last_seen, excluded.last_seen)",
                (device_id, at),
            )

    def last_seen(self) -> dict[str, float]:
        """When each device last made an authenticated request, as last recorded."""
        with self._transaction() as db:
            rows = db.execute("SELECT device_id, last_seen FROM presence").fetchall()
        return {str(r[0]): float(r[1]) for r in rows}

    def token_expiry(self, device_id: str) -> int | None:
        """When the device's most lasting token expires (None: it never bootstrapped)."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT MAX(expires_at) FROM tokens WHERE device_id = ?", (device_id,)
            ).fetchone()
        return None if row[0] is None else int(row[0])

    def batch_summary(self, device_id: str) -> tuple[int, int, float | None]:
        """How many batches were stored, how many were received again, when the last came."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(duplicates), 0), MAX(received_at) FROM batches "
                "WHERE device_id = ?",
                (device_id,),
            ).fetchone()
        return int(row[0]), int(row[1]), None if row[2] is None else float(row[2])

    def series_summaries(self, device_id: str) -> list[SeriesSummary]:
        """Per measurement received: sample count, first and last instant (no values read)."""
        with self._transaction() as db:
            rows = db.execute(
                "SELECT device, measurement, SUM(n), MIN(t0), MAX(t0 + (n - 1) * dt) FROM series "
                "WHERE device_id = ? AND n > 0 GROUP BY device, measurement "
                "ORDER BY device, measurement",
                (device_id,),
            ).fetchall()
        return [SeriesSummary(r[0], r[1], int(r[2]), int(r[3]), int(r[4])) for r in rows]

    def series_between(
        self, device_id: str, device: str, measurement: str, start: int, end: int
    ) -> list[tuple[int, int, list[float | int | None]]]:
        """``(t0, dt, values)`` of every stored row of one measurement that has an instant
        in ``[start, end]`` (ms), in time order; rows may reach outside the range."""
        with self._transaction() as db:
            rows = db.execute(
                "SELECT t0, dt, vals FROM series WHERE device_id = ? AND device = ? "
                "AND measurement = ? AND t0 <= ? AND t0 + (n - 1) * dt >= ? ORDER BY t0, seq",
                (device_id, device, measurement, end, start),
            ).fetchall()
        return [(int(r[0]), int(r[1]), list(json.loads(r[2]))) for r in rows]
