"""What every benchmark shares: timing by medians, and the record format."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Literal, TypedDict


class Record(TypedDict):
    name: str
    unit: str
    ours: float
    baseline_name: str
    baseline: float
    ratio: float


def median_seconds(
    fn: Callable[[], object], *, repeat: int, setup: Callable[[], object] | None = None
) -> float:
    """Median wall time of ``fn`` over ``repeat`` runs (``setup`` untimed before each)."""
    times = []
    for _ in range(repeat):
        if setup is not None:
            setup()
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
        # Freed outside the timing, for both sides alike.
        del result
    return statistics.median(times)


def record(
    name: str,
    unit: str,
    ours: float,
    baseline_name: str,
    baseline: float,
    better: Literal["higher", "lower"],
) -> Record:
    """A comparison; ``ratio > 1`` means panelfast is better, whichever way ``unit`` goes."""
    ratio = ours / baseline if better == "higher" else baseline / ours
    return Record(
        name=name,
        unit=unit,
        ours=round(ours, 6),
        baseline_name=baseline_name,
        baseline=round(baseline, 6),
        ratio=round(ratio, 3),
    )
