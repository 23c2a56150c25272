"""Alarm evaluation (spec §8) as the gateway drives it: arrays of readings per call."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from panelfast import AlarmError, AlarmSet

VOLTAGE_HIGH = ("a1", 1, "over", 253.0, 2.0, 10_000)
VOLTAGE_LOW = ("a2", 1, "under", 207.0, 3.0, 0)


def test_transitions_carry_read_time_and_value() -> None:
    alarms = AlarmSet([VOLTAGE_HIGH, VOLTAGE_LOW])
    events = []
    for t, volts in [(0, 254.0), (5_000, 254.2), (10_000, 254.1), (11_000, 251.5), (12_000, 250.0)]:
        values = np.array([0.0, volts])
        events += alarms.evaluate(values, [True, True], [t, t])
    assert [(e.alarm, e.active, e.ts_ms, e.value) for e in events] == [
        ("a1", True, 10_000, 254.1),
        ("a1", False, 12_000, 250.0),
    ]
    assert alarms.active() == [False, False]


def test_invalid_readings_never_raise_an_alarm() -> None:
    alarms = AlarmSet([("a", 0, "over", 1.0, 0.0, 0)])
    assert alarms.evaluate([np.nan], [False], [0]) == []
    assert alarms.evaluate([5.0], [False], [1]) == []
    assert [e.active for e in alarms.evaluate([5.0], [True], [2])] == [True]


def test_bad_alarms_are_rejected() -> None:
    with pytest.raises(AlarmError, match="threshold must be finite"):
        AlarmSet([("a", 0, "over", float("nan"), 0.0, 0)])
    with pytest.raises(AlarmError, match="condition"):
        AlarmSet([("a", 0, "sideways", 1.0, 0.0, 0)])  # type: ignore[list-item]
    with pytest.raises(AlarmError, match="reads input 3"):
        AlarmSet([("a", 3, "over", 1.0, 0.0, 0)]).evaluate([1.0], [True], [0])


@settings(max_examples=200, deadline=None)
@given(
    readings=st.lists(st.one_of(st.floats(200, 300), st.just(float("nan"))), max_size=60),
    hysteresis=st.floats(0, 10),
)
def test_transitions_alternate_and_respect_the_band(
    readings: list[float], hysteresis: float
) -> None:
    alarms = AlarmSet([("a", 0, "over", 250.0, hysteresis, 0)])
    expected_active = True
    for t, v in enumerate(readings):
        for e in alarms.evaluate([v], [v == v], [t * 1000]):
            assert e.active is expected_active, "active and inactive alternate"
            assert e.value > 250.0 if e.active else e.value < 250.0 - hysteresis
            expected_active = not expected_active
