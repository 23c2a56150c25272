"""Exponential backoff with jitter: the one rule for every retry in the gateway.

Cloud protocol §1: 1 s doubling to at most 300 s, with jitter, so that
gateways cut off together do not all come back in the same second.
:func:`pause` waits such a delay, or less when woken.
"""

from __future__ import annotations

import asyncio
import contextlib
import random

__all__ = ["Backoff", "backoff_delay", "pause"]


async def pause(event: asyncio.Event, seconds: float) -> None:
    """Wait ``seconds``, or less if ``event`` is set (then cleared).

    ``asyncio.timeout``, not ``wait_for``: on Python 3.11 a ``wait_for`` whose
    wait ends as its task is cancelled can swallow the cancellation (seen on a
    gateway stopping while disconnected): a loop pausing that way never stops.
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
    event.clear()


def backoff_delay(retry: int, initial_s: float = 1.0, max_s: float = 300.0) -> float:
    """The pause before retry number ``retry`` (0 for the first retry), ±20 % jitter."""
    base = min(max_s, initial_s * 2 ** min(max(retry, 0), 32))
    return float(min(max_s, base * random.uniform(0.8, 1.2)))


class Backoff:
    """The failures of one repeated task: each failure lengthens the next pause,
    a success resets it."""

    def __init__(self, initial_s: float = 1.0, max_s: float = 300.0) -> None:
        self.initial_s = initial_s
        self.max_s = max_s
        self.failures = 0

    def failed(self) -> float:
        """Count a failure; returns how long to wait before the next try."""
        delay = backoff_delay(self.failures, self.initial_s, self.max_s)
        self.failures += 1
        return delay

    def succeeded(self) -> None:
        self.failures = 0
