"""Sampling instants under a clock that misbehaves: early, late, twice, stepped back and forward.

Each instant is taken exactly once; an instant that passed unseen is taken as
nil (and counted), never skipped; an instant already taken is never taken
again, whatever the clock says next.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from panelfast import decode_batch, encode_batches
from panelfast._native import SeriesSet
from panelfast.clock import Clock
from panelfast.remote_config import validate
from panelfast.sampling import Instants, LiveSet, Sampler, SamplingLoop, SamplingPlan, alarm_set

T0 = 1_795_000_000_000


def test_an_early_wake_up_waits_and_a_second_one_takes_nothing() -> None:
    instants = Instants()
    assert instants.due(T0 + 400) == (range(0), None)  # the start: the next instant is T0+1000
    assert instants.due(T0 + 999) == (range(0), None)  # early
    assert instants.due(T0 + 1_000) == (range(0), T0 + 1_000)
    assert instants.due(T0 + 1_000) == (range(0), None)  # the same instant, twice
    assert instants.due(T0 + 1_700) == (range(0), None)
    assert instants.due(T0 + 2_050) == (range(0), T0 + 2_000)  # late, still its own instant


def test_instants_missed_while_busy_are_taken_as_nil_and_counted() -> None:
    instants = Instants()
    instants.due(T0)
    missed, now = instants.due(T0 + 4_300)
    assert list(missed) == [T0 + 1_000, T0 + 2_000, T0 + 3_000]
    assert now == T0 + 4_000
    assert instants.missed_total == 3


def test_a_step_back_never_takes_an_instant_again() -> None:
    instants = Instants()
    instants.due(T0)
    taken = [instants.due(T0 + k * 1_000)[1] for k in range(1, 6)]
    assert taken == [T0 + k * 1_000 for k in range(1, 6)]
    # A resync moves the clock back 3 s: T0+3000..T0+5000 were taken already.
    for now in (T0 + 2_100, T0 + 3_000, T0 + 4_000, T0 + 5_000, T0 + 5_900):
        assert instants.due(now) == (range(0), None)
    assert instants.due(T0 + 6_000) == (range(0), T0 + 6_000)
    assert instants.wait_s(T0 + 2_100) == 1.0, "waits a second at most, re-reading the clock"


def test_a_step_forward_fills_the_gap_with_nil_up_to_the_catch_up_limit() -> None:
    instants = Instants(catch_up_ms=10_000)
    instants.due(T0)
    missed, now = instants.due(T0 + 600_000)  # +600 s
    assert now == T0 + 600_000
    assert list(missed) == [T0 + 590_000 + k * 1_000 for k in range(10)]
    assert instants.skipped_total == 599 - 10


class ScriptedClock:
    """A system clock that returns the scripted times, then stays on the last."""

    def __init__(self, times: list[int]) -> None:
        self.times = times

    def __call__(self) -> float:
        t = self.times.pop(0) if len(self.times) > 1 else self.times[0]
        return t / 1000


@dataclass
class Snapshot:
    values: NDArray[np.float64]
    integers: NDArray[np.int64]
    valid: NDArray[np.bool_]
    read_at_ms: NDArray[np.int64]


async def test_the_loop_takes_each_instant_once_across_steps_repeats_and_jumps() -> None:
    points = {("mb-1", "V"): (0, False, 3_000)}
    config = validate(
        {
            "version": "1",
            "measurements": [{"device": "mb-1", "measurement": "V", "period_s": 1}],
            "alarms": [],
            "publisher": {"period_s": 60},
        },
        set(points),
    )

    def lookup(device: str, measurement: str) -> tuple[int, bool, int]:
        return points[(device, measurement)]

    script = [
        T0 + 10,  # start
        T0 + 1_002,  # instant 1
        T0 + 1_002,  # a repeated reading: nothing
        T0 + 900,  # stepped back: nothing
        T0 + 2_001,  # instant 2
        T0 + 5_500,  # jumped: 3 and 4 missed (nil), 5 taken
        T0 + 4_000,  # back again: nothing
        T0 + 6_000,  # instant 6
    ]
    clock = Clock(source=ScriptedClock(script))

    def snapshot() -> Snapshot:
        # A reading made at the instant being taken: fresh.
        t = loop.instants.last or 0
        return Snapshot(
            np.array([230.0 + t % 10_000 / 1000]),
            np.zeros(1, np.int64),
            np.ones(1, np.bool_),
            np.array([t], np.int64),
        )

    stored: list[SeriesSet] = []
    sampler = Sampler(SamplingPlan.build(config, lookup), capacity=100)
    loop = SamplingLoop(
        clock,
        snapshot,
        lambda series, _version: stored.append(series),
        live=LiveSet(config, sampler, alarm_set(config, lookup)),
        on_live=lambda _live: None,
        flush_s=3600,
    )
    task = asyncio.create_task(loop.run())
    for _ in range(200):
        if loop.instants.last == T0 + 6_000:
            break
        await asyncio.sleep(0.02)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await loop.flush()
    samples: list[tuple[int, bool]] = []  # (instant, nil)
    for series in stored:
        for batch in encode_batches(series, config_version="1", first_seq=1):
            for group in decode_batch(batch.body)["groups"]:
                samples += [
                    (group["t0"] + j * group["dt"], v is None) for j, v in enumerate(group["v"][0])
                ]
    assert samples == [
        (T0 + 1_000, False),
        (T0 + 2_000, False),
        (T0 + 3_000, True),
        (T0 + 4_000, True),
        (T0 + 5_000, False),
        (T0 + 6_000, False),
    ], "instants 1..6, each once; the two jumped over are nil"
    assert loop.instants.missed_total == 2
    assert loop.nil_samples == 2
