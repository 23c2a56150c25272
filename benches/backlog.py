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
    seconds from the first batch to the last acknowledgement of a whole month
    (30 days, 21.6 million samples, measured, not extrapolated). Target: ≤ 60 s.

    The reference cloud decodes and checks every batch and stores its samples
    in SQLite (a row per group) before it acknowledges, so its ingestion is
    part of that time; the gateway's own part is measured separately:
    ``backlog_month_gateway_cpu_s`` is the CPU time of this process (the
    publisher: sealing batches, TLS, recording acknowledgements) during the
    delivery, and the printed line gives the cloud process's CPU time over the
    same interval. Compaction numbered the outbox's batches as they are sent,
    so sealing one is a copy, not an encoding; with one batch in flight, the
    wall time is about the sum of both sides' time per batch.

backlog_month_instants_on_time
    Sampling stays on time meanwhile: on the publisher's event loop (as in the
    gateway) a loop takes every whole second's instant into a ring (500
    points), deciding which instants are due with the gateway's own
    :class:`panelfast.sampling.Instants`: an instant the loop did not take
    within its own second is *missed* (the gateway takes it as nil). Ours:
    the share of the delivery's instants taken within their second; target
    100 %. The printed line says how late the latest one was taken.

Filling the outbox with the month (generating the readings, adding them an
hour at a time, compacting them to batches at zstd 19) takes about 45 s on
the shared 2-core machine, before the delivery is timed.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
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
from panelfast.sampling import Instants

MONTH_DAYS = 30
HOURS_PER_DAY = 24
TARGET_DELIVERY_S = 60.0
#: The delivery takes some 10 to 20 s: a point every 2 s shows the rate by thirds.
PROGRESS_S = 2.0
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


async def sampling_instants(instants: Instants, late: list[float]) -> None:
    """The gateway's sampling loop, on the publisher's event loop: take each whole
    second's instant (500 points into a ring) as it comes; how late each was taken."""
    points = 500
    ring = SampleRing(["float"] * points, [1000] * points, 3600)
    local = np.arange(points, dtype=np.int64)
    values, integers, valid = (
        np.full(points, 230.0),
        np.zeros(points, np.int64),
        np.ones(points, bool),
    )
    while True:
        now_ms = int(time.time() * 1000)
        _, instant = instants.due(now_ms)
        if instant is None:
            await asyncio.sleep(instants.wait_s(now_ms))
            continue
        ring.append(instant, local, values, integers, valid)
        late.append(time.time() - instant / 1000)
        if ring.stats().pending >= 10:
            ring.drain()  # as the gateway flushes every 10 s


async def progress(
    acked: Callable[[], int], cloud: psutil.Process, trace: list[tuple[float, ...]]
) -> None:
    """Every ``PROGRESS_S``: seconds since the start, batches at the cloud, both sides'
    CPU seconds."""
    ours, start = psutil.Process(), time.perf_counter()
    while True:
        at_cloud = await asyncio.to_thread(acked)
        trace.append((time.perf_counter() - start, at_cloud, cpu_s(ours), cpu_s(cloud)))
        await asyncio.sleep(PROGRESS_S)


def thirds(trace: list[tuple[float, ...]]) -> str:
    """Batches per second and each side's share of a core, over each third of the delivery:
    whether the rate holds as the cloud's tables grow and the outbox empties."""
    if len(trace) < 4:
        return "too short to split"
    parts = []
    for k in range(3):
        a, b = trace[k * (len(trace) - 1) // 3], trace[(k + 1) * (len(trace) - 1) // 3]
        dt = b[0] - a[0]
        parts.append(
            f"{(b[1] - a[1]) / dt:.1f} batches/s (gateway {100 * (b[2] - a[2]) / dt:.0f} %, "
            f"cloud {100 * (b[3] - a[3]) / dt:.0f} % of a core)"
        )
    return "; ".join(parts)


async def deliver(
    settings: Any, outbox: Outbox, cloud: psutil.Process, acked: Callable[[], int]
) -> dict[str, Any]:
    """Send the whole outbox: wall time, CPU time of both sides, samples and batches."""
    session = CloudSession(settings)
    try:
        await session.connect()
        publisher = Publisher(outbox, session.hub)
        first_seq = outbox.stats().next_seq
        ours, theirs = psutil.Process(), cloud
        cpu_ours, cpu_theirs = cpu_s(ours), cpu_s(theirs)
        late: list[float] = []
        instants = Instants()
        trace: list[tuple[float, ...]] = []
        ticking = asyncio.create_task(sampling_instants(instants, late))
        watching = asyncio.create_task(progress(acked, cloud, trace))
        start = time.perf_counter()
        try:
            sent = await publisher.publish_data()
        finally:
            ticking.cancel()
            watching.cancel()
        took = time.perf_counter() - start
        return {
            "delivery_s": took,
            "gateway_cpu_s": cpu_s(ours) - cpu_ours,
            "cloud_cpu_s": cpu_s(theirs) - cpu_theirs,
            "sent": sent,
            "batches": outbox.stats().next_seq - first_seq,
            "instants": len(late),
            "missed": instants.missed_total,
            "late_max_ms": 1000 * max(late, default=0.0),
            "thirds": thirds(trace),
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


def measure(folder: Path, days: int) -> dict[str, Any]:
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

            def at_cloud() -> int:
                return len(system.operator.batches(SERIAL))

            result = asyncio.run(deliver(system.settings, outbox, cloud, at_cloud))
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
        r = measure(Path(d), MONTH_DAYS)
    due = r["instants"] + r["missed"]
    print(
        f"   ({MONTH_DAYS} days: {r['samples']:,.0f} samples in {r['batches']:.0f} batches, "
        f"{r['bytes_per_sample'] * r['samples'] / 1e6:.0f} MB in the outbox, filled in "
        f"{r['fill_s']:.0f} s; delivered in {r['delivery_s']:.1f} s, the gateway using "
        f"{r['gateway_cpu_s']:.1f} s of CPU and the reference cloud {r['cloud_cpu_s']:.1f} s; "
        f"{due:.0f} sampling instants meanwhile, {r['missed']:.0f} missed, the latest taken "
        f"{r['late_max_ms']:.0f} ms late)\n   (by thirds of the delivery: {r['thirds']})"
    )
    return [
        record("outbox_bytes_per_sample", "bytes/sample", r["bytes_per_sample"],
               "msgpack-python float64 + zstandard level 3", python_bytes_per_sample(), "lower"),
        record("backlog_month_delivery_s", "s (30 days, 21.6M samples)", r["delivery_s"],
               f"target (<= {TARGET_DELIVERY_S:.0f} s)", TARGET_DELIVERY_S, "lower"),
        record("backlog_month_gateway_cpu_s", "CPU s (30 days)", r["gateway_cpu_s"],
               f"target delivery time ({TARGET_DELIVERY_S:.0f} s)", TARGET_DELIVERY_S, "lower"),
        record("backlog_month_instants_on_time", "% of instants taken in their second",
               100 * r["instants"] / max(due, 1), "target (100 %)", 100.0, "higher"),
    ]  # fmt: skip
