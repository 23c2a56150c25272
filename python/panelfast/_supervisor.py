"""One supervisor for the gateway's loops: a bug in one must not stop the others.

A loop that raises is logged with its traceback and started again after a
backoff pause (1 s, doubling to a minute while it keeps failing); a loop that
returns is done. :meth:`Supervisor.alive` tells a watchdog whether every loop
still runs, so a stuck gateway is restarted rather than pinged forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from panelfast._backoff import Backoff

__all__ = ["Supervisor"]

log = logging.getLogger(__name__)


class Supervisor:
    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[None]] = {}
        #: Restarts after a failure, per loop name.
        self.restarts: dict[str, int] = {}

    def start(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        """Run ``loop`` under supervision as task ``name``."""
        self.restarts.setdefault(name, 0)
        self._tasks[name] = asyncio.create_task(self._guard(name, loop), name=name)

    async def _guard(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        backoff = Backoff(initial_s=1.0, max_s=60.0)
        while True:
            try:
                await loop()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                pause = backoff.failed()
                self.restarts[name] += 1
                log.exception(
                    "%s failed; restarting it in %.0f s",
                    name,
                    pause,
                    extra={"event": "gateway.loop_failed", "loop": name},
                )
                await asyncio.sleep(pause)

    async def cancel(self, name: str) -> None:
        """Stop the loop ``name`` (if it runs) and wait until it has stopped."""
        task = self._tasks.pop(name, None)
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    def alive(self) -> bool:
        """Every loop still runs (none finished, none cancelled)."""
        return bool(self._tasks) and not any(t.done() for t in self._tasks.values())

    async def stop(self) -> None:
        """Cancel every loop and wait until each has stopped."""
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
