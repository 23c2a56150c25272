"""The gateway's one clock: the system clock plus the offset measured by time synchronisation.

Sampling instants, read times, freshness, alarm events, output states and
commands' expiry are all judged by this clock (design: "One clock"), never
by ``time.time()`` directly: a gateway whose system clock is off the cloud's
must still stamp every sample consistently. The system clock itself is
never changed (that needs privileges and would surprise the host).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["Clock", "ClockFormatter"]


class Clock:
    """Unix time by the synchronised clock: ``source()`` plus the last measured offset.

    ``source`` is the system clock; tests inject one that steps, repeats and jumps.
    """

    def __init__(self, offset_s: float = 0.0, *, source: Callable[[], float] = time.time) -> None:
        self.offset_s = offset_s
        self._source = source

    def now(self) -> float:
        """Unix seconds by the synchronised clock."""
        return self._source() + self.offset_s

    def now_ms(self) -> int:
        """Unix milliseconds by the synchronised clock (data and event timestamps)."""
        return int(self.now() * 1000)

    @property
    def offset_ms(self) -> int:
        """The offset to add to a system-clock time in ms to read it on this clock."""
        return round(self.offset_s * 1000)


class ClockFormatter(logging.Formatter):
    """Log lines stamped by a :class:`Clock`: a line about an event carries the
    same time as the event itself, whatever the system clock says."""

    def __init__(self, fmt: str, clock: Clock) -> None:
        super().__init__(fmt)
        self.clock = clock

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        t = record.created + self.clock.offset_s
        stamp = time.strftime(datefmt or "%Y-%m-%d %H:%M:%S", time.localtime(t))
        return stamp if datefmt else f"{stamp},{int(t % 1 * 1000):03d}"
