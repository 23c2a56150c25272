"""Every state change of the running gateway, as server-sent events.

Live pages and ``--watch`` commands subscribe to ``GET /v1/events``. One
producer (running only while someone listens) renders each topic — the
gateway's status, the devices' diagnostics — at most every ``interval_s``, or
at once when a change is announced (:meth:`EventStream.changed`), and sends a
topic only when its content changed. A subscriber keeps only the latest
content of each topic, plus the newest audit entries (bounded): a slow
reader skips intermediate states, it never makes the daemon's memory grow.

Some moments are too short to be caught by rendering a topic: applying a
remote configuration often takes less than the interval. The gateway
*announces* those (:meth:`EventStream.announce`, e.g. ``applying``, each
step of an apply): every subscriber gets each announcement in order, after
the topics of the same moment (bounded too: the oldest are skipped).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable

from panelfast._backoff import pause

__all__ = ["EventStream", "TooManySubscribers"]

log = logging.getLogger(__name__)

#: Audit entries a subscriber holds before the oldest are skipped.
_AUDIT_BACKLOG = 100
#: Announcements a subscriber holds before the oldest are skipped.
_ANNOUNCEMENTS = 50
#: An SSE comment this often keeps proxies from closing an idle stream.
_KEEPALIVE_S = 15.0


class TooManySubscribers(Exception):
    pass


class _Subscriber:
    def __init__(self) -> None:
        self.topics: dict[str, bytes] = {}
        self.audit: deque[bytes] = deque(maxlen=_AUDIT_BACKLOG)
        self.announcements: deque[bytes] = deque(maxlen=_ANNOUNCEMENTS)
        self.ready = asyncio.Event()


def _frame(event: str, data: bytes) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"


class EventStream:
    """``topics()`` renders every topic's JSON; ``audit_after(id)`` the audit entries
    after an id (as ``(id, json)``)."""

    def __init__(
        self,
        topics: Callable[[], dict[str, bytes]],
        audit_after: Callable[[int], list[tuple[int, bytes]]],
        *,
        interval_s: float = 0.5,
        max_subscribers: int = 32,
    ) -> None:
        self._render = topics
        self._audit_after = audit_after
        self.interval_s = interval_s
        self.max_subscribers = max_subscribers
        self._subscribers: set[_Subscriber] = set()
        self._last: dict[str, bytes] = {}
        self._last_audit = -1
        self._wake = asyncio.Event()
        self._producer: asyncio.Task[None] | None = None

    def changed(self) -> None:
        """Something changed: render now rather than at the next interval."""
        self._wake.set()

    def announce(self, event: str, data: bytes) -> None:
        """Send ``event`` to every subscriber, each in order (from the event loop's thread)."""
        frame = _frame(event, data)
        for subscriber in self._subscribers:
            subscriber.announcements.append(frame)
            subscriber.ready.set()
        self._wake.set()  # the status of the same moment follows at once

    async def subscribe(self) -> AsyncIterator[bytes]:
        """The SSE byte stream of one subscriber: every topic now, then each change."""
        if len(self._subscribers) >= self.max_subscribers:
            raise TooManySubscribers(f"at most {self.max_subscribers} event streams at once")
        me = _Subscriber()
        self._subscribers.add(me)
        if self._producer is None or self._producer.done():
            self._last.clear()  # a new producer starts from nothing: send every topic
            self._producer = asyncio.create_task(self._produce(), name="control events")
        else:
            me.topics.update(self._last)
            me.ready.set()
        try:
            yield b"retry: 2000\n\n"
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_KEEPALIVE_S):  # not wait_for: see _backoff.pause
                        await me.ready.wait()
                if not me.ready.is_set():
                    yield b": keep-alive\n\n"
                    continue
                me.ready.clear()
                topics, me.topics = me.topics, {}
                audit = list(me.audit)
                me.audit.clear()
                announcements = list(me.announcements)
                me.announcements.clear()
                for name, data in topics.items():
                    yield _frame(name, data)
                for data in audit:
                    yield _frame("audit", data)
                for frame in announcements:
                    yield frame
        finally:
            self._subscribers.discard(me)
            if not self._subscribers and self._producer is not None:
                self._producer.cancel()
                self._producer = None

    async def _produce(self) -> None:
        # A failure to render must not silence every stream for the daemon's life.
        while True:
            try:
                await self._produce_until_failure()
            except Exception:
                log.exception("the event stream could not render the gateway's state")
                await asyncio.sleep(5)

    async def _produce_until_failure(self) -> None:
        if self._last_audit < 0:
            newest = self._audit_after(0)
            self._last_audit = newest[-1][0] if newest else 0
        while True:
            rendered = await asyncio.to_thread(self._render)
            entries = await asyncio.to_thread(self._audit_after, self._last_audit)
            changed = {k: v for k, v in rendered.items() if self._last.get(k) != v}
            self._last.update(changed)
            if entries:
                self._last_audit = entries[-1][0]
            if changed or entries:
                for subscriber in self._subscribers:
                    subscriber.topics.update(changed)
                    subscriber.audit.extend(data for _, data in entries)
                    subscriber.ready.set()
            await pause(self._wake, self.interval_s)
