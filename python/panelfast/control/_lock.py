"""One daemon per storage directory: an exclusive lock held for the daemon's life.

Two ``panelfast run`` on one storage directory would both own the outbox and
the cloud session and send the same batches twice. The lock is an ``flock``
on ``panelfast.lock`` in the storage directory, which the kernel releases
when the process dies however it dies: a SIGKILL leaves no stale lock behind.
The file holds the holder's PID so the refusal can name it.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from panelfast.exceptions import PanelfastError

__all__ = ["AlreadyRunning", "StorageLock"]

LOCK_FILE = "panelfast.lock"


class AlreadyRunning(PanelfastError):
    """Another gateway holds this storage directory."""

    def __init__(self, storage: Path, pid: int | None) -> None:
        self.pid = pid
        holder = f"PID {pid}" if pid else "another process"
        super().__init__(
            f"another panelfast gateway ({holder}) is running on {storage}; "
            "stop it first, or give this one its own [storage] dir"
        )


class StorageLock:
    """``with StorageLock(dir):`` — held until the block ends or the process dies."""

    def __init__(self, storage: Path) -> None:
        self.storage = storage
        self.path = storage / LOCK_FILE
        self._fd: int | None = None

    def acquire(self, wait_s: float = 10.0) -> None:
        """Take the lock; a holder that keeps it past ``wait_s`` is another gateway (a
        command working without a daemon holds it for a moment only)."""
        self.storage.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                os.close(fd)
                raise AlreadyRunning(self.storage, holder_pid(self.storage)) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the flock
            self._fd = None

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def holder_pid(storage: Path) -> int | None:
    """The PID written by the daemon holding (or last holding) ``storage``."""
    try:
        return int((storage / LOCK_FILE).read_text().strip() or 0) or None
    except (OSError, ValueError):
        return None
