"""One clock (issue 9.1, and 9.2 seen from outside): a gateway whose system clock is wrong.

The realistic case: the gateway's *system* clock is off true time, while its
NTP server (a real SNTP server here, serving true time) and its cloud agree on
true time. ``embedded_system(true_offset_s=...)`` puts the reference cloud's
clock and the simulator's truth on true time = system clock + offset; the
gateway is ``panelfast run`` in time mode "ntp", so its synchronised clock is
true time too. Everything is asserted in true time:

- every sample the cloud received equals what the simulator served at its
  instant; nothing is nil beyond the first instant, except while a meter does
  not answer, when its samples are nil (never its last value shown as new);
- every instant is there once: none missing, none repeated;
- the alarm event carries the time of the reading that raised it, and the
  log line about it the same time;
- a dead meter's last error and last answer, as the daemon reports them, too.

Before the fix the gateway compared synchronised instants with read times on
the system clock: ahead of it, every sample was nil; behind it, a meter that
stopped answering kept its last value as if fresh; and alarm events and log
lines carried the system clock.
"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from cloud_support import sntp_server_thread
from panelfast.client import GatewayClient
from panelfast.control import DeviceStatus
from panelfast.embedded import EmbeddedSystem, embedded_system
from panelfast.simulator import Faults
from reliability_support import (
    MEASUREMENTS,
    GatewayProcess,
    commission,
    config_document,
    holes,
    wait_until,
)

POLL_MS = 200
#: A reading older than this is not a sample's value (device_set.point_lookup: 2 polls + timeout).
MAX_AGE_MS = 2 * POLL_MS + 1000
ALARM: dict[str, Any] = {
    "id": "v-high",
    "device": "mb-1",
    "measurement": "VoltageAN",
    "condition": "over",
    "threshold": 100.0,
    "hysteresis": 1.0,
    "delay_s": 0,
}
_ALARM_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) .*alarm v-high active at (\d+) "
)


def served(
    system: EmbeddedSystem, name: str, t_ms: int, before_ms: int, after_ms: int
) -> list[Any]:
    """What the simulator served for ``name`` at the ticks of ``[t - before, t + after]``."""
    device, measurement = name.split("/")
    tick = system.simulator.tick_ms
    return [
        system.simulator.truth(device, measurement, k * tick)
        for k in range((t_ms - before_ms) // tick, (t_ms + after_ms) // tick + 1)
    ]


async def device_status(system: EmbeddedSystem, device_id: str) -> DeviceStatus:
    async with GatewayClient.from_config(system.config_path) as gateway:
        (status,) = [d for d in await gateway.devices() if d.device_id == device_id]
        return status


@pytest.mark.parametrize("offset_s", [-3600, -3, 3, 600])
def test_every_sample_and_event_is_on_the_synchronised_clock(tmp_path: Path, offset_s: int) -> None:
    def true_ms() -> int:
        return int((time.time() + offset_s) * 1000)

    gateway: GatewayProcess | None = None
    with (
        sntp_server_thread(offset_s) as ntp,
        embedded_system(
            tmp_path,
            poll_period_ms=POLL_MS,
            time={"mode": "ntp", "ntp_server": ntp},
            true_offset_s=offset_s,
        ) as system,
    ):
        cloud, serial, sim = system.cloud, system.serial, system.simulator
        asyncio.run(commission(system))
        document = config_document(MEASUREMENTS, period_s=1, publisher_period_s=1)
        document["alarms"] = [ALARM]
        cloud.set_config(serial, document)
        gateway = GatewayProcess(system.config_path, tmp_path / "gateway.log")

        def instants_after(t_ms: int, count: int) -> bool:
            return sum(1 for name, t in cloud.sample_counts(serial) if t > t_ms) >= count * len(
                MEASUREMENTS
            )

        try:
            started = true_ms()
            gateway.start()
            wait_until(lambda: instants_after(0, 3), 30, "three instants at the cloud")
            # mb-2 stops answering: its reads hang until their timeouts (3 s a read).
            dead_from = true_ms()
            sim.set_faults("mb-2", Faults(dead=True))
            wait_until(lambda: instants_after(dead_from + 4_000, 1), 30, "sampled while dead")
            # What the daemon tells of the dead meter (control socket, as the
            # devices command and page see it) is on the synchronised clock too.
            dead_status = asyncio.run(device_status(system, "mb-2"))
            asked = true_ms()
            alive_from = asked
            sim.set_faults("mb-2", Faults())

            def mb2_answers_again() -> bool:
                after = [v for t, v in cloud.samples(serial)["mb-2/ActivePower"] if t > alive_from]
                return len(after) >= 3 and after[-1] is not None and after[-2] is not None

            wait_until(mb2_answers_again, 30, "mb-2 sampled again")
            gateway.stop()
            stopped = true_ms()
        except BaseException:
            print(f"gateway log:\n{gateway.tail(60)}")
            raise
        finally:
            gateway.close()

        counts = cloud.sample_counts(serial)
        samples = cloud.samples(serial)
        events = cloud.alarm_events(serial)
        log = (tmp_path / "gateway.log").read_text(encoding="utf-8")
        truth = {
            name: {t: served(system, name, t, MAX_AGE_MS + 100, 1000) for t, _ in points}
            for name, points in samples.items()
        }
        event_truth = [served(system, "mb-1/VoltageAN", e["ts"], 100, 500) for e in events]

    # No instant missing or repeated (issue 9.2): one sampling instant takes every measurement.
    assert set(counts.values()) == {1}, "an instant taken twice"
    names = {f"{d}/{m}" for d, m in MEASUREMENTS}
    assert set(samples) == names
    first = [t for t, _ in samples["mb-1/VoltageAN"]]
    assert all([t for t, _ in samples[name]] == first for name in names)
    assert not holes(first, 1000), f"instants missing: {holes(first, 1000)}"
    assert started - 1000 < first[0], "instants are in true time"
    assert first[-1] < stopped

    for name, points in samples.items():
        for k, (t, value) in enumerate(points):
            mb2_dead = name.startswith("mb-2/") and dead_from <= t <= alive_from + 8_000
            if value is None:
                assert k == 0 or mb2_dead, f"{name} nil at {t} ({t - started} ms after start)"
                continue
            assert value in truth[name][t], f"{name} at {t}: {value} was not served then"
            # Never a stale value: one that answered before the meter went silent
            # is only taken while it is fresh.
            if name.startswith("mb-2/") and dead_from + MAX_AGE_MS + 500 < t <= alive_from:
                raise AssertionError(f"{name} at {t}: a stale value shown as new")
    stale_window = [
        t for t, _ in samples["mb-2/ActivePower"] if dead_from + MAX_AGE_MS + 500 < t <= alive_from
    ]
    assert stale_window, "the meter was silent over at least one instant"

    # The dead meter's last error and last answer, as the daemon reports them.
    assert dead_status.last_error is not None, dead_status
    assert dead_from <= dead_status.last_error.at_ms <= asked, (dead_status, dead_from, asked)
    assert dead_status.last_answer_ms is not None
    assert started <= dead_status.last_answer_ms <= asked

    # The alarm event carries the read time of its reading, on the synchronised clock...
    assert [(e["alarm"], e["state"]) for e in events] == [("v-high", "active")]
    (event,) = events
    assert started <= event["ts"] <= stopped
    assert event["value"] in event_truth[0], "the value read at the event's time"
    # ...and so does the log line that tells of it.
    (line,) = [m for m in map(_ALARM_LINE.match, log.splitlines()) if m]
    logged = datetime.strptime(line[1], "%Y-%m-%d %H:%M:%S").timestamp() * 1000 + int(line[2])
    assert int(line[3]) == event["ts"]
    assert 0 <= logged - event["ts"] < 2_000, "the log line is stamped by the same clock"
