"""The typed, immutable form of a valid remote configuration (§6)."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Literal, NamedTuple

__all__ = [
    "AlarmCondition",
    "AlarmRule",
    "PeriodGroup",
    "RemoteConfig",
    "SampledMeasurement",
    "Severity",
]

AlarmCondition = Literal["over", "under"]
Severity = Literal["low", "medium", "high"]


class SampledMeasurement(NamedTuple):
    """A measurement the cloud wants sampled, and how often.

    A named tuple rather than a frozen dataclass: a configuration holds up to
    5,000 of them and a tuple is built several times faster.
    """

    #: Index in the document's ``measurements``: data batches name it by this (§7).
    #: (Not ``index``, which a tuple already has as a method.)
    position: int
    device: str
    measurement: str
    period_s: int

    @property
    def key(self) -> tuple[str, str]:
        return (self.device, self.measurement)


@dataclass(frozen=True, slots=True)
class AlarmRule:
    """An alarm the cloud wants watched (§8)."""

    id: str
    device: str
    measurement: str
    condition: AlarmCondition
    threshold: float
    hysteresis: float
    delay_s: int
    severity: Severity = "medium"

    @property
    def key(self) -> tuple[str, str]:
        return (self.device, self.measurement)


@dataclass(frozen=True, slots=True)
class PeriodGroup:
    """The measurements sampled at one period: one sampling schedule, one batch group."""

    period_s: int
    #: Indices into :attr:`RemoteConfig.measurements`, ascending.
    indices: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class RemoteConfig:
    """A validated remote configuration, ready to be applied at once."""

    version: str
    measurements: tuple[SampledMeasurement, ...]
    alarms: tuple[AlarmRule, ...]
    publisher_period_s: int
    # Derived once here so that applying does not recompute them.
    period_groups: tuple[PeriodGroup, ...] = field(init=False, compare=False)
    samples_per_minute: Fraction = field(init=False, compare=False)

    def __post_init__(self) -> None:
        by_period: dict[int, list[int]] = {}
        for sampled in self.measurements:
            by_period.setdefault(sampled.period_s, []).append(sampled.position)
        groups = tuple(
            PeriodGroup(period, tuple(indices)) for period, indices in sorted(by_period.items())
        )
        # Exact: 0.1 + 0.2-style float drift must not push 500 to 500.0000001.
        rate = sum((Fraction(60 * len(g.indices), g.period_s) for g in groups), Fraction(0))
        object.__setattr__(self, "period_groups", groups)
        object.__setattr__(self, "samples_per_minute", rate)

    def to_document(self) -> dict[str, Any]:
        """The configuration as a §6 document (what validating it gives back)."""
        return {
            "version": self.version,
            "measurements": [
                {"device": m.device, "measurement": m.measurement, "period_s": m.period_s}
                for m in self.measurements
            ],
            "alarms": [
                {
                    "id": a.id,
                    "device": a.device,
                    "measurement": a.measurement,
                    "condition": a.condition,
                    "threshold": a.threshold,
                    "hysteresis": a.hysteresis,
                    "delay_s": a.delay_s,
                    "severity": a.severity,
                }
                for a in self.alarms
            ],
            "publisher": {"period_s": self.publisher_period_s},
        }
