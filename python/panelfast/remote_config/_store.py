"""Durable remote configuration state: what is applied, and the last version received.

Both live in one SQLite file (WAL, synchronous FULL). Applying writes the
configuration and the "last received" record in one transaction, so after a
crash at any instant the file holds either the old applied configuration or
the new one, never a mix; a rejection only updates "last received" (which the
next ``If-None-Match`` carries, §6).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Literal, cast

from panelfast._sqlite import Database
from panelfast.clock import Clock
from panelfast.exceptions import ConfigPathError, RemoteConfigRejected, StateStoreError
from panelfast.remote_config._model import RemoteConfig
from panelfast.remote_config._validate import restore

__all__ = ["ConfigStore", "ReceivedVersion"]

_SCHEMA_VERSION = 2
_SCHEMA = """
CREATE TABLE IF NOT EXISTS applied (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version TEXT NOT NULL,
    document TEXT NOT NULL,
    applied_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS received (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('applied', 'rejected')),
    errors TEXT NOT NULL,
    received_at TEXT NOT NULL,
    -- 0 until the cloud took the report (§6): recorded with the outcome, in the
    -- same transaction, so a crash never leaves an outcome without its report due.
    reported INTEGER NOT NULL DEFAULT 0
);
-- Every version received, newest last, for the local page and the API (bounded).
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    version TEXT NOT NULL,
    status TEXT NOT NULL,
    errors TEXT NOT NULL,
    received_at TEXT NOT NULL
);
"""
#: Versions kept in the history.
HISTORY_KEEP = 200
_MIGRATIONS = {2: "ALTER TABLE received ADD COLUMN reported INTEGER NOT NULL DEFAULT 1"}


@dataclass(frozen=True, slots=True)
class ReceivedVersion:
    """The last remote configuration received, whatever became of it."""

    version: str
    status: Literal["applied", "rejected"]
    errors: tuple[ConfigPathError, ...]
    received_at: str
    #: The cloud took the report of this outcome.
    reported: bool = True

    @property
    def valid(self) -> bool:
        """Shown as the cloud service icon: green when valid, orange when not."""
        return self.status == "applied"


def _stamp(clock: Clock) -> str:
    moment = datetime.fromtimestamp(clock.now(), UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _compact(document: object) -> str:
    # Not key-sorted: to_document() already lists keys in one fixed order, and
    # sorting 5,000 small objects would cost more than the write itself.
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


class ConfigStore(Database):
    """The applied remote configuration and the last received version, in SQLite."""

    def __init__(self, path: str | os.PathLike[str], *, clock: Clock | None = None) -> None:
        self._clock = clock or Clock()
        # synchronous=FULL: an applied configuration survives a power cut.
        super().__init__(
            Path(path),
            _SCHEMA,
            synchronous="FULL",
            schema_version=_SCHEMA_VERSION,
            migrations=_MIGRATIONS,
        )

    def __enter__(self) -> ConfigStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        try:
            with self._transaction() as db:
                yield db
        except sqlite3.Error as exc:
            raise StateStoreError(f"cannot write {self.path}: {exc}") from None

    def applied(self) -> RemoteConfig | None:
        """The applied configuration, or None if none was ever applied."""
        with self._read() as db:
            row = db.execute("SELECT document FROM applied WHERE id = 1").fetchone()
        if row is None:
            return None
        try:
            return restore(json.loads(row[0]))
        except (ValueError, RemoteConfigRejected) as exc:
            raise StateStoreError(
                f"{self.path}: the stored applied configuration is corrupt: {exc}"
            ) from None

    def last_received(self) -> ReceivedVersion | None:
        """The last version received (for ``If-None-Match``), applied or rejected."""
        with self._read() as db:
            row = db.execute(
                "SELECT version, status, errors, received_at, reported FROM received WHERE id = 1"
            ).fetchone()
        if row is None:
            return None
        version, status, errors, received_at, reported = row
        try:
            parsed = [ConfigPathError(e["path"], e["message"]) for e in json.loads(errors)]
        except (ValueError, TypeError, KeyError):
            raise StateStoreError(f"{self.path}: the stored errors are corrupt") from None
        return ReceivedVersion(
            version,
            cast(Literal["applied", "rejected"], status),
            tuple(parsed),
            received_at,
            bool(reported),
        )

    def save_applied(self, config: RemoteConfig) -> None:
        """Make ``config`` the applied configuration and the last received, atomically;
        its report is due from then on."""
        document = _compact(config.to_document())
        now = _stamp(self._clock)
        with self._writing() as db:
            db.execute(
                "INSERT OR REPLACE INTO applied (id, version, document, applied_at) "
                "VALUES (1, ?, ?, ?)",
                (config.version, document, now),
            )
            db.execute(
                "INSERT OR REPLACE INTO received "
                "(id, version, status, errors, received_at, reported) "
                "VALUES (1, ?, 'applied', '[]', ?, 0)",
                (config.version, now),
            )
            self._remember(db, config.version, "applied", "[]", now)

    def save_rejected(self, version: str, errors: Sequence[ConfigPathError]) -> None:
        """Record a rejected version (its report due); the applied configuration stays."""
        listed = _compact([{"path": e.path, "message": e.message} for e in errors])
        now = _stamp(self._clock)
        with self._writing() as db:
            db.execute(
                "INSERT OR REPLACE INTO received "
                "(id, version, status, errors, received_at, reported) "
                "VALUES (1, ?, 'rejected', ?, ?, 0)",
                (version, listed, now),
            )
            self._remember(db, version, "rejected", listed, now)

    @staticmethod
    def _remember(
        db: sqlite3.Connection, version: str, status: str, errors: str, received_at: str
    ) -> None:
        cursor = db.execute(
            "INSERT INTO history (version, status, errors, received_at) VALUES (?, ?, ?, ?)",
            (version, status, errors, received_at),
        )
        db.execute(
            "DELETE FROM history WHERE id <= ?", (int(cursor.lastrowid or 0) - HISTORY_KEEP,)
        )

    def history(self, limit: int = HISTORY_KEEP) -> list[ReceivedVersion]:
        """The versions received, newest last, each with its outcome."""
        with self._read() as db:
            rows = db.execute(
                "SELECT version, status, errors, received_at FROM history ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            ReceivedVersion(
                version,
                cast(Literal["applied", "rejected"], status),
                tuple(ConfigPathError(e["path"], e["message"]) for e in json.loads(errors)),
                received_at,
            )
            for version, status, errors, received_at in reversed(rows)
        ]

    def reported(self, version: str) -> None:
        """The cloud took the report of ``version`` (a newer outcome is left due)."""
        with self._writing() as db:
            db.execute("UPDATE received SET reported = 1 WHERE id = 1 AND version = ?", (version,))
