"""The gateway end to end: simulator → gateway → reference cloud, over real sockets and TLS."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from panelfast.cloud import CloudSession, RetryPolicy
from panelfast.config import Settings
from panelfast.embedded import EmbeddedSystem, embedded_system
from panelfast.gateway import Gateway
from waiting import eventually

MEASURED = ["VoltageAN", "CurrentA", "ActivePower", "ActiveEnergyDelivered"]
CONFIG = {
    "version": "1",
    "measurements": [
        *({"device": "mb-1", "measurement": m, "period_s": 1} for m in MEASURED),
        {"device": "mb-2", "measurement": "ActivePower", "period_s": 2},
    ],
    "alarms": [
        {"id": "v-high", "device": "mb-1", "measurement": "VoltageAN", "condition": "over",
         "threshold": 100.0, "hysteresis": 1.0, "delay_s": 1},
    ],
    "publisher": {"period_s": 2},
}  # fmt: skip


@pytest.fixture
def system(tmp_path: Path) -> Iterator[EmbeddedSystem]:
    with embedded_system(tmp_path, poll_period_ms=200) as s:
        yield s


def instants_at_the_cloud(system: EmbeddedSystem) -> dict[str, int]:
    """How many instants of each measurement the cloud holds."""
    return {name: len(points) for name, points in system.cloud.samples(system.serial).items()}


async def run_gateway(system: EmbeddedSystem, instants: dict[str, int]) -> None:
    """Run until the cloud holds ``instants`` of each measurement, an alarm event and a report."""
    async with Gateway(system.settings) as gateway:
        status = await gateway.connect()
        assert status.connection.value == "Connected"
        assert status.diagnostic is not None
        assert status.diagnostic.value == "Device activated"
        assert gateway.status().topology_must_be_published
        await gateway.publish_topology()
        assert not gateway.status().topology_must_be_published
        system.cloud.set_config(system.serial, CONFIG)
        await eventually(
            lambda: gateway.status().active_alarms == ("v-high",), "the alarm v-high active"
        )
        await eventually(
            lambda: all(instants_at_the_cloud(system).get(n, 0) >= k for n, k in instants.items()),
            f"the cloud holds {instants}",
        )
        await eventually(lambda: system.cloud.alarm_events(system.serial), "the alarm event sent")
        await eventually(lambda: system.cloud.reports(system.serial), "the report sent")
        status_now = gateway.status()
        assert status_now.remote_config.applied_version == "1"
        assert status_now.remote_config.valid is True
        assert status_now.active_alarms == ("v-high",)
        # Let the last publication go before stopping.
        await gateway.publisher.publish_data()


def test_the_cloud_holds_every_instant_once_with_the_simulators_values(
    system: EmbeddedSystem,
) -> None:
    wanted = {f"mb-1/{m}": 6 for m in MEASURED} | {"mb-2/ActivePower": 3}
    asyncio.run(run_gateway(system, wanted))
    counts = system.cloud.sample_counts(system.serial)
    assert counts, "samples reached the cloud"
    assert set(counts.values()) == {1}, "no instant twice"
    samples = system.cloud.samples(system.serial)
    assert set(samples) == {f"mb-1/{m}" for m in MEASURED} | {"mb-2/ActivePower"}
    tick = system.simulator.tick_ms
    for name, points in samples.items():
        device, measurement = name.split("/")
        instants = [t for t, _ in points]
        step = 2000 if device == "mb-2" else 1000
        assert len(instants) >= wanted[name], name
        assert all(t % step == 0 for t in instants), "aligned to the UTC clock"
        assert instants == list(range(instants[0], instants[-1] + step, step)), "no gap"
        for t, value in points[1:]:  # the very first instant may precede the first read
            assert value is not None, f"{name} at {t}"
            # The value is the latest reading when the instant is sampled: the
            # simulator's value at a tick a little before t (or after, when the
            # sampling loop woke late on a loaded machine), never an old one.
            candidates = [
                system.simulator.truth(device, measurement, k * tick)
                for k in range((t - 2500) // tick, (t + 2500) // tick + 1)
            ]
            assert value in candidates, f"{name} at {t}: {value} not served then"
            if measurement == "ActiveEnergyDelivered":
                assert isinstance(value, int), "energy counters stay exact integers"
    # The very first instant may precede the first read (nil, by design).
    energy = [v for _, v in samples["mb-1/ActiveEnergyDelivered"][1:]]
    assert energy == sorted(energy), "the counter only rises"
    events = system.cloud.alarm_events(system.serial)
    assert [(e["alarm"], e["state"]) for e in events] == [("v-high", "active")]
    reports = system.cloud.reports(system.serial)
    assert [(r["version"], r["status"]) for r in reports] == [("1", "applied")]


async def test_a_report_that_failed_is_sent_again(system: EmbeddedSystem) -> None:
    fast = RetryPolicy(initial_s=0.05, max_s=0.1, max_attempts=2)
    async with Gateway(system.settings, session=CloudSession(system.settings, retry=fast)) as gw:
        await gw.connect()
        await gw.publish_topology()
        system.cloud.inject_fault("unavailable", "config_report", count=4)
        system.cloud.set_config(system.serial, CONFIG)
        await eventually(lambda: system.cloud.reports(system.serial), "the report sent")
        assert [(r["version"], r["status"]) for r in system.cloud.reports(system.serial)] == [
            ("1", "applied")
        ], "reported once the cloud answered again"

        def no_longer_due() -> bool:
            received = gw.remote.store.last_received()
            return received is not None and received.reported

        # The cloud records the report before the gateway hears back and
        # records it as sent: that comes next.
        await eventually(no_longer_due, "the report no longer due once sent")


async def test_a_new_disk_continues_after_the_clouds_last_seq(
    system: EmbeddedSystem, caplog: pytest.LogCaptureFixture
) -> None:
    async def run_until_published(settings: Settings) -> None:
        """Run until the cloud acknowledged a batch of this run."""
        last = system.cloud.last_seq(system.serial)
        async with Gateway(settings) as gw:
            await gw.connect()
            await gw.publish_topology()
            system.cloud.set_config(system.serial, CONFIG)
            await eventually(
                lambda: system.cloud.last_seq(system.serial) > last, "a batch acknowledged"
            )
            await gw.publisher.publish_data()

    await run_until_published(system.settings)
    before = system.cloud.last_seq(system.serial)
    assert before >= 1
    # The same gateway after a factory reset: empty storage, same serial.
    storage = system.settings.storage.model_copy(update={"dir": system.folder / "new-disk"})
    await run_until_published(system.settings.model_copy(update={"storage": storage}))
    seqs = [b["seq"] for b in system.cloud.batches(system.serial)]
    assert seqs == list(range(1, len(seqs) + 1))
    conflicts = [r for r in caplog.records if "data seq" in r.getMessage()]
    assert conflicts == [], "numbered on from bootstrap's data_seq, not corrected by a 409"
    assert system.cloud.last_seq(system.serial) > before


async def test_a_clock_set_back_takes_no_instant_twice_and_skips_none(
    system: EmbeddedSystem, caplog: pytest.LogCaptureFixture
) -> None:
    """Time sync sets the gateway's clock back a little: sampling goes on from
    the instant after the last (it used to take the last one again and fail)."""
    async with Gateway(system.settings, flush_s=1.0) as gateway:
        await gateway.connect()
        await gateway.publish_topology()
        system.cloud.set_config(system.serial, CONFIG)

        def taken() -> int:
            """Samples taken so far (flushed): at the cloud or waiting in the outbox."""
            at_cloud = len(system.cloud.sample_counts(system.serial))
            return at_cloud + gateway.backlog().samples_left

        await eventually(lambda: taken() > 0, "sampling")
        for _ in range(3):
            before = taken()
            gateway.clock.offset_s -= 0.9
            await eventually(
                lambda b=before: taken() > b + 2 * len(MEASURED),
                "sampling after the clock was set back",
            )
        await gateway.publisher.publish_data()
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    for name, points in system.cloud.samples(system.serial).items():
        instants = [t for t, _ in points]
        step = 2000 if name.startswith("mb-2") else 1000
        assert instants == list(range(instants[0], instants[-1] + step, step)), name
