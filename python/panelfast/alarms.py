"""Alarms (§8): the alarm set in force, watched on every new reading, its events delivered.

The Rust :class:`~panelfast._native.AlarmSet` evaluates thresholds,
hysteresis and delays on whole snapshot arrays; this module decides when it
looks (at least twice per poll period of the fastest device, so every
reading is evaluated once) and hands each transition, with the states the
alarms are left in, to whoever records and delivers it (the outbox for the
cloud, or the mailer for email publication).

Alarm states survive restarts (§8: each transition is one event): they are
recorded whenever they change (a transition, a delay starting or ending),
and :func:`restore_states` puts them back at start for every alarm whose
definition did not change. An alarm whose measurement cannot be read after
the restart keeps its state: a missing reading proves nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence

from panelfast._native import AlarmEvent, AlarmSet
from panelfast.outbox import SavedAlarm
from panelfast.remote_config import AlarmRule
from panelfast.sampling import AlarmRules, SnapshotSource, with_absent_point

__all__ = [
    "AlarmWatch",
    "SavedAlarm",
    "carry_states",
    "definition",
    "restore_states",
    "watch_interval_s",
]

log = logging.getLogger(__name__)

#: Records transitions and the states they leave the alarms in (events may be empty).
Record = Callable[[Sequence[AlarmEvent], Sequence[SavedAlarm]], Awaitable[None]]


def definition(rule: AlarmRule) -> str:
    """What decides an alarm's state; severity only labels its events."""
    return json.dumps(
        [rule.device, rule.measurement, rule.condition, rule.threshold, rule.hysteresis,
         rule.delay_s]
    )  # fmt: skip


def saved_states(alarms: AlarmSet, config: AlarmRules) -> list[SavedAlarm]:
    """Each alarm's state as it is kept across restarts."""
    return [
        SavedAlarm(rule.id, definition(rule), active, since_ms)
        for rule, (active, since_ms) in zip(config.alarms, alarms.saved_states(), strict=True)
    ]


def restore_states(
    alarms: AlarmSet, config: AlarmRules, saved: Mapping[str, SavedAlarm]
) -> list[SavedAlarm]:
    """Put back the saved state of each alarm whose definition did not change;
    returns the states put back."""
    restored: list[SavedAlarm] = []
    states: list[tuple[bool, int | None] | None] = []
    for rule in config.alarms:
        kept = saved.get(rule.id)
        if kept is not None and kept.definition == definition(rule):
            restored.append(kept)
            states.append((kept.active, kept.since_ms))
        else:
            states.append(None)
    alarms.restore(states)
    return restored


def carry_states(
    alarms: AlarmSet | None, config: AlarmRules | None, into: AlarmSet, new: AlarmRules
) -> None:
    """Give the alarms of ``into`` (built for ``new``) the states the running ones
    are in now, for every alarm whose definition did not change (their snapshot
    indices may have: a reload of the devices)."""
    if alarms is None or config is None:
        return
    restore_states(into, new, {s.id: s for s in saved_states(alarms, config)})


def watch_interval_s(poll_periods_ms: Iterable[int], most_s: float) -> float:
    """How often to look: every reading must be evaluated once, so at least twice
    per poll period of the fastest device (each reading is evaluated only once)."""
    fastest_ms = min(poll_periods_ms, default=1000)
    return min(most_s, fastest_ms / 2000)


class AlarmWatch:
    """The alarms in force (switched at a sampling instant with the sampling set)."""

    def __init__(
        self,
        snapshot: Callable[[], SnapshotSource],
        record: Record,
        *,
        interval_s: float,
        alarms: AlarmSet | None = None,
        config: AlarmRules | None = None,
    ) -> None:
        self._snapshot = snapshot
        self._record = record
        self.interval_s = interval_s
        self.alarms = alarms
        # What the live alarm set was built from (a remote configuration, or the
        # local alarms of email publication): until the next sampling instant a
        # new remote configuration is not yet the applied one (status names alarms by it).
        self.config = config
        self.events_total = 0
        # The states last recorded (None: record them at the next look).
        self._recorded: list[tuple[bool, int | None]] | None = None

    def replace(self, alarms: AlarmSet, config: AlarmRules) -> None:
        self.alarms, self.config = alarms, config
        self._recorded = None  # the saved states must now be this set's

    def active(self) -> tuple[str, ...]:
        """The ids of the active alarms."""
        alarms, config = self.alarms, self.config
        if alarms is None or config is None:
            return ()
        return tuple(a.id for a, on in zip(config.alarms, alarms.active(), strict=True) if on)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            alarms, config = self.alarms, self.config
            if alarms is None or config is None:
                continue
            events = self._evaluate(alarms) if len(alarms) else []
            states = alarms.saved_states()
            if not events and states == self._recorded:
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
            await self._record(events, saved_states(alarms, config))
            self._recorded = states

    def _evaluate(self, alarms: AlarmSet) -> list[AlarmEvent]:
        snap = self._snapshot()
        values, valid, read_at_ms = snap.values, snap.valid, snap.read_at_ms
        if alarms.inputs_needed() > valid.size:
            # An alarm of a device no longer configured: its point is never read.
            values, _, valid, read_at_ms = with_absent_point(snap)
        return alarms.evaluate(values, valid, read_at_ms)
