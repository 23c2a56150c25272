"""A month offline at the product ceiling: how much disk it takes, how fast it goes.

The load: 5,000 measurements sampled every 10 minutes (500 samples per
minute, the configuration's ceiling). Realistic readings: noisy float32
levels (voltages, currents, powers, power factors), rising int64 energy
counters (one measurement in ten), a few nils; see
:func:`benches.batch.meter_day`, one independent day per seed.

outbox_bytes_per_sample
    The samples go into the outbox as an offline gateway puts them: drained
    from the sample rings and added with ``Outbox.add_samples`` (an hour at a
    time here, where the gateway flushes every 10 s: the same chunks once
    compacted), ``Outbox.compact()`` after each, as the gateway's compaction
    loop does while the cloud is unreachable. Ours: the outbox file's live
    bytes (SQLite pages in use, overhead included) per sample. Target ≤ 3
    (a month in about 70 MB). Baseline: one day of the same samples packed by
    msgpack-python (float64) and compressed by zstandard at its default level
    3, as a Python gateway would store them.

backlog_month_delivery_s
    Then the gateway's :class:`panelfast.publisher.Publisher`, in this
    process, sends the whole backlog to the reference cloud (its own process,
    HTTPS on loopback) the way the gateway does after an outage: one batch of
    up to 256,000 bytes in flight, sealed, sent, acknowledged, the next. Ours:
    seconds from the first batch to the last acknowledgement. Target: a month
    in under 2 minutes.

    The reference cloud decodes every batch and stores every series in SQLite
    before it acknowledges, so its ingestion is part of that time; the
    gateway's own part is measured separately: ``backlog_month_gateway_cpu_s``
    is the CPU time of this process (the publisher: sealing and encoding
    batches, TLS, recording acknowledgements) during the delivery, and the
    printed line gives the cloud process's CPU time over the same interval.
    The publisher encodes the next batch while the cloud stores the one
    before, so on an idle machine the wall time is about the larger of the two.

    Sampling stays on time meanwhile: on the publisher's event loop (as in the
    gateway) a loop wakes at every whole second and takes an instant into a
    ring, as the sampling loop does; the printed line says how late the
    latest of those instants was taken.

Scale: generating, compacting and delivering a whole month (21.6 million
samples) takes 2 to 4 minutes on the shared 2-core benchmark machine, too
much of ``make bench``'s budget next to the gateway's own benchmark; ``DAYS``
(7) days are generated and delivered, and the delivery times extrapolated to
30 days (linear: every batch costs the same, the outbox holds full batches
whatever its length). The record units say so; the printed line gives the
measured figures.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import psutil
import zstandard

from benches._gateway_support import SERIAL, bench_system, connect_and_publish_topology
from benches._harness import Record, record
from benches.batch import MEASUREMENTS, PER_DAY, PERIOD_MS, T0, fill_ring, meter_day, python_batch
from panelfast import SampleRing
from panelfast.cloud import CloudSession
from panelfast.outbox import Outbox
from panelfast.publisher import Publisher

DAYS = 7
MONTH_DAYS = 30
HOURS_PER_DAY = 24
TARGET_DELIVERY_S = 120.0
TARGET_BYTES_PER_SAMPLE = 3.0


def backlog_config(devices: tuple[str, ...], points: list[str]) -> dict[str, Any]:
    """5,000 measurements every 10 minutes: the batches' indices refer to this list."""
    pairs = [(d, p) for d in devices for p in points][:MEASUREMENTS]
    return {
        "version": "backlog-1",
        "measurements": [
            {"device": d, "measurement": p, "period_s": PERIOD_MS // 1000} for d, p in pairs
        ],
        "alarms": [],
        "publisher": {"period_s": 600},
    }


def fill_outbox(outbox: Outbox, version: str, days: int) -> int:
    """``days`` of the ceiling's samples, added an hour at a time and compacted; the count."""
    added = 0
    for day in range(days):
        floats, ints, valid = meter_day(seed=100 + day)
        ring = fill_ring(floats, ints, valid)
        for hour in range(HOURS_PER_DAY):
            until = T0 + (day * PER_DAY + (hour + 1) * PER_DAY // HOURS_PER_DAY) * PERIOD_MS
            added += outbox.add_samples(_shifted(ring, day, until), version)
            outbox.compact()
    return added


def _shifted(ring: Any, day: int, until_ms: int) -> Any:
    """The ring holds one day from T0; this hour of it, moved to ``day``."""
    from panelfast import SeriesSet

    shift = day * PER_DAY * PERIOD_MS
    series = ring.drain(until_ms=until_ms - shift)
    return SeriesSet.from_series([(m, t0 + shift, dt, v) for m, t0, dt, v in series.to_list()])


def cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


async def sampling_instants(late: list[float]) -> None:
    """The gateway's sampling loop, on the publisher's event loop: wake at each
    whole second and take the instant (500 points into a ring); how late."""
    points = 500
    ring = SampleRing(["float"] * points, [1000] * points, 3600)
    local = np.arange(points, dtype=np.int64)
    values, integers, valid = (
        np.full(points, 230.0),
        np.zeros(points, np.int64),
        np.ones(points, bool),
    )
    while True:
        instant = (time.time() // 1 + 1) * 1.0
        await asyncio.sleep(instant - time.time())
        ring.append(int(instant * 1000), local, values, integers, valid)
        late.append(time.time() - instant)
        if ring.stats().pending >= 10:
            ring.drain()  # as the gateway flushes every 10 s


async def deliver(settings: Any, outbox: Outbox, cloud: psutil.Process) -> dict[str, float]:
    """Send the whole outbox: wall time, CPU time of both sides, samples and batches."""
    session = CloudSession(settings)
    try:
        await session.connect()
        publisher = Publisher(outbox, session.hub)
        first_seq = outbox.stats().next_seq
        ours, theirs = psutil.Process(), cloud
        cpu_ours, cpu_theirs = cpu_s(ours), cpu_s(theirs)
        late: list[float] = []
        ticking = asyncio.create_task(sampling_instants(late))
        start = time.perf_counter()
        try:
            sent = await publisher.publish_data()
        finally:
            ticking.cancel()
        took = time.perf_counter() - start
        return {
            "delivery_s": took,
            "gateway_cpu_s": cpu_s(ours) - cpu_ours,
            "cloud_cpu_s": cpu_s(theirs) - cpu_theirs,
            "sent": sent,
            "batches": outbox.stats().next_seq - first_seq,
            "instants": len(late),
            "late_max_ms": 1000 * max(late, default=0.0),
        }
    finally:
        await session.aclose()


def python_bytes_per_sample() -> float:
    """One day, as msgpack-python + zstandard level 3 would store it."""
    floats, ints, valid = meter_day(seed=100)
    body = zstandard.ZstdCompressor(level=3).compress(
        msgpack.packb(python_batch(floats, ints, valid))
    )
    return len(body) / (MEASUREMENTS * PER_DAY)


def measure(folder: Path, days: int) -> dict[str, float]:
    with bench_system(folder, devices=10, points=MEASUREMENTS // 10, simulate=False) as system:
        connect_and_publish_topology(system.settings)
        config = backlog_config(system.devices, [m.id for m in system.model.measurements])
        version = str(system.operator.set_config(SERIAL, config)["version"])
        # The connected gateway's own outbox, filled as if it had been offline.
        path = system.settings.storage.dir / "outbox.sqlite"
        outbox = Outbox(path, quota_bytes=system.settings.storage.quota_mb * 1_000_000)
        try:
            start = time.perf_counter()
            samples = fill_outbox(outbox, version, days)
            fill_s = time.perf_counter() - start
            stored = outbox.stats().bytes_used
            assert system.cloud.process is not None
            cloud = psutil.Process(system.cloud.process.pid)
            result = asyncio.run(deliver(system.settings, outbox, cloud))
            left = outbox.stats().pending_samples
        finally:
            outbox.close()
        if result["sent"] != samples or left != 0:
            raise RuntimeError(f"delivered {result['sent']} of {samples} samples, {left} left")
        at_cloud = len(system.operator.batches(SERIAL))  # light: no sample is read back
        if at_cloud != result["batches"]:
            raise RuntimeError(f"the cloud holds {at_cloud} batches, {result['batches']} were sent")
    return {"samples": samples, "fill_s": fill_s, "bytes_per_sample": stored / samples, **result}


def run() -> list[Record]:
    with tempfile.TemporaryDirectory(prefix="bench-backlog-") as d:
        r = measure(Path(d), DAYS)
    scale = MONTH_DAYS / DAYS
    month_mb = r["bytes_per_sample"] * 500 * 43_200 / 1e6
    print(
        f"   ({DAYS} days measured: {r['samples']:,.0f} samples in {r['batches']:.0f} batches, "
        f"outbox filled in {r['fill_s']:.0f} s; delivered in {r['delivery_s']:.1f} s, the "
        f"gateway using {r['gateway_cpu_s']:.1f} s of CPU and the reference cloud "
        f"{r['cloud_cpu_s']:.1f} s; a month would be {month_mb:.0f} MB in the outbox; "
        f"{r['instants']:.0f} sampling instants meanwhile, the latest "
        f"{r['late_max_ms']:.0f} ms late)"
    )
    return [
        record("outbox_bytes_per_sample", "bytes/sample", r["bytes_per_sample"],
               "msgpack-python float64 + zstandard level 3", python_bytes_per_sample(), "lower"),
        record("backlog_month_delivery_s", "s (30 days, extrapolated)", r["delivery_s"] * scale,
               "target (< 120 s)", TARGET_DELIVERY_S, "lower"),
        record("backlog_month_gateway_cpu_s", "CPU s (30 days, extrapolated)",
               r["gateway_cpu_s"] * scale, "target (< 120 s)", TARGET_DELIVERY_S, "lower"),
    ]  # fmt: skip
