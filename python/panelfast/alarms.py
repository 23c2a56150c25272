"""Alarms (§8): the alarm set in force, watched on every new reading, its events delivered.

The Rust :class:`~panelfast._native.AlarmSet` evaluates thresholds,
hysteresis and delays on whole snapshot arrays; this module decides when it
looks (at least twice per poll period of the fastest device, so every
reading is evaluated once) and hands each transition to whoever delivers it
(the outbox for the cloud, or the mailer for email publication).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from panelfast._native import AlarmEvent, AlarmSet
from panelfast.sampling import AlarmRules, SnapshotSource

__all__ = ["AlarmWatch"]

log = logging.getLogger(__name__)


class AlarmWatch:
    """The alarms in force (switched at a sampling instant with the sampling set)."""

    def __init__(
        self,
        snapshot: Callable[[], SnapshotSource],
        deliver: Callable[[Sequence[AlarmEvent]], Awaitable[None]],
        *,
        interval_s: float,
        alarms: AlarmSet | None = None,
        config: AlarmRules | None = None,
    ) -> None:
        self._snapshot = snapshot
        self._deliver = deliver
        self.interval_s = interval_s
        self.alarms = alarms
        # What the live alarm set was built from (a remote configuration, or the
        # local alarms of email publication): until the next sampling instant a
        # new remote configuration is not yet the applied one (status names alarms by it).
        self.config = config
        self.events_total = 0

    def replace(self, alarms: AlarmSet, config: AlarmRules) -> None:
        self.alarms, self.config = alarms, config

    def active(self) -> tuple[str, ...]:
        """The ids of the active alarms."""
        alarms, config = self.alarms, self.config
        if alarms is None or config is None:
            return ()
        return tuple(a.id for a, on in zip(config.alarms, alarms.active(), strict=True) if on)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            alarms = self.alarms
            if alarms is None or len(alarms) == 0:
                continue
            snap = self._snapshot()
            events = alarms.evaluate(snap.values, snap.valid, snap.read_at_ms)
            if not events:
                continue
            self.events_total += len(events)
            for e in events:
                state = "active" if e.active else "inactive"
                log.info(
                    "alarm %s %s at %d (value %g)",
                    e.alarm,
                    state,
                    e.ts_ms,
                    e.value,
                    extra={
                        "event": f"alarm.{state}",
                        "alarm": e.alarm,
                        "ts_ms": e.ts_ms,
                        "value": e.value,
                    },
                )
            await self._deliver(events)
