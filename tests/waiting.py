"""Waiting for something to happen in another thread or process: poll for it.

Tests never sleep and then assert: on a loaded machine (a CI runner, a
2-core laptop compiling something) what takes 1 s here may take 20. They poll
for the condition itself, with a deadline that only a broken gateway misses;
the deadline costs time only when the test fails anyway.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

#: The deadline of a wait that does not say otherwise.
PATIENCE_S = 60.0


def wait_until(
    condition: Callable[[], object],
    what: str = "the condition",
    *,
    within_s: float = PATIENCE_S,
    every_s: float = 0.05,
) -> None:
    """Poll ``condition`` until it is true; fail saying ``what`` did not happen."""
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within_s:g} s: {what}")
        time.sleep(every_s)


async def eventually(
    condition: Callable[[], object | Awaitable[object]],
    what: str = "the condition",
    *,
    within_s: float = PATIENCE_S,
    every_s: float = 0.05,
) -> None:
    """:func:`wait_until` for async tests: the loop keeps running (the gateway
    or the server under test may run on it). ``condition`` may be async."""
    deadline = time.monotonic() + within_s
    while True:
        outcome = condition()
        if inspect.isawaitable(outcome):
            outcome = await outcome
        if outcome:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within_s:g} s: {what}")
        await asyncio.sleep(every_s)
