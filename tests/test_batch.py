"""Spec §7 batches, checked with independent decoders (zstandard + msgpack)."""

from __future__ import annotations

import contextlib
import math

import msgpack
import numpy as np
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from panelfast import (
    MAX_BODY_BYTES,
    BatchError,
    SeriesSet,
    decode_batch,
    encode_batches,
    encode_msgpack,
)


def independent_decode(body: bytes) -> dict[str, object]:
    raw = zstandard.ZstdDecompressor().decompress(body)
    doc = msgpack.unpackb(raw, strict_map_key=False)
    assert isinstance(doc, dict)
    return doc


def meter_day(measurements: int, seed: int = 1) -> SeriesSet:
    """A day of 10-minute samples: noisy float32 readings and rising int64 counters."""
    rng = np.random.default_rng(seed)
    items: list[tuple[int, int, int, np.ndarray]] = []
    t0 = 1_795_000_000_000 - 1_795_000_000_000 % 600_000
    for m in range(measurements):
        if m % 10 == 9:
            steps = rng.integers(0, 5_000, 144)
            items.append((m, t0, 600_000, (10**7 + np.cumsum(steps)).astype(np.int64)))
        else:
            values = (230 + rng.normal(0, 1.5, 144)).astype(np.float32).astype(np.float64)
            values[rng.random(144) < 0.002] = np.nan
            items.append((m, t0, 600_000, values))
    return SeriesSet.from_series(items)


def test_batch_matches_the_spec_wire_format() -> None:
    series = SeriesSet.from_series(
        [
            (0, 60_000, 60_000, np.array([230.5, np.nan, 0.1])),
            (1, 60_000, 60_000, np.array([1, 2, 2**40], np.int64)),
            (2, 0, 600_000, np.array([np.iinfo(np.int64).min, 5], np.int64)),
        ]
    )
    (batch,) = encode_batches(series, "17", 42)
    doc = independent_decode(batch.body)
    assert list(doc) == ["v", "seq", "config_version", "groups"]
    assert doc["v"] == 1
    assert doc["seq"] == 42
    assert doc["config_version"] == "17"
    groups = doc["groups"]
    assert isinstance(groups, list)
    assert groups[0] == {"t0": 0, "dt": 600_000, "m": [2], "v": [[None, 5]]}
    assert groups[1]["t0"] == 60_000
    assert groups[1]["m"] == [0, 1]
    assert groups[1]["v"][0][0] == 230.5
    assert groups[1]["v"][0][1] is None
    assert groups[1]["v"][0][2] == 0.1
    assert groups[1]["v"][1] == [1, 2, 2**40]
    assert decode_batch(batch.body) == doc
    assert (batch.samples, batch.first_ms, batch.end_ms) == (8, 0, 1_200_000)


def test_float32_only_where_exact() -> None:
    raw = encode_msgpack(SeriesSet.from_series([(0, 0, 1000, np.array([0.5, 0.1]))]), 1, "v")
    assert raw.endswith(
        b"\xca"
        + np.float32(0.5).byteswap().tobytes()
        + b"\xcb"
        + np.float64(0.1).byteswap().tobytes()
    )


def test_a_day_of_5000_measurements_splits_under_the_limit() -> None:
    series = meter_day(5000)
    batches = encode_batches(series, "3", 1, level=3)
    assert len(batches) > 1
    assert [b.seq for b in batches] == list(range(1, len(batches) + 1))
    assert all(len(b.body) <= MAX_BODY_BYTES for b in batches)
    assert sum(b.samples for b in batches) == 5000 * 144
    seen: dict[int, list[float | int | None]] = {}
    for b in batches:
        for g in decode_batch(b.body)["groups"]:
            for m, values in zip(g["m"], g["v"], strict=True):
                seen.setdefault(m, []).extend(values)
    assert len(seen) == 5000
    original = {m: v for m, _, _, v in series.to_list()}
    for m in (0, 9, 4321):
        got = np.array([math.nan if x is None else x for x in seen[m]], dtype=np.float64)
        np.testing.assert_array_equal(got, original[m].astype(np.float64))


def test_deterministic_output() -> None:
    a = [b.body for b in encode_batches(meter_day(200), "v", 1)]
    b = [b.body for b in encode_batches(meter_day(200), "v", 1)]
    assert a == b


def group(t0: int, dt: int, m: list[int], v: list[list[object]]) -> dict[str, object]:
    return {"t0": t0, "dt": dt, "m": m, "v": v}


def batch_doc(groups: list[dict[str, object]], v: int = 1) -> dict[str, object]:
    return {"v": v, "seq": 1, "config_version": "x", "groups": groups}


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ([1, 2], "not a map"),
        ({"v": 1, "seq": 1, "groups": []}, "config_version"),
        (batch_doc([], v=2), "version"),
        (batch_doc([group(0, 1, [0, 1], [[1.0], [1.0, 2.0]])]), "has 2 samples"),
        (batch_doc([group(0, 1, [0, 0], [[1.0], [2.0]])]), "twice"),
        (batch_doc([group(0, 10, [0], [[1.0, 2.0]]), group(10, 10, [0], [[3.0]])]), "overlapping"),
        (batch_doc([group(0, 1, [0], [["a"]])]), "not a number"),
        (batch_doc([group(0, 0, [0], [[1.0]])]), "dt must be positive"),
        (batch_doc([group(0, 1, [-1], [[1.0]])]), "not an index"),
    ],
)
def test_malformed_batches_are_rejected_with_a_reason(doc: object, reason: str) -> None:
    with pytest.raises(BatchError, match=reason):
        decode_batch(zstandard.ZstdCompressor().compress(msgpack.packb(doc)))


def test_not_zstd_is_rejected() -> None:
    with pytest.raises(BatchError, match="zstd"):
        decode_batch(b"garbage")


finite = st.floats(allow_nan=False, allow_infinity=False)
series_strategy = st.lists(
    st.tuples(
        st.integers(0, 1_000_000),  # t0 in periods
        st.sampled_from([1000, 60_000, 600_000]),
        st.one_of(
            st.lists(st.one_of(finite, st.just(math.nan)), min_size=1, max_size=40).map(
                lambda v: np.array(v, np.float64)
            ),
            st.lists(st.integers(-(2**63) + 1, 2**63 - 1), min_size=1, max_size=40).map(
                lambda v: np.array(v, np.int64)
            ),
        ),
    ),
    max_size=30,
)


@settings(max_examples=80, deadline=None)
@given(
    items=series_strategy,
    max_bytes=st.integers(300, 5000),
    first_seq=st.integers(1, 2**40),
)
def test_encode_decode_returns_the_same_series(
    items: list[tuple[int, int, np.ndarray]],
    max_bytes: int,
    first_seq: int,
) -> None:
    series = SeriesSet.from_series(
        [(m, k * dt, dt, values) for m, (k, dt, values) in enumerate(items)]
    )
    batches = encode_batches(series, "cfg", first_seq, max_bytes=max_bytes, level=3)
    assert all(len(b.body) <= max_bytes for b in batches)
    assert [b.seq for b in batches] == list(range(first_seq, first_seq + len(batches)))
    got: dict[int, dict[int, object]] = {}
    for b in batches:
        doc = decode_batch(b.body)
        assert doc == independent_decode(b.body)
        for g in doc["groups"]:
            for m, values in zip(g["m"], g["v"], strict=True):
                for j, v in enumerate(values):
                    t = g["t0"] + j * g["dt"]
                    assert t not in got.setdefault(m, {}), "no sample sent twice"
                    got[m][t] = v
    for m, (k, dt, values) in enumerate(items):
        expected = {}
        for j, v in enumerate(values.tolist()):
            if (isinstance(v, float) and math.isnan(v)) or (
                values.dtype == np.int64 and v == np.iinfo(np.int64).min
            ):
                expected[(k + j) * dt] = None
            else:
                expected[(k + j) * dt] = v
        assert got.get(m, {}) == expected


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_decoding_arbitrary_bytes_never_crashes(data: bytes) -> None:
    for body in (data, zstandard.ZstdCompressor().compress(data)):
        with contextlib.suppress(BatchError):
            decode_batch(body)
