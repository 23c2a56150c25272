"""Wake-ups for the long polls (config and commands, spec §6 and §9).

A long poll takes the current event of its (device, topic), looks at the
database, and if there is nothing to answer waits on the event until its
deadline. Whoever changes what the poll would answer (a new configuration, a
queued command) fires the event, from the loop or from any other thread. The
event is taken before looking, both on the loop thread, so no change is missed.
"""

from __future__ import annotations

import asyncio
import threading

__all__ = ["Signals"]


class Signals:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._events: dict[tuple[str, str], asyncio.Event] = {}
        self._lock = threading.Lock()
        #: Set when the server stops: polls answer at once instead of waiting.
        self.closing = False
        self._waiting = 0

    @property
    def waiting(self) -> int:
        """How many long polls are waiting now (the tests wait for theirs to be)."""
        return self._waiting

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Attach to the server's loop (at startup)."""
        self._loop = loop

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The server's loop, once it started."""
        return self._loop

    def event(self, device_id: str, topic: str) -> asyncio.Event:
        """The event that fires on the next change of ``topic`` (call on the loop)."""
        with self._lock:
            key = (device_id, topic)
            event = self._events.get(key)
            if event is None:
                event = self._events[key] = asyncio.Event()
            return event

    def notify(self, device_id: str, topic: str) -> None:
        """Wake every poll waiting on ``topic`` of ``device_id``; safe from any thread."""
        with self._lock:
            event = self._events.pop((device_id, topic), None)
        loop = self._loop
        if event is None or loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            event.set()
        else:
            loop.call_soon_threadsafe(event.set)

    def wake_all(self) -> None:
        """Release every waiting poll for good (at shutdown: they answer what they have)."""
        self.closing = True
        with self._lock:
            keys = list(self._events)
        for device_id, topic in keys:
            self.notify(device_id, topic)

    async def wait(self, event: asyncio.Event, within_s: float) -> None:
        """Wait for ``event`` at most ``within_s`` seconds."""
        if within_s <= 0 or self.closing:
            return
        self._waiting += 1  # on the loop's thread only
        try:
            await asyncio.wait_for(event.wait(), within_s)
        except TimeoutError:
            return
        finally:
            self._waiting -= 1
