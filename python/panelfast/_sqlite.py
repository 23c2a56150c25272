"""One SQLite file shared by the gateway's threads: WAL, one lock, explicit transactions.

The outbox, the remote configuration's store and the reference cloud's
storage all keep their state this way; each subclasses :class:`Database`
with its own schema and its own queries.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from panelfast.exceptions import StateStoreError

__all__ = ["Database"]


class Database:
    """An open SQLite file; ``_transaction()`` runs one ``BEGIN IMMEDIATE .. COMMIT``,
    ``_read()`` one consistent read under the same lock.

    ``schema_version`` is kept in ``PRAGMA user_version``: a file written by a
    newer panelfast is refused (:class:`~panelfast.exceptions.StateStoreError`)
    rather than misread; ``migrate`` brings an older file up to date, in the
    transaction that records the new version.
    """

    def __init__(
        self,
        path: Path,
        schema: str,
        *,
        synchronous: Literal["FULL", "NORMAL"],
        private: bool = False,
        schema_version: int = 0,
        migrations: dict[int, str] | None = None,
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if private:
            # Created 0600, never briefly readable by others: it holds secrets.
            if not path.exists():
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
            os.chmod(path, 0o600)
        self.path = path
        self._lock = threading.Lock()
        try:
            # isolation_level=None: transactions are explicit, one BEGIN..COMMIT each.
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StateStoreError(f"cannot open {path}: {exc}") from None
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            found = self._db.execute("PRAGMA user_version").fetchone()[0]
            if found > schema_version:
                raise StateStoreError(
                    f"{path} was written by a newer panelfast (schema {found}, "
                    f"this one knows {schema_version})"
                )
            fresh = not self._db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone()
            self._db.executescript(schema)
            if found < schema_version:
                with self._transaction() as db:
                    if not fresh:
                        for step in range(found + 1, schema_version + 1):
                            for statement in (migrations or {}).get(step, "").split(";"):
                                if statement.strip():
                                    db.execute(statement)
                    db.execute(f"PRAGMA user_version={schema_version}")
        except sqlite3.Error as exc:
            self._db.close()
            raise StateStoreError(f"cannot open {path}: {exc}") from None
        except StateStoreError:
            self._db.close()
            raise

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._db
