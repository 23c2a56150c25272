"""The cloud's own secrets, enrolled devices and their tokens."""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from typing import Any

from panelfast.refcloud.storage._model import (
    DeviceRecord,
    _Base,
    _token_hash,
)


class Devices(_Base):
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
