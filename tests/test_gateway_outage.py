"""The whole gateway when the cloud goes away, refuses its configuration, or the disk fills.

Each test runs a real gateway (``Gateway``, in this process) against the
embedded system: the reference cloud over HTTPS on loopback and the device
simulator over Modbus TCP. What is checked is what reaches the cloud's
storage and what the gateway's outbox file holds.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

import numpy as np

from panelfast import SeriesSet
from panelfast.embedded import EmbeddedSystem, embedded_system
from panelfast.gateway import Gateway
from panelfast.outbox import Outbox
from panelfast.refcloud import RefCloud
from reliability_support import (
    MEASUREMENTS,
    backlog_cli,
    by_measurement,
    config_document,
    data_conflicts,
    eventually,
    holes,
    names_of,
    outbox_instants,
)
from waiting import PATIENCE_S

NAMES = [f"{d}/{m}" for d, m in MEASUREMENTS]


async def start_publishing(
    system: EmbeddedSystem, gateway: Gateway, document: dict[str, Any]
) -> str:
    """Connect, publish the topology, issue ``document``; returns its version once applied."""
    await gateway.connect()
    await gateway.publish_topology()
    version: str = system.cloud.set_config(system.serial, document)["version"]
    await eventually(
        lambda: gateway.status().remote_config.applied_version == version,
        PATIENCE_S,
        f"configuration {version} applied",
    )
    return version


def contiguous(times: list[int]) -> bool:
    return not holes(times, 1000)


async def test_cloud_outage_backlog_delivered_in_order_once(tmp_path: Path) -> None:
    """The cloud goes down for several publication periods and comes back on
    the same port and state: what was sampled meanwhile arrives, in order, once,
    and sampling never paused."""
    with embedded_system(tmp_path) as system, data_conflicts() as conflicts:
        serial = system.serial
        cloud: RefCloud = system.cloud
        async with Gateway(system.settings) as gateway:
            await start_publishing(system, gateway, config_document(publisher_period_s=1))
            await eventually(lambda: cloud.last_seq(serial) >= 3, PATIENCE_S, "data flows")
            port = cloud.ports["hub"]
            await asyncio.to_thread(cloud.stop)
            down_ms = time.time() * 1000
            left = gateway.backlog().samples_left
            await eventually(
                lambda: gateway.backlog().samples_left >= left + 6 * len(NAMES),
                PATIENCE_S,
                "six more instants sampled without a cloud",
            )
            cloud = RefCloud(tmp_path / "cloud", port=port)
            await asyncio.to_thread(cloud.start)
            up_ms = time.time() * 1000
            try:

                def delivered() -> bool:
                    series = by_measurement(cloud.sample_counts(serial))
                    return len(series) == len(NAMES) and all(
                        ts[-1] > up_ms + 2000 for ts in series.values()
                    )

                await eventually(
                    delivered, 2 * PATIENCE_S, "the backlog of the outage reaches the cloud"
                )
                counts = cloud.sample_counts(serial)
                stored = cloud.state.storage.series(cloud.device_id(serial))
            finally:
                await asyncio.to_thread(cloud.stop)

    assert not conflicts, conflicts
    assert all(n == 1 for n in counts.values()), "a sample stored twice"
    series = by_measurement(counts)
    for name in NAMES:
        times = series[name]
        assert times[0] < down_ms - 1000
        assert times[-1] > up_ms + 2000
        assert contiguous(times), f"{name}: samples missing: {holes(times, 1000)}"
    # In order: each measurement's samples, taken batch after batch, go forward in time.
    for name in NAMES:
        spans = sorted(
            (s.seq, s.t0, s.t0 + (len(s.values) - 1) * s.dt)
            for s in stored
            if f"{s.device}/{s.measurement}" == name and s.values
        )
        for (_, _, end), (_, start, _) in itertools.pairwise(spans):
            assert start > end, f"{name}: batches out of time order: {spans}"


async def test_rejected_configuration_holds_publication_sampling_goes_on(tmp_path: Path) -> None:
    """§6: an invalid configuration is rejected whole and reported with its
    error paths; no data is published while it is the last one received, yet
    sampling under the applied configuration goes on, and all of it is
    published once a valid configuration arrives."""
    with embedded_system(tmp_path) as system:
        cloud, serial = system.cloud, system.serial
        async with Gateway(system.settings) as gateway:
            first = await start_publishing(
                system, gateway, config_document(MEASUREMENTS[:2], publisher_period_s=1)
            )
            await eventually(lambda: cloud.last_seq(serial) >= 1, PATIENCE_S, "data flows")

            invalid = config_document(MEASUREMENTS[:2], publisher_period_s=1)
            invalid["measurements"].append(
                {"device": "mb-1", "measurement": "NoSuchThing", "period_s": 1}
            )
            invalid["measurements"][1]["period_s"] = 0
            rejected = cloud.set_config(serial, invalid)["version"]
            await eventually(
                lambda: any(r["version"] == rejected for r in cloud.reports(serial)),
                PATIENCE_S,
                "the rejection is reported",
            )
            report = next(r for r in cloud.reports(serial) if r["version"] == rejected)
            assert report["status"] == "rejected"
            paths = {e["path"] for e in report["errors"]}
            assert paths == {"measurements[1].period_s", "measurements[2].measurement"}
            status = gateway.status().remote_config
            assert (status.valid, status.applied_version, status.received_version) == (
                False,
                first,
                rejected,
            )
            assert {p for p, _ in status.errors} == paths

            # A publication under way when the rejection came may still land;
            # none starts after it.
            await eventually(
                lambda: not gateway.publisher.sending, PATIENCE_S, "the last publication ended"
            )
            held_seq = cloud.last_seq(serial)
            held_from_ms = time.time() * 1000
            waiting = gateway.backlog().samples_left
            await eventually(
                lambda: gateway.backlog().samples_left >= waiting + 2 * 5,
                PATIENCE_S,
                "five more instants sampled (five publication periods)",
            )
            assert cloud.last_seq(serial) == held_seq, "data published under a rejected config"
            held_to_ms = time.time() * 1000
            held_back = gateway.backlog().samples_left

            second = cloud.set_config(
                serial, config_document(MEASUREMENTS[:3], publisher_period_s=1)
            )["version"]
            await eventually(
                lambda: gateway.status().remote_config.applied_version == second,
                PATIENCE_S,
                "the valid configuration is applied",
            )

            def under(version: str) -> dict[str, list[int]]:
                return by_measurement(
                    (f"{s.device}/{s.measurement}", s.t0 + j * s.dt)
                    for s in cloud.state.storage.series(cloud.device_id(serial))
                    if s.config_version == version
                    for j in range(len(s.values))
                )

            await eventually(
                lambda: NAMES[2] in under(second) and gateway.backlog().samples_left < held_back,
                PATIENCE_S,
                "the samples held back are published",
            )
            counts = cloud.sample_counts(serial)
            held = under(first)
            reports = [r["status"] for r in cloud.reports(serial)]
            status = gateway.status().remote_config

    assert status.valid is True
    assert status.errors == ()
    assert reports == ["applied", "rejected", "applied"]
    assert all(n == 1 for n in counts.values())
    for name in NAMES[:2]:
        times = held[name]
        assert contiguous(times), f"{name}: samples missing under {first}: {holes(times, 1000)}"
        # Sampled under the applied configuration until the valid one took over.
        assert times[-1] > held_to_ms - 1500, "sampling under the applied configuration stopped"
        assert times[0] < held_from_ms
        # ... and carried on under the new configuration without a gap.
        assert contiguous(sorted(t for n, t in counts if n == name))


def old_samples(first_ms: int, count: int, seed: int) -> SeriesSet:
    """``count`` one-second instants of :data:`MEASUREMENTS` from ``first_ms``,
    as a long outage would have left them (noisy readings, a counter)."""
    rng = np.random.default_rng(seed)
    return SeriesSet.from_series(
        [
            (0, first_ms, 1000, rng.normal(230, 2, count)),
            (1, first_ms, 1000, rng.normal(40, 5, count)),
            (2, first_ms, 1000, np.arange(count, dtype=np.int64) + 10**6 + seed * count),
            (3, first_ms, 1000, rng.normal(3, 0.5, count)),
        ]
    )


def fill_to_the_brim(path: Path, quota_bytes: int, version: str, first_ms: int) -> int:
    """Fill the outbox with old samples until the next chunk needs a page over
    the quota; returns the instant after the last one stored.

    The gateway cannot sample fast enough to fill even 1 MB within a test (a
    configuration allows 500 samples a minute), so the backlog of a long
    outage is written here, through the outbox itself, oldest first.
    """
    outbox = Outbox(path, quota_bytes=10**9)  # no quota while filling
    t = first_ms
    try:
        while outbox.stats().bytes_used < quota_bytes - 40_000:
            outbox.add_samples(old_samples(t, 600, seed=t // 1000), version)
            t += 600_000
        while True:  # then one instant at a time, to the last byte of the last page
            outbox.add_samples(old_samples(t, 1, seed=t // 1000), version)
            if outbox.stats().bytes_used > quota_bytes:
                break
            t += 1000
    finally:
        outbox.close()
    # The last instant took a new page over the quota: take it back out.
    db = sqlite3.connect(path)
    with db:
        db.execute("DELETE FROM chunk WHERE id = (SELECT max(id) FROM chunk)")
    db.close()
    return t


async def test_disk_quota_drops_oldest_counted_shown_sampling_goes_on(tmp_path: Path) -> None:
    """A 1 MB outbox, full, while the gateway is offline: the oldest samples
    are dropped and counted (status, ``panelfast backlog``), and the gateway
    keeps running and sampling."""
    quota = 1_000_000
    with embedded_system(tmp_path, storage={"quota_mb": 1}) as system:
        outbox_path = system.settings.storage.dir / "outbox.sqlite"
        async with Gateway(system.settings) as gateway:
            version = await start_publishing(system, gateway, config_document(publisher_period_s=1))
            await gateway.disconnect()  # offline from here on
        names = {version: NAMES}
        # The few samples taken between the configuration and Disconnect are
        # the oldest in the outbox; the outage's backlog comes after them.
        left = outbox_instants(outbox_path, names)
        old_first = (int(time.time()) - 12 * 3600) * 1000
        old_end = fill_to_the_brim(outbox_path, quota, version, old_first)
        before = outbox_instants(outbox_path, names)
        stored_first = sorted(set(before) - set(left), key=lambda i: i[1])
        assert stored_first[0][1] == old_first
        assert stored_first[-1][1] < old_end
        assert Outbox(outbox_path, quota_bytes=quota).stats().bytes_used <= quota

        async with Gateway(system.settings) as gateway:
            assert gateway.status().backlog.dropped_samples == 0
            started_ms = time.time() * 1000
            await eventually(
                lambda: gateway.status().backlog.dropped_samples > 0,
                PATIENCE_S,
                "the outbox reaches its quota and drops",
            )
            while True:  # a consistent pair: no flush in between
                dropped = gateway.status().backlog.dropped_samples
                after = outbox_instants(outbox_path, names)
                if gateway.status().backlog.dropped_samples == dropped:
                    break
            cli = await asyncio.to_thread(backlog_cli, system.config_path)
            newest = max(t for _, t in after)
            await eventually(
                lambda: max(t for _, t in outbox_instants(outbox_path, names)) >= newest + 2000,
                PATIENCE_S,
                "sampling goes on into the full outbox",
            )
            later = outbox_instants(outbox_path, names)
            status = gateway.status()

    found = re.search(r"^Dropped \(disk quota\):\s+([\d,]+)$", cli, re.M)
    assert found, cli
    shown = int(found[1].replace(",", ""))
    assert dropped <= shown <= status.backlog.dropped_samples, cli
    gone = set(before) - set(after)
    assert len(gone) == dropped, "every dropped sample is counted, and only those"
    # Oldest first: what the outbox held before the backlog, then the backlog's oldest.
    assert set(left) <= gone
    old_gone = sorted(t for _, t in gone - set(left))
    old_kept = sorted(t for name, t in after if (name, t) in before and (name, t) not in left)
    assert old_gone, "the backlog itself was cut"
    assert old_gone[-1] < old_kept[0]
    # Still sampling, into the outbox, after the drop.
    assert newest > started_ms
    assert max(t for _, t in later) >= newest + 2000
    fresh = by_measurement(i for i in later if i[1] > started_ms)
    assert set(fresh) == set(NAMES)
    assert all(contiguous(ts) for ts in fresh.values())
    assert status.remote_config.applied_version == version


async def test_applied_configuration_in_force_at_restart_without_cloud(tmp_path: Path) -> None:
    """The applied configuration is stored: a gateway restarted while its cloud
    is down samples under it from the start, into the outbox."""
    with embedded_system(tmp_path) as system:
        cloud = system.cloud
        document = config_document(MEASUREMENTS[:2], publisher_period_s=1)
        async with Gateway(system.settings) as gateway:
            version = await start_publishing(system, gateway, document)
            await eventually(lambda: cloud.last_seq(system.serial) >= 1, PATIENCE_S, "data flows")
        await asyncio.to_thread(cloud.stop)

        outbox_path = system.settings.storage.dir / "outbox.sqlite"
        restarted = Gateway(system.settings)
        assert restarted.status().remote_config.applied_version == version
        names = {version: names_of(document)}

        def sampled_since_start() -> dict[str, list[int]]:
            return by_measurement(
                i for i in outbox_instants(outbox_path, names) if i[1] > started_ms
            )

        async with restarted as gateway:
            started_ms = time.time() * 1000
            remote = gateway.status().remote_config
            await eventually(
                lambda: (
                    all(len(ts) >= 3 for ts in sampled_since_start().values())
                    and len(sampled_since_start()) == 2
                ),
                PATIENCE_S,
                "three instants of each measurement in the outbox",
            )
            stopping_ms = time.time() * 1000
        # Stopped cleanly: what was sampled is in the outbox, waiting for the cloud.
        fresh = sampled_since_start()

    assert (remote.applied_version, remote.measurements, remote.publisher_period_s) == (
        version,
        2,
        1,
    )
    assert set(fresh) == {f"{d}/{m}" for d, m in MEASUREMENTS[:2]}
    for times in fresh.values():
        assert len(times) >= 3
        assert contiguous(times)
        # Sampled to the end: the instants before the stop (on a loaded
        # machine the sampling loop may wake a little late) are kept.
        assert times[-1] > stopping_ms - 3000
        # At once, not waiting for the cloud (which never comes back).
        assert times[0] < started_ms + 5000, "sampling began at once, without the cloud"
