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


class Sampler:
    """Takes the samples of one remote configuration into bounded rings."""

    def __init__(self, plan: SamplingPlan, *, capacity: int) -> None:
        self.plan = plan
        self.ring = SampleRing(plan.kinds, plan.periods_ms.tolist(), capacity)

    def sample(
        self,
        t_ms: int,
        values: NDArray[np.float64],
        integers: NDArray[np.int64],
        valid: NDArray[np.bool_],
        read_at_ms: NDArray[np.int64],
    ) -> int:
        """Take the samples due at instant ``t_ms`` from a snapshot; returns how many."""
        due = self.plan.due(t_ms)
        if due.size == 0:
            return 0
        points = self.plan.points[due]
        age = t_ms - read_at_ms[points]
        fresh = valid[points] & (age <= self.plan.max_age_ms[due]) & (read_at_ms[points] > 0)
        self.ring.append(t_ms, due, values[points], integers[points], fresh)
        return int(due.size)

    def drain(self, until_ms: int | None = None) -> SeriesSet:
        return self.ring.drain(until_ms)


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
