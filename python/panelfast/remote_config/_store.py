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
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Literal, cast

from panelfast.exceptions import ConfigPathError, RemoteConfigRejected, StateStoreError
from panelfast.remote_config._model import RemoteConfig
from panelfast.remote_config._validate import restore

__all__ = ["ConfigStore", "ReceivedVersion"]

_SCHEMA_VERSION = 1
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
    received_at TEXT NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class ReceivedVersion:
    """The last remote configuration received, whatever became of it."""

    version: str
    status: Literal["applied", "rejected"]
    errors: tuple[ConfigPathError, ...]
    received_at: str

    @property
    def valid(self) -> bool:
        """Shown as the cloud service icon: green when valid, orange when not."""
        return self.status == "applied"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _compact(document: object) -> str:
    # Not key-sorted: to_document() already lists keys in one fixed order, and
    # sorting 5,000 small objects would cost more than the write itself.
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


class ConfigStore:
    """The applied remote configuration and the last received version, in SQLite."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            # isolation_level=None: transactions are explicit, so one BEGIN..COMMIT
            # is exactly one atomic change.
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > _SCHEMA_VERSION:
                raise StateStoreError(
                    f"{self.path} was written by a newer panelfast (schema {version})"
                )
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
        except (sqlite3.Error, StateStoreError) as exc:
            if hasattr(self, "_db"):
                self._db.close()
            if isinstance(exc, StateStoreError):
                raise
            raise StateStoreError(f"cannot open {self.path}: {exc}") from None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> ConfigStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def applied(self) -> RemoteConfig | None:
        """The applied configuration, or None if none was ever applied."""
        with self._lock:
            row = self._db.execute("SELECT document FROM applied WHERE id = 1").fetchone()
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
        with self._lock:
            row = self._db.execute(
                "SELECT version, status, errors, received_at FROM received WHERE id = 1"
            ).fetchone()
        if row is None:
            return None
        version, status, errors, received_at = row
        try:
            parsed = [ConfigPathError(e["path"], e["message"]) for e in json.loads(errors)]
        except (ValueError, TypeError, KeyError):
            raise StateStoreError(f"{self.path}: the stored errors are corrupt") from None
        return ReceivedVersion(
            version, cast(Literal["applied", "rejected"], status), tuple(parsed), received_at
        )

    def save_applied(self, config: RemoteConfig) -> None:
        """Make ``config`` the applied configuration and the last received, atomically."""
        document = _compact(config.to_document())
        now = _now()
        self._transaction(
            [
                (
                    "INSERT OR REPLACE INTO applied (id, version, document, applied_at) "
                    "VALUES (1, ?, ?, ?)",
                    (config.version, document, now),
                ),
                (
                    "INSERT OR REPLACE INTO received (id, version, status, errors, received_at) "
                    "VALUES (1, ?, 'applied', '[]', ?)",
                    (config.version, now),
                ),
            ]
        )

    def save_rejected(self, version: str, errors: Sequence[ConfigPathError]) -> None:
        """Record a rejected version; the applied configuration is left as it is."""
        listed = _compact([{"path": e.path, "message": e.message} for e in errors])
        self._transaction(
            [
                (
                    "INSERT OR REPLACE INTO received (id, version, status, errors, received_at) "
                    "VALUES (1, ?, 'rejected', ?, ?)",
                    (version, listed, _now()),
                )
            ]
        )

    def _transaction(self, statements: list[tuple[str, tuple[str, ...]]]) -> None:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    for sql, parameters in statements:
                        self._db.execute(sql, parameters)
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise StateStoreError(f"cannot write {self.path}: {exc}") from None
