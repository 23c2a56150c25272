"""Stored schedules, run by the gateway itself: the cloud may be unreachable.

Each schedule remembers up to which instant it was evaluated
(``checked_until``, durable). On each turn, the entries falling between that
instant and now are due, and **only the last of them is executed**: entries
set absolute states (on or off), so the last one is the state the schedule
says the output is in now. In normal running one entry at a time is due and
runs at its minute. After the gateway was down (or remote control was off),
the entries missed are not replayed late one by one: the last one is applied
once, at start, because it is the current state; the earlier ones, which it
supersedes, never run. A schedule received (or replaced) is evaluated from
that moment on: it acts at its next entry, not at once.

While outputs remote control is disabled, schedules do not act: entries pass
without being executed (``checked_until`` moves on), so enabling it again
does not replay them either.

``checked_until`` moves on after the switch is done, in the same transaction
as the entry's audit record: a crash in between runs that entry again at the
restart (audited again), which only sets the same state again.

Instants come from the gateway's :class:`~panelfast.clock.Clock` (injected in
tests to cross DST changes); the loop sleeps until the next entry, at most
``max_sleep_s`` at a time so that a clock correction is followed, and wakes
at once when schedules or remote control change (:meth:`Scheduler.wake`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from panelfast.clock import Clock
from panelfast.commands._calendar import next_after, occurrences
from panelfast.commands._model import InvalidCommand, Schedule, parse_schedule
from panelfast.commands._outputs import OutputControl
from panelfast.commands._store import CommandStore

__all__ = ["Scheduler"]

log = logging.getLogger(__name__)


class Scheduler:
    """Runs the stored schedules; see the module docstring."""

    def __init__(
        self,
        store: CommandStore,
        outputs: OutputControl,
        clock: Clock,
        enabled: Callable[[], bool],
        *,
        max_sleep_s: float = 30.0,
    ) -> None:
        self._store = store
        self._outputs = outputs
        self._clock = clock
        self._enabled = enabled
        self._max_sleep_s = max_sleep_s
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    def schedules(self) -> list[tuple[Schedule, float]]:
        """The stored schedules, each with the instant up to which it was evaluated."""
        stored = []
        for body, checked_until in self._store.schedules():
            try:
                stored.append((parse_schedule(body), checked_until))
            except InvalidCommand as exc:  # stored valid; a hand-edited file is not
                log.error("stored schedule %s ignored: %s", body.get("id"), exc.reason)
        return stored

    async def run(self) -> None:
        while True:
            self._wake.clear()
            stored = await asyncio.to_thread(self.schedules)
            now = self._clock.now()
            await self.turn(stored, now)
            upcoming = next_after([s for s, _ in stored], now)
            pause = (
                self._max_sleep_s if upcoming is None else min(upcoming - now, self._max_sleep_s)
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(pause, 0.001))

    async def turn(self, stored: list[tuple[Schedule, float]], now: float) -> None:
        """Execute, per schedule, the last entry due in ``(checked_until, now]``."""
        enabled = await asyncio.to_thread(self._enabled)
        for schedule, checked_until in stored:
            due = occurrences([schedule], checked_until, now)
            if not due:
                continue
            last = due[-1]
            audit = None
            if enabled:
                if len(due) > 1:
                    log.info(
                        "schedule %s: %d entries missed, applying the current state (%s)",
                        schedule.id,
                        len(due) - 1,
                        last.action,
                    )
                result = await self._outputs.switch(
                    schedule.ref, "on" if last.action == "on" else "off", source="schedule"
                )
                audit = {
                    "source": "schedule",
                    "kind": "schedule_entry",
                    "target": f"{schedule.ref} (schedule {schedule.id}, entry {last.entry})",
                    "action": last.action,
                    "status": result.status,
                    "reason": result.reason,
                    "readback": result.readback,
                }
                if result.status != "done":
                    log.warning(
                        "schedule %s: %s %s %s: %s",
                        schedule.id,
                        last.action,
                        schedule.ref,
                        result.status,
                        result.reason,
                    )
            await asyncio.to_thread(
                self._store.checked, schedule.id, now, audit, self._clock.now_ms()
            )
