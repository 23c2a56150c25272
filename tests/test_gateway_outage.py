"""The whole gateway when the cloud goes away, refuses its configuration, or the disk fills.

Each test runs a real gateway (``Gateway``, in this process) against the
embedded system: the reference cloud over HTTPS on loopback and the device
simulator over Modbus TCP. What is checked is what reaches the cloud's
storage and what the gateway's outbox file holds.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path
from typing import Any

from gateway_support import (
    MEASUREMENTS,
    by_measurement,
    config_document,
    data_conflicts,
    eventually,
    holes,
)
from panelfast.embedded import EmbeddedSystem, embedded_system
from panelfast.gateway import Gateway
from panelfast.refcloud import RefCloud

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
        15,
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
            await eventually(lambda: cloud.last_seq(serial) >= 3, 15, "data flows")
            port = cloud.ports["hub"]
            await asyncio.to_thread(cloud.stop)
            down_ms = time.time() * 1000
            await asyncio.sleep(6)  # six publication periods without a cloud
            assert gateway.backlog().samples_left > 0
            cloud = RefCloud(tmp_path / "cloud", port=port)
            await asyncio.to_thread(cloud.start)
            up_ms = time.time() * 1000
            try:

                def delivered() -> bool:
                    series = by_measurement(cloud.sample_counts(serial))
                    return len(series) == len(NAMES) and all(
                        ts[-1] > up_ms + 2000 for ts in series.values()
                    )

                await eventually(delivered, 40, "the backlog of the outage reaches the cloud")
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
            await eventually(lambda: cloud.last_seq(serial) >= 1, 15, "data flows")

            invalid = config_document(MEASUREMENTS[:2], publisher_period_s=1)
            invalid["measurements"].append(
                {"device": "mb-1", "measurement": "NoSuchThing", "period_s": 1}
            )
            invalid["measurements"][1]["period_s"] = 0
            rejected = cloud.set_config(serial, invalid)["version"]
            await eventually(
                lambda: any(r["version"] == rejected for r in cloud.reports(serial)),
                10,
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

            # A batch already on its way when the rejection came may still land.
            await asyncio.sleep(1.5)
            held_seq = cloud.last_seq(serial)
            held_from_ms = time.time() * 1000
            waiting = gateway.backlog().samples_left
            await asyncio.sleep(5)  # five publication periods
            assert cloud.last_seq(serial) == held_seq, "data published under a rejected config"
            assert gateway.backlog().samples_left >= waiting + 2 * 4, "sampling stopped"
            held_to_ms = time.time() * 1000

            second = cloud.set_config(
                serial, config_document(MEASUREMENTS[:3], publisher_period_s=1)
            )["version"]
            await eventually(
                lambda: gateway.status().remote_config.applied_version == second,
                10,
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
                lambda: NAMES[2] in under(second) and gateway.backlog().samples_left < waiting,
                15,
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
