"""What the cloud sees of each gateway's connection: when it last heard from it,
whether a long poll is held open now, and the errors it answered it lately.

The gateway always initiates (spec §1), so "connected" is the cloud's reading of
its traffic: a gateway holding a long poll, or one heard from within a long
poll's length, is connected; one that sent ``disconnect`` (§11) and nothing
since is disconnected. Last seen survives a restart (written at most every
``_SEEN_WRITE_S`` seconds per gateway); the recent errors and the clock skew are
what this run of the cloud answered, a few per gateway.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from panelfast.refcloud.storage import Storage

__all__ = ["Answer", "Connection", "Presence"]

_SEEN_WRITE_S = 10.0
_RECENT_ERRORS = 20
#: How long after the last request a gateway still counts as connected, beyond
#: the longest poll: a gateway between two polls is not gone.
_GRACE_S = 30.0


@dataclass(frozen=True)
class Answer:
    """An error the cloud answered a gateway (or a request dropped by a fault)."""

    at: float
    route: str
    status: int
    code: str
    message: str


@dataclass(frozen=True)
class Connection:
    """The cloud's view of one gateway's connection, for a person to read."""

    status: str  # Connected | Not connected | Disconnected | Never connected
    last_seen: float | None
    polls: int
    errors: tuple[Answer, ...]  # newest first
    error_count: int
    clock_skew_s: float | None


class Presence:
    """Connection state of every gateway; usable from any thread."""

    def __init__(self, storage: Storage, max_wait_s: int) -> None:
        self._storage = storage
        self._window_s = max_wait_s + _GRACE_S
        self._lock = threading.Lock()
        self._seen = storage.last_seen()
        self._written = dict(self._seen)
        self._polls: Counter[str] = Counter()
        self._errors: dict[str, deque[Answer]] = {}
        self._error_counts: Counter[str] = Counter()
        self._skew: dict[str, float] = {}

    def seen(self, device_id: str, *, clock_skew_s: float | None = None) -> None:
        """``device_id`` made an authenticated request now (a bootstrap gives its skew)."""
        now = time.time()
        with self._lock:
            self._seen[device_id] = now
            if clock_skew_s is not None:
                self._skew[device_id] = clock_skew_s
            write = now - self._written.get(device_id, 0.0) >= _SEEN_WRITE_S
            if write:
                self._written[device_id] = now
        if write:
            self._storage.record_seen(device_id, now)

    @contextmanager
    def polling(self, device_id: str) -> Iterator[None]:
        """Around a long poll: the gateway is connected while it waits."""
        with self._lock:
            self._polls[device_id] += 1
        try:
            yield
        finally:
            with self._lock:
                self._polls[device_id] -= 1
                if self._polls[device_id] <= 0:
                    del self._polls[device_id]

    def answered(self, device_id: str, route: str, status: int, code: str, message: str) -> None:
        """The cloud answered ``device_id`` an error (kept: the last few, and a count)."""
        answer = Answer(time.time(), route, status, code, message[:300])
        with self._lock:
            recent = self._errors.setdefault(device_id, deque(maxlen=_RECENT_ERRORS))
            recent.appendleft(answer)
            self._error_counts[device_id] += 1

    def flush(self) -> None:
        """Write every last-seen instant not yet written (at shutdown)."""
        with self._lock:
            pending = {d: t for d, t in self._seen.items() if self._written.get(d) != t}
            self._written.update(pending)
        for device_id, at in pending.items():
            self._storage.record_seen(device_id, at)

    def connection(
        self, device_id: str, *, last_disconnect: float | None, now: float | None = None
    ) -> Connection:
        now = time.time() if now is None else now
        with self._lock:
            last_seen = self._seen.get(device_id)
            polls = self._polls.get(device_id, 0)
            errors = tuple(self._errors.get(device_id, ()))
            count = self._error_counts.get(device_id, 0)
            skew = self._skew.get(device_id)
        if last_seen is None:
            status = "Never connected"
        elif polls > 0:
            status = "Connected"
        elif last_disconnect is not None and last_disconnect >= last_seen:
            status = "Disconnected"
        elif now - last_seen <= self._window_s:
            status = "Connected"
        else:
            status = "Not connected"
        return Connection(status, last_seen, polls, errors, count, skew)
