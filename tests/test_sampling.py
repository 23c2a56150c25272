"""Sampling: aligned instants, fresh values or nil, exact integers kept."""

from __future__ import annotations

import numpy as np
import psutil

from panelfast import decode_batch, encode_batches
from panelfast.remote_config import validate
from panelfast.sampling import Sampler, SamplingPlan, alarm_set

NIL = np.iinfo(np.int64).min
# Snapshot points: 0 = mb-1/V (float), 1 = mb-1/E (exact int), 2 = io-1/Q1 (float)
POINTS = {("mb-1", "V"): (0, False, 3000), ("mb-1", "E"): (1, True, 3000),
          ("io-1", "Q1"): (2, False, 3000)}  # fmt: skip


def lookup(device: str, measurement: str) -> tuple[int, bool, int]:
    return POINTS[(device, measurement)]


CONFIG = validate(
    {
        "version": "9",
        "measurements": [
            {"device": "mb-1", "measurement": "E", "period_s": 60},
            {"device": "mb-1", "measurement": "V", "period_s": 1},
            {"device": "io-1", "measurement": "Q1", "period_s": 600},
        ],
        "alarms": [
            {
                "id": "hv",
                "device": "mb-1",
                "measurement": "V",
                "condition": "over",
                "threshold": 253,
                "hysteresis": 2,
                "delay_s": 0,
            }
        ],
        "publisher": {"period_s": 60},
    },
    set(POINTS),
)


def test_plan_follows_the_configuration_order() -> None:
    plan = SamplingPlan.build(CONFIG, lookup)
    assert plan.points.tolist() == [1, 0, 2]
    assert plan.kinds == ("int", "float", "float")
    assert plan.due(1_795_000_001_000).tolist() == [1]
    assert plan.due(1_795_000_020_000).tolist() == [0, 1]  # a whole minute
    assert plan.due(1_795_000_200_000).tolist() == [0, 1, 2]  # a whole 10 minutes
    assert plan.due(1_795_000_000_500).tolist() == []


def test_fresh_values_stale_and_invalid_ones_are_nil() -> None:
    sampler = Sampler(SamplingPlan.build(CONFIG, lookup), capacity=100)
    t = 1_795_000_200_000
    values = np.array([230.5, 1.0e6, 1.0])
    integers = np.array([NIL, 1_000_000_000_123, NIL])
    valid = np.array([True, True, True])
    read_at = np.array([t - 200, t - 900, t - 10_000])  # Q1's device is silent for 10 s
    assert sampler.sample(t, values, integers, valid, read_at) == 3
    valid2 = np.array([False, True, True])
    sampler.sample(t + 1000, values, integers, valid2, read_at + 1000)
    series = {m: (t0, v) for m, t0, _, v in sampler.drain().to_list()}
    assert series[0][1].tolist() == [1_000_000_000_123], "energy stays an exact integer"
    assert series[1][1][0] == 230.5
    assert np.isnan(series[1][1][1]), "an invalid reading is nil"
    assert np.isnan(series[2][1][0]), "a stale reading is nil, not the old value"
    assert encode_batches(sampler.drain(), "9", 1) == [], "nothing is drained twice"


def test_samples_reach_a_batch_as_the_spec_says() -> None:
    sampler = Sampler(SamplingPlan.build(CONFIG, lookup), capacity=100)
    t0 = 1_795_000_200_000
    for k in range(3):
        t = t0 + k * 1000
        sampler.sample(t, np.array([230.0 + k, 0.0, 1.0]), np.array([NIL, 7 + k, NIL]),
                       np.ones(3, bool), np.full(3, t))  # fmt: skip
    (batch,) = encode_batches(sampler.drain(), "9", 1)
    groups = {(g["t0"], g["dt"]): (g["m"], g["v"]) for g in decode_batch(batch.body)["groups"]}
    assert groups[(t0, 1000)] == ([1], [[230.0, 231.0, 232.0]])
    assert groups[(t0, 60_000)] == ([0], [[7]])
    assert groups[(t0, 600_000)] == ([2], [[1.0]])


def test_alarms_read_the_snapshot_points() -> None:
    alarms = alarm_set(CONFIG, lookup)
    events = alarms.evaluate(np.array([254.0, 0.0, 0.0]), np.ones(3, bool), np.array([5, 5, 5]))
    assert [(e.alarm, e.active, e.value) for e in events] == [("hv", True, 254.0)]


def test_rings_are_sized_by_their_period() -> None:
    """5,000 measurements every 10 minutes (the ceiling): their rings hold an
    hour of their own samples, not 3,600 slots each (290 MB)."""
    pairs = [("mb-1", f"P{k}") for k in range(5000)]
    config = validate(
        {
            "version": "1",
            "measurements": [{"device": d, "measurement": m, "period_s": 600} for d, m in pairs],
            "alarms": [],
            "publisher": {"period_s": 600},
        },
        set(pairs),
    )
    index = {p: k for k, p in enumerate(pairs)}
    plan = SamplingPlan.build(config, lambda d, m: (index[(d, m)], False, 3000))
    process = psutil.Process()
    before = process.memory_info().rss
    sampler = Sampler(plan, capacity=3600)
    grown = process.memory_info().rss - before
    assert grown < 30_000_000, f"the rings took {grown / 1e6:.0f} MB"
    t = 1_795_000_200_000
    n = len(pairs)
    values = np.full(n, 230.0)
    assert sampler.sample(t, values, np.zeros(n, np.int64), np.ones(n, bool), np.full(n, t)) == n
    assert sum(len(v) for _, _, _, v in sampler.drain().to_list()) == n
