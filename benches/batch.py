"""Batch encoding (spec §7): speed, and bytes per sample on the wire.

- ``encode_day_5000``: one day of 10-minute samples for 5,000 measurements
  (720,000 samples), drained from the sample rings and encoded as a batch's
  MessagePack map, against msgpack-python packing the same data (its lists
  built from the same arrays) in the same run.
- ``batch_bytes_per_sample``: that day cut into batches of at most 256,000
  bytes at the gateway's zstd level, as a backlog is sent; against the same
  samples packed by msgpack-python (float64) and compressed by zstandard at
  its default level 3, the way a Python gateway would. Also the hourly
  publication case (six samples per series per batch), where small batches
  cost more.
"""

from __future__ import annotations

import math

import msgpack
import numpy as np
import zstandard

from benches._harness import Record, median_seconds, record
from panelfast import DEFAULT_LEVEL, SampleRing, encode_batches, encode_msgpack

MEASUREMENTS = 5000
PERIOD_MS = 600_000
PER_DAY = 144
T0 = 1_795_000_000_000 - 1_795_000_000_000 % PERIOD_MS


def meter_day(seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Realistic readings, shape (instants, measurements): noisy float32 levels
    (voltages, currents, powers, power factors), rising int64 energy counters
    (one measurement in ten), and a few nils."""
    rng = np.random.default_rng(seed)
    level = rng.choice([230.0, 400.0, 50.0, 0.95, 120.0, 35_000.0], MEASUREMENTS)
    noise = rng.normal(0, 0.004, (PER_DAY, MEASUREMENTS)) * level
    floats = (level + noise).astype(np.float32).astype(np.float64)
    is_int = np.arange(MEASUREMENTS) % 10 == 9
    steps = rng.integers(200, 5_000, (PER_DAY, MEASUREMENTS))
    ints = (rng.integers(10**6, 10**9, MEASUREMENTS) + np.cumsum(steps, axis=0)).astype(np.int64)
    valid = rng.random((PER_DAY, MEASUREMENTS)) > 0.001
    return np.where(is_int, 0.0, floats), np.where(is_int, ints, 0), valid


def fill_ring(floats: np.ndarray, ints: np.ndarray, valid: np.ndarray) -> SampleRing:
    kinds = ["int" if m % 10 == 9 else "float" for m in range(MEASUREMENTS)]
    ring = SampleRing(kinds, [PERIOD_MS] * MEASUREMENTS, capacity=PER_DAY)  # type: ignore[arg-type]
    indices = np.arange(MEASUREMENTS)
    for j in range(PER_DAY):
        ring.append(T0 + j * PERIOD_MS, indices, floats[j], ints[j], valid[j])
    return ring


def python_batch(
    floats: np.ndarray, ints: np.ndarray, valid: np.ndarray, rows: slice = slice(None)
) -> dict[str, object]:
    """The same batch as a Python gateway builds it: lists from the arrays, nil for invalid."""
    t0 = T0 + (rows.start or 0) * PERIOD_MS
    values = []
    for m in range(MEASUREMENTS):
        column = (ints if m % 10 == 9 else floats)[rows, m].tolist()
        ok = valid[rows, m].tolist()
        values.append([v if k else None for v, k in zip(column, ok, strict=True)])
    group = {"t0": t0, "dt": PERIOD_MS, "m": list(range(MEASUREMENTS)), "v": values}
    return {"v": 1, "seq": 1, "config_version": "1", "groups": [group]}


def run() -> list[Record]:
    floats, ints, valid = meter_day()
    samples = MEASUREMENTS * PER_DAY

    # Both encoders produce the same document (ours with float32 where exact).
    ours_doc = msgpack.unpackb(encode_msgpack(fill_ring(floats, ints, valid).drain(), 1, "1"))
    theirs_doc = python_batch(floats, ints, valid)
    ours_v, theirs_v = ours_doc["groups"][0]["v"], theirs_doc["groups"][0]["v"]  # type: ignore[index]
    assert ours_v[9] == theirs_v[9]
    assert all(
        (a is None and b is None) or math.isclose(a, b, rel_tol=1e-7)
        for a, b in zip(ours_v[0], theirs_v[0], strict=True)
    )

    # A fresh ring for each run (filled untimed); the previous one is freed
    # in the setup too, so the timing holds the drain and the encoding only.
    rings: list[SampleRing] = [fill_ring(floats, ints, valid)]

    def refill() -> None:
        rings[0] = fill_ring(floats, ints, valid)

    t_ours = median_seconds(
        lambda: encode_msgpack(rings[0].drain(), 1, "1"), setup=refill, repeat=15
    )
    t_theirs = median_seconds(lambda: msgpack.packb(python_batch(floats, ints, valid)), repeat=5)
    records = [
        record("encode_day_5000", "samples/s", samples / t_ours,
               "msgpack-python (lists from the arrays)", samples / t_theirs, "higher"),
    ]  # fmt: skip

    # Bytes per sample, as a backlog: the day in batches of <= 256,000 bytes.
    day = fill_ring(floats, ints, valid).drain()
    batches = encode_batches(day, "1", 1, level=DEFAULT_LEVEL)
    ours_bps = sum(len(b.body) for b in batches) / samples
    zstd3 = zstandard.ZstdCompressor(level=3)
    theirs_bps = len(zstd3.compress(msgpack.packb(python_batch(floats, ints, valid)))) / samples
    records.append(
        record("batch_bytes_per_sample", "bytes/sample", ours_bps,
               "msgpack-python float64 + zstandard level 3", theirs_bps, "lower")
    )  # fmt: skip

    # Hourly publication: six 10-minute samples per series in each batch.
    ours_bytes = theirs_bytes = 0
    ring = fill_ring(floats, ints, valid)
    for hour in range(PER_DAY // 6):
        until = T0 + (hour + 1) * 6 * PERIOD_MS
        for b in encode_batches(ring.drain(until_ms=until), "1", 1 + hour, level=DEFAULT_LEVEL):
            ours_bytes += len(b.body)
        doc = python_batch(floats, ints, valid, slice(hour * 6, hour * 6 + 6))
        theirs_bytes += len(zstd3.compress(msgpack.packb(doc)))
    records.append(
        record("batch_bytes_per_sample_hourly", "bytes/sample", ours_bytes / samples,
               "msgpack-python float64 + zstandard level 3", theirs_bytes / samples, "lower")
    )  # fmt: skip
    return records
