"""Sample rings: bounded, drained once, overflow counted."""

from __future__ import annotations

import numpy as np
import pytest

from panelfast import RingError, SampleRing

NIL = np.iinfo(np.int64).min


def append(ring: SampleRing, t: int, idx: list[int], floats: list[float], ints: list[int]) -> None:
    n = len(idx)
    ring.append(t, np.array(idx), np.array(floats), np.array(ints), np.ones(n, bool))


def test_drain_returns_periodic_series_once() -> None:
    ring = SampleRing(["float", "int"], [60_000, 60_000], capacity=10)
    for k in range(3):
        append(ring, k * 60_000, [0, 1], [230.0 + k, 0.0], [0, 1000 + k])
    series = ring.drain().to_list()
    assert [(m, t0, dt) for m, t0, dt, _ in series] == [(0, 0, 60_000), (1, 0, 60_000)]
    np.testing.assert_array_equal(series[0][3], [230.0, 231.0, 232.0])
    assert series[1][3].dtype == np.int64
    np.testing.assert_array_equal(series[1][3], [1000, 1001, 1002])
    assert len(ring.drain()) == 0
    assert ring.stats().pending == 0
    assert ring.read(0, 10**9).samples == 6


def test_invalid_samples_are_nil_not_stale() -> None:
    ring = SampleRing(["float", "int"], [1000, 1000], capacity=4)
    ring.append(0, [0, 1], [1.5, 0.0], [0, 7], [True, True])
    ring.append(1000, [0, 1], [9.9, 0.0], [0, 8], [False, False])
    (_, _, _, floats), (_, _, _, ints) = ring.drain().to_list()
    assert floats[0] == 1.5
    assert np.isnan(floats[1])
    assert list(ints) == [7, NIL]


def test_overflow_drops_oldest_and_counts_it() -> None:
    ring = SampleRing(["float"], [1000], capacity=3)
    for t in range(5):
        append(ring, t * 1000, [0], [float(t)], [0])
    stats = ring.stats()
    assert (stats.held, stats.pending, stats.dropped, stats.dropped_undrained) == (3, 3, 2, 2)
    ((_, t0, _, values),) = ring.drain().to_list()
    assert t0 == 2000
    np.testing.assert_array_equal(values, [2.0, 3.0, 4.0])


def test_drain_until_keeps_later_samples_pending() -> None:
    ring = SampleRing(["float"], [1000], capacity=8)
    for t in range(4):
        append(ring, t * 1000, [0], [float(t)], [0])
    assert ring.drain(until_ms=2000).samples == 2
    assert ring.stats().pending == 2
    assert ring.drain().to_list()[0][1] == 2000


def test_bad_calls_raise_and_change_nothing() -> None:
    ring = SampleRing(["float"], [1000], capacity=3)
    append(ring, 1000, [0], [1.0], [0])
    with pytest.raises(RingError, match="not after the last"):
        append(ring, 1000, [0], [1.0], [0])
    with pytest.raises(RingError, match="out of range"):
        append(ring, 2000, [5], [1.0], [0])
    with pytest.raises(RingError, match="negative"):
        append(ring, 2000, [-1], [1.0], [0])
    with pytest.raises(RingError, match="1 indices but 2 floats"):
        ring.append(2000, [0], [1.0, 2.0], [0], [True])
    with pytest.raises(RingError, match="kind"):
        SampleRing(["double"], [1000], 3)  # type: ignore[list-item]
    with pytest.raises(RingError, match="capacity"):
        SampleRing(["float"], [1000], 0)
    assert ring.stats().held == 1
