"""Remote configuration → what is sampled at each instant, and the alarms' inputs.

Samples are taken at instants aligned to the UTC clock (``t % period == 0``)
and carry that instant (§7). The value of a sample is the latest reading of
its point as of the instant, provided that reading is fresh: a device that
could not be read for longer than its freshness limit yields *nil*, never its
last value presented as new.

Everything here works on whole arrays: one sampling instant is a handful of
numpy gathers and one call into the Rust rings, whatever the number of
measurements.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
from numpy.typing import NDArray

from panelfast._native import AlarmSet, SampleRing, SeriesSet
from panelfast.clock import Clock
from panelfast.remote_config import AlarmRule, ApplyPlan, RemoteConfig, SectionProgress

__all__ = [
    "AlarmRules",
    "Handover",
    "Instants",
    "LiveSet",
    "PointLookup",
    "Sampler",
    "SamplingLoop",
    "SamplingPlan",
    "alarm_set",
    "alarm_specs",
    "prepare_live_set",
    "with_absent_point",
]

log = logging.getLogger(__name__)

#: A snapshot point: its index, whether it is an exact integer, and how old a
#: reading of it may be and still count as the value at an instant (ms). A
#: measurement the devices no longer have (a device removed from the
#: configuration file) is given the index just past the snapshot's last point:
#: :func:`with_absent_point` makes that a point never read, sampled nil.
PointLookup = Callable[[str, str], tuple[int, bool, int]]

Kind = Literal["float", "int"]


@dataclass(frozen=True, slots=True)
class SamplingPlan:
    """Where each measurement of a remote configuration comes from."""

    version: str
    #: Per measurement of the configuration (its §7 index): the snapshot index.
    points: NDArray[np.int64]
    kinds: tuple[Kind, ...]
    periods_ms: NDArray[np.int64]
    max_age_ms: NDArray[np.int64]
    #: Sampling period (ms) → the measurements sampled at it.
    groups: Mapping[int, NDArray[np.int64]]
    #: How many snapshot points it reads (the highest index + 1).
    reach: int = 0

    @classmethod
    def build(cls, config: RemoteConfig, lookup: PointLookup) -> SamplingPlan:
        points, kinds, ages = [], [], []
        for m in config.measurements:
            index, exact, max_age_ms = lookup(m.device, m.measurement)
            points.append(index)
            kinds.append("int" if exact else "float")
            ages.append(max_age_ms)
        return cls(
            version=config.version,
            points=np.array(points, np.int64),
            kinds=tuple(kinds),  # type: ignore[arg-type]
            periods_ms=np.array([m.period_s * 1000 for m in config.measurements], np.int64),
            max_age_ms=np.array(ages, np.int64),
            groups={g.period_s * 1000: np.array(g.indices, np.int64) for g in config.period_groups},
            reach=max(points, default=-1) + 1,
        )

    def due(self, t_ms: int) -> NDArray[np.int64]:
        """The measurements sampled at instant ``t_ms``, ascending."""
        due = [g for period, g in self.groups.items() if t_ms % period == 0]
        if not due:
            return np.empty(0, np.int64)
        return due[0] if len(due) == 1 else np.sort(np.concatenate(due))


#: How long the rings can hold samples the outbox did not take yet, at most.
RING_SPAN_MS = 3_600_000


class Sampler:
    """Takes the samples of one remote configuration into bounded rings.

    One ring set per sampling period, each sized to hold ``RING_SPAN_MS`` of
    its period's samples (at most ``capacity``, at least 2): a ring's memory
    is allocated whole at creation, so one capacity for every period would
    give a measurement sampled every 10 minutes the slots of one sampled
    every second (5,000 such measurements: 290 MB for nothing).
    """

    def __init__(self, plan: SamplingPlan, *, capacity: int) -> None:
        self.plan = plan
        self._rings: list[tuple[int, NDArray[np.int64], SampleRing]] = []
        for period, indices in sorted(plan.groups.items()):
            size = max(2, min(capacity, -(-RING_SPAN_MS // period)))
            kinds = [plan.kinds[i] for i in indices.tolist()]
            ring = SampleRing(kinds, [period] * len(kinds), size)
            self._rings.append((period, indices, ring))
        #: Samples taken as nil (not fresh, or an instant missed), for the metrics.
        self.nil = 0
        self._identity = len(self._rings) == 1 and bool(
            np.array_equal(self._rings[0][1], np.arange(self._rings[0][1].size))
        )

    def sample(
        self,
        t_ms: int,
        values: NDArray[np.float64],
        integers: NDArray[np.int64],
        valid: NDArray[np.bool_],
        read_at_ms: NDArray[np.int64],
    ) -> int:
        """Take the samples due at instant ``t_ms`` from a snapshot; returns how many."""
        taken = 0
        for period, due, ring in self._rings:
            if t_ms % period:
                continue
            points = self.plan.points[due]
            age = t_ms - read_at_ms[points]
            fresh = valid[points] & (age <= self.plan.max_age_ms[due]) & (read_at_ms[points] > 0)
            local = np.arange(due.size, dtype=np.int64)
            ring.append(t_ms, local, values[points], integers[points], fresh)
            taken += int(due.size)
            self.nil += int(due.size) - int(np.count_nonzero(fresh))
        return taken

    def missed(self, t_ms: int) -> int:
        """Take the samples due at an instant that passed unseen as nil; returns how many."""
        taken = 0
        for period, due, ring in self._rings:
            if t_ms % period:
                continue
            nothing = np.zeros(due.size, np.bool_)
            local = np.arange(due.size, dtype=np.int64)
            ring.append(t_ms, local, np.zeros(due.size), np.zeros(due.size, np.int64), nothing)
            taken += int(due.size)
        self.nil += taken
        return taken

    def drain(self, until_ms: int | None = None) -> SeriesSet:
        """Every ring's samples, under the measurements' indices in the configuration."""
        if self._identity:  # one period: local index = configuration index
            return self._rings[0][2].drain(until_ms)
        items = []
        for _, due, ring in self._rings:
            for m, t0, dt, v in ring.drain(until_ms).to_list():
                items.append((int(due[m]), t0, dt, v))
        items.sort(key=lambda item: (item[0], item[1]))
        return SeriesSet.from_series(items)


#: An alarm as the Rust alarm set takes it: id, snapshot index, condition,
#: threshold, hysteresis, delay (ms).
AlarmSpec = tuple[str, int, Literal["over", "under"], float, float, int]


class AlarmRules(Protocol):
    """What an alarm set is built from: a remote configuration, or the local
    configuration's alarms of email publication
    (:class:`~panelfast.alarm_publication.LocalAlarms`)."""

    @property
    def version(self) -> str: ...
    @property
    def alarms(self) -> tuple[AlarmRule, ...]: ...


def alarm_specs(config: AlarmRules, lookup: PointLookup) -> list[AlarmSpec]:
    """The alarms of ``config``, reading their measurements straight from the snapshot."""
    return [
        (
            a.id,
            lookup(a.device, a.measurement)[0],
            a.condition,
            a.threshold,
            a.hysteresis,
            a.delay_s * 1000,
        )
        for a in config.alarms
    ]


def alarm_set(config: AlarmRules, lookup: PointLookup) -> AlarmSet:
    return AlarmSet(alarm_specs(config, lookup))


def prepare_live_set(
    plan: ApplyPlan,
    progress: SectionProgress,
    lookup: PointLookup,
    *,
    previous_alarms: AlarmSet | None,
    capacity: int,
) -> LiveSet:
    """Build what a new remote configuration samples and watches, section by section.

    Alarms that keep their id and definition keep their state (an active alarm
    is not announced again because a measurement was added elsewhere).
    """
    tick = progress.start("measurements")
    sampler = Sampler(SamplingPlan.build(plan.new, lookup), capacity=capacity)
    tick(plan.changes("measurements"))
    tick = progress.start("alarms")
    specs = alarm_specs(plan.new, lookup)
    alarms = previous_alarms.carry_over(specs) if previous_alarms is not None else AlarmSet(specs)
    tick(plan.changes("alarms"))
    return LiveSet(plan.new, sampler, alarms)


class Instants:
    """Which sampling instants are due, whatever the clock does.

    Instants are the whole multiples of ``step_ms`` on the gateway's clock.
    Each is taken once: a wake-up that comes early waits, one that comes
    twice finds its instant taken, and after a step back the instants already
    taken are not taken again (the loop waits for the clock to pass the last
    one). Instants that passed unseen — the process was busy, or the clock
    stepped forward — are *missed*: taken as nil, never skipped, up to
    ``catch_up_ms`` back (beyond that the rings could not hold them anyway).
    """

    def __init__(self, step_ms: int = 1000, *, catch_up_ms: int = RING_SPAN_MS) -> None:
        self.step_ms = step_ms
        self.catch_up_ms = catch_up_ms
        #: The last instant taken (or, before the first, the one the loop started in).
        self.last: int | None = None
        self.missed_total = 0
        #: Instants beyond ``catch_up_ms`` that a forward step jumped over.
        self.skipped_total = 0

    def due(self, now_ms: int) -> tuple[range, int | None]:
        """The missed instants to take as nil, and the instant to take now (None: wait)."""
        current = now_ms - now_ms % self.step_ms
        if self.last is None:
            self.last = current  # the first instant is the next whole one
            return range(0), None
        if current <= self.last:
            return range(0), None
        first_missed = self.last + self.step_ms
        oldest = max(first_missed, current - self.catch_up_ms)
        self.skipped_total += (oldest - first_missed) // self.step_ms
        missed = range(oldest, current, self.step_ms)
        self.missed_total += len(missed)
        self.last = current
        return missed, current

    def wait_s(self, now_ms: int) -> float:
        """How long until the next instant; at most one second, so a clock step
        is noticed within a second whichever way it goes."""
        last = self.last if self.last is not None else now_ms - now_ms % self.step_ms
        return min(1.0, max(0.0, (last + self.step_ms - now_ms) / 1000))


def with_absent_point(
    snap: SnapshotSource,
) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.bool_], NDArray[np.int64]]:
    """The snapshot's arrays with one more point, never read: where measurements
    of devices no longer configured point (a copy, made only in that case)."""
    return (
        np.append(snap.values, np.nan),
        np.append(snap.integers, np.iinfo(np.int64).min),
        np.append(snap.valid, False),
        np.append(snap.read_at_ms, 0),
    )


@dataclass(frozen=True, slots=True)
class LiveSet:
    """What a remote configuration puts in force at one sampling instant."""

    config: RemoteConfig
    sampler: Sampler
    alarms: AlarmSet


class SnapshotSource(Protocol):
    """The acquisition's latest readings (:class:`panelfast.acquisition.Snapshot`)."""

    @property
    def values(self) -> NDArray[np.float64]: ...
    @property
    def integers(self) -> NDArray[np.int64]: ...
    @property
    def valid(self) -> NDArray[np.bool_]: ...
    @property
    def read_at_ms(self) -> NDArray[np.int64]: ...


@dataclass(slots=True)
class Handover:
    """What the sampling loop puts in force at its next instant."""

    #: The new sampling set (None: nothing sampled, no configuration in force).
    live: LiveSet | None
    #: Run first, at that instant (a new device set: the snapshot's layout changes).
    switch: Callable[[], None] | None = None
    #: Gets the instant it was put in force at.
    done: asyncio.Future[int] | None = None


class SamplingLoop:
    """Takes every sampling instant under the configuration in force, and moves
    the rings' samples to durable storage every ``flush_s``.

    A configuration handed over (:meth:`hand_over`) is put in force at the next
    instant: everything sampled before it stays under the old version, from it
    on under the new (§6 "from one sampling instant on"); ``on_live`` hears of
    it then (the alarms switch at the same instant). :meth:`switch_at_next_instant`
    does the same with a change of the device set (a live reload), so that no
    instant is sampled with the old plan on the new snapshot's layout.
    """

    def __init__(
        self,
        clock: Clock,
        snapshot: Callable[[], SnapshotSource],
        store: Callable[[SeriesSet, str], object],
        *,
        live: LiveSet | None,
        on_live: Callable[[LiveSet], None],
        flush_s: float = 2.0,
    ) -> None:
        self._clock = clock
        self._snapshot = snapshot
        self._store = store
        self._on_live = on_live
        self._flush_ms = int(flush_s * 1000)
        self.sampler: Sampler | None = live.sampler if live is not None else None
        self._pending: Handover | None = None
        self.instants = Instants()
        self.samples_taken = 0
        self._retired_nil = 0

    @property
    def nil_samples(self) -> int:
        """Samples taken as nil since the start, under every configuration."""
        return self._retired_nil + (self.sampler.nil if self.sampler is not None else 0)

    def hand_over(self, live: LiveSet) -> None:
        """Put ``live`` in force from the next sampling instant."""
        self._pending = Handover(live)

    def switch_at_next_instant(self, live: LiveSet | None, switch: Callable[[], None]) -> Handover:
        """At the next sampling instant, run ``switch`` and put ``live`` in force,
        together; its ``done`` future gets that instant (:meth:`withdraw` takes it back)."""
        handover = Handover(live, switch, asyncio.get_running_loop().create_future())
        self._pending = handover
        return handover

    def withdraw(self, handover: Handover) -> bool:
        """Take back a hand-over not yet put in force; False if it was."""
        if self._pending is not handover:
            return False
        self._pending = None
        return True

    async def run(self) -> None:
        last_flush: int | None = None
        while True:
            now = self._clock.now_ms()
            missed, t = self.instants.due(now)
            if t is None:
                await asyncio.sleep(self.instants.wait_s(now))
                continue
            if missed:
                log.warning(
                    "%d sampling instant(s) from %d passed unseen (busy, or a clock step): "
                    "taken as nil",
                    len(missed),
                    missed[0],
                    extra={
                        "event": "sampling.instants_missed",
                        "instants": len(missed),
                        "from_ms": missed[0],
                    },
                )
            await self._take(missed, t)
            if last_flush is None or not 0 <= t - last_flush < self._flush_ms:
                await self.flush()
                last_flush = t

    async def _take(self, missed: range, t_ms: int) -> None:
        sampler = self.sampler
        if sampler is not None:
            for instant in missed:
                self.samples_taken += sampler.missed(instant)
        if self._pending is not None:
            await self._make_live(t_ms)
            sampler = self.sampler
        if sampler is not None:
            snap = self._snapshot()
            if sampler.plan.reach > snap.valid.size:
                arrays = with_absent_point(snap)
            else:
                arrays = (snap.values, snap.integers, snap.valid, snap.read_at_ms)
            self.samples_taken += sampler.sample(t_ms, *arrays)

    async def _make_live(self, t_ms: int) -> None:
        await self.flush()  # what was sampled under the old version goes out under it
        # Taken after the flush: a hand-over made meanwhile is the one to put in force.
        handover, self._pending = self._pending, None
        if handover is None:
            return
        if handover.switch is not None:
            try:
                handover.switch()
            except Exception as exc:
                if handover.done is not None and not handover.done.done():
                    handover.done.set_exception(exc)  # the caller hears why
                raise
        self._retired_nil += self.sampler.nil if self.sampler is not None else 0
        live = handover.live
        self.sampler = live.sampler if live is not None else None
        if handover.done is not None and not handover.done.done():
            handover.done.set_result(t_ms)
        if live is None:
            return
        self._on_live(live)
        log.info(
            "sampling under remote configuration %s from %d",
            live.config.version,
            t_ms,
            extra={"event": "config.live", "config_version": live.config.version, "from_ms": t_ms},
        )

    async def flush(self) -> None:
        """Move what the rings hold into durable storage."""
        sampler = self.sampler
        if sampler is None:
            return
        series = sampler.drain()
        if series.samples:
            await asyncio.to_thread(self._store, series, sampler.plan.version)
