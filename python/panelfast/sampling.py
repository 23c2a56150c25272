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

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from panelfast._native import AlarmSet, SampleRing, SeriesSet
from panelfast.remote_config import RemoteConfig

__all__ = ["PointLookup", "Sampler", "SamplingPlan", "alarm_set"]

#: A snapshot point: its index, whether it is an exact integer, and how old a
#: reading of it may be and still count as the value at an instant (ms).
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
        #: Samples taken as nil (not fresh), for the metrics.
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


def alarm_set(config: RemoteConfig, lookup: PointLookup) -> AlarmSet:
    """The configuration's alarms, reading their measurements straight from the snapshot."""
    return AlarmSet(
        [
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
    )
