"""Identification is read once per connection, and registers a device lacks are
not asked for every poll: the gateway's acquisition against the simulator,
counting the reads the simulated meter is sent."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable

from panelfast.acquisition import Acquisition, DeviceDiagnostics, RegisterRange
from panelfast.config import DeviceSettings
from panelfast.models.loader import ModelLibrary
from panelfast.simulator import Faults, SimulatedDevice, Simulator

PM5560 = ModelLibrary().get("PM5560")
TICK = 100
PERIOD_MS = 200
#: The PM5560's identification registers (function 3) and its clock.
IDENTIFICATION = {"MeterName": (29, 20), "MeterModel": (49, 20), "Manufacturer": (69, 20)}
IDENTIFICATION["SerialNumber"] = (129, 2)
CLOCK = (1836, 4)
#: A poll measurement: read every cycle whatever the device lacks.
CURRENT_A = (2999, 2)
#: The measurements read every poll (the clock aside).
POLLED = [m for m in PM5560.measurements if not m.identification and m.id != "DateTime"]


def settings(port: int) -> DeviceSettings:
    connection = {"type": "tcp", "host": "127.0.0.1", "port": port, "period_ms": PERIOD_MS}
    return DeviceSettings.model_validate(
        {"id": "pm", "name": "pm", "model": "PM5560", "connection": connection}
    )


async def until(what: Callable[[], bool], seconds: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not what():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


def diagnostics(acquisition: Acquisition) -> DeviceDiagnostics:
    return acquisition.diagnostics()[0]


async def more_cycles(acquisition: Acquisition, count: int) -> None:
    """Wait for ``count`` more poll cycles that the device answered."""
    first = diagnostics(acquisition).cycles
    await until(
        lambda: (
            diagnostics(acquisition).cycles >= first + count
            and diagnostics(acquisition).state == "ok"
        )
    )


async def reconnect(sim: Simulator, acquisition: Acquisition) -> None:
    """Power the meter off (its port closes) until the gateway notices, then on again."""
    faults = sim.faults("pm")
    sim.set_faults("pm", faults._replace(offline=True))
    await until(lambda: diagnostics(acquisition).state != "ok")
    sim.set_faults("pm", faults)


def touching(sim: Simulator, span: tuple[int, int]) -> int:
    return sim.reads_touching("pm", 3, *span)


def check_poll_measurements(sim: Simulator, acquisition: Acquisition) -> int:
    """Every measurement read each poll is the simulator's truth; how many were checked."""
    snapshot = acquisition.snapshot()
    checked = 0
    for m in POLLED:
        k = acquisition.index("pm", m.id)
        sent = int(snapshot.read_at_ms[k])
        truths = [sim.truth("pm", m.id, t) for t in range(sent // TICK * TICK, sent + 1000, TICK)]
        assert snapshot.valid[k], m.id
        exact = snapshot.integers[k] != -(2**63)
        got = int(snapshot.integers[k]) if exact else float(snapshot.values[k])
        assert not isinstance(got, float) or not math.isnan(got), m.id
        assert got in truths, (m.id, got, truths[:3])
        checked += 1
    return checked


async def test_a_meter_without_identification_is_asked_for_it_once_per_connection() -> None:
    lacking = [(3, a, n) for a, n in IDENTIFICATION.values()] + [(3, *CLOCK)]
    device = SimulatedDevice("pm", PM5560, faults=Faults(illegal=tuple(lacking)))
    with Simulator([device], tick_ms=TICK) as sim:
        port = sim.endpoint("pm").port
        async with Acquisition([(settings(port), PM5560)]) as acquisition:
            await until(lambda: diagnostics(acquisition).cycles >= 3)
            await more_cycles(acquisition, 1)
            # What it lacks is listed, as narrow as the reads split.
            assert diagnostics(acquisition).lacking == [
                RegisterRange(3, a, n) for _, a, n in sorted(lacking)
            ]
            asked = {name: touching(sim, span) for name, span in IDENTIFICATION.items()}
            asked["clock"] = touching(sim, CLOCK)
            polled = touching(sim, CURRENT_A)
            cycles = diagnostics(acquisition).cycles
            # Each was asked for while the reads around it split: a few reads, once.
            assert all(1 <= n <= 3 for n in asked.values()), asked
            assert asked["clock"] == 1, "alone in its read: one refusal"

            await more_cycles(acquisition, 8)
            after = {name: touching(sim, span) for name, span in IDENTIFICATION.items()}
            after["clock"] = touching(sim, CLOCK)
            assert after == asked, "not asked again while connected"
            # The other measurements are read every cycle, and right.
            assert touching(sim, CURRENT_A) - polled >= diagnostics(acquisition).cycles - cycles
            assert check_poll_measurements(sim, acquisition) == len(POLLED) > 20
            d = diagnostics(acquisition)
            assert d.state == "ok"
            exceptions = d.exceptions
            await more_cycles(acquisition, 3)
            assert diagnostics(acquisition).exceptions == exceptions
            snapshot = acquisition.snapshot()
            for name in [*IDENTIFICATION, "DateTime"]:
                k = acquisition.index("pm", name)
                assert not snapshot.valid[k], name
                assert k not in snapshot.texts, name

            # A new connection asks again, once.
            await reconnect(sim, acquisition)
            await until(lambda: touching(sim, CLOCK) == 2)
            await more_cycles(acquisition, 6)
            again = {name: touching(sim, span) for name, span in IDENTIFICATION.items()}
            again["clock"] = touching(sim, CLOCK)
            # The reads stay split as the first connection left them: one each.
            assert again == {name: n + 1 for name, n in asked.items()}
            assert diagnostics(acquisition).lacking == [
                RegisterRange(3, a, n) for _, a, n in sorted(lacking)
            ]
            assert check_poll_measurements(sim, acquisition) == len(POLLED) > 20


async def test_identification_is_read_at_connection_and_kept_between() -> None:
    with Simulator([SimulatedDevice("pm", PM5560)], tick_ms=TICK) as sim:
        port = sim.endpoint("pm").port
        async with Acquisition([(settings(port), PM5560)]) as acquisition:
            await until(lambda: diagnostics(acquisition).cycles >= 2)
            await more_cycles(acquisition, 8)
            assert diagnostics(acquisition).lacking == []
            for name, span in IDENTIFICATION.items():
                assert touching(sim, span) == 1, name
            # The clock is no identification: read every poll.
            assert touching(sim, CLOCK) >= 8
            snapshot = acquisition.snapshot()
            texts = {n: snapshot.texts.get(acquisition.index("pm", n)) for n in IDENTIFICATION}
            serial = acquisition.index("pm", "SerialNumber")
            assert texts == {
                "MeterName": "PM5560 Main incomer",
                "MeterModel": "PM5560",
                "Manufacturer": "Schneider Electric",
                "SerialNumber": None,
            }
            assert snapshot.valid[serial]
            assert int(snapshot.integers[serial]) == sim.truth("pm", "SerialNumber", 0)
            # Vouched for at every cycle the meter answers on the same connection:
            # as fresh as what is polled.
            current = acquisition.index("pm", "CurrentA")
            assert abs(int(snapshot.read_at_ms[serial]) - int(snapshot.read_at_ms[current])) < 100
            assert check_poll_measurements(sim, acquisition) == len(POLLED) > 20

            await reconnect(sim, acquisition)
            await until(lambda: touching(sim, IDENTIFICATION["MeterName"]) == 2)
            await more_cycles(acquisition, 4)
            for name, span in IDENTIFICATION.items():
                assert touching(sim, span) == 2, name
            assert acquisition.snapshot().texts[acquisition.index("pm", "MeterModel")] == "PM5560"
