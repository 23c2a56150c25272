"""One SQLite file shared by the gateway's threads: WAL, one lock, explicit transactions.

The outbox and the reference cloud's storage both keep their state this way;
each subclasses :class:`Database` with its own schema and its own queries.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

__all__ = ["Database"]


class Database:
    """An open SQLite file; ``_transaction()`` runs one ``BEGIN IMMEDIATE .. COMMIT``."""

    def __init__(
        self,
        path: Path,
        schema: str,
        *,
        synchronous: Literal["FULL", "NORMAL"],
        private: bool = False,
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if private:
            # Created 0600, never briefly readable by others: it holds secrets.
            if not path.exists():
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
            os.chmod(path, 0o600)
        self.path = path
        self._lock = threading.Lock()
        # isolation_level=None: transactions are explicit, one BEGIN..COMMIT each.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.executescript(schema)

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
