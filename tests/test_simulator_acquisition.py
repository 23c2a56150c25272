"""The gateway's own acquisition engine reads the simulator: every point is what `truth()` says."""

from __future__ import annotations

import math

from panelfast.acquisition import Acquisition, Snapshot
from panelfast.clock import Clock
from panelfast.config import DeviceSettings
from panelfast.models import DeviceModel
from panelfast.models.loader import ModelLibrary
from panelfast.simulator import SimulatedDevice, Simulator
from waiting import eventually

LIBRARY = ModelLibrary()
TICK = 100


def settings(device_id: str, model: DeviceModel, host: str, port: int, unit: int) -> DeviceSettings:
    connection = {"type": "tcp", "host": host, "port": port, "unit_id": unit, "period_ms": 200}
    connection["timeout_ms"] = 5000  # a loaded machine may answer late: no timeouts here
    return DeviceSettings.model_validate(
        {"id": device_id, "name": device_id, "model": model.name, "connection": connection}
    )


async def first_full_snapshot(acquisition: Acquisition, count: int) -> Snapshot:
    await eventually(
        lambda: (acquisition.snapshot().read_at_ms > 0).sum() == count, "every point read"
    )
    return acquisition.snapshot()


async def test_every_point_the_gateway_reads_is_the_truth() -> None:
    models = {"pm": LIBRARY.get("PM5560"), "io": LIBRARY.get("IO-C"), "iem": LIBRARY.get("iEM3255")}
    devices = [
        SimulatedDevice("pm", models["pm"], unit_id=1, endpoint="panel"),
        SimulatedDevice("io", models["io"], unit_id=2, endpoint="panel"),
        SimulatedDevice("iem", models["iem"]),
    ]
    with Simulator(devices, seed=11, tick_ms=TICK) as sim:
        endpoints = sim.start()
        acquisition = Acquisition(
            [(settings(d, models[d], *endpoints[d][:3]), models[d]) for d in ("pm", "io", "iem")]
        )
        count = sum(len(m.measurements) + len(m.outputs) for m in models.values())
        async with acquisition:
            snapshot = await first_full_snapshot(acquisition, count)
            checked = 0
            for point in acquisition.points:
                if point.kind != "measurement":
                    continue
                k = point.index
                sent = int(snapshot.read_at_ms[k])
                # Served at the tick the request reached the simulator: after it
                # was sent (seconds after, on a loaded machine).
                ticks = range(sent // TICK * TICK, sent + 5000, TICK)
                truths = [sim.truth(point.device_id, point.id, t) for t in ticks]
                if isinstance(truths[0], str):
                    got: object = snapshot.texts[k]
                elif not math.isnan(snapshot.values[k]) and snapshot.integers[k] != -(2**63):
                    got = int(snapshot.integers[k])
                else:
                    got = float(snapshot.values[k])
                assert snapshot.valid[k] or isinstance(got, str), point
                assert got in truths, (point, got, truths[:3])
                checked += 1
            assert checked == count - len(models["io"].outputs)

            # The gateway switches an output; the simulator's status follows, and is read back.
            await acquisition.command_output("io", "Q1", 2)
            assert sim.outputs("io") == {"Q1": True, "Q2": False}
            q1 = acquisition.index("io", "Q1")
            await eventually(
                lambda: acquisition.snapshot().values[q1] == 1.0, "Q1's status read back as on"
            )


async def test_read_times_are_on_the_gateways_clock_whatever_its_offset() -> None:
    """Issue 9.1: the engine stamps on the system clock; what leaves the acquisition is
    on the synchronised clock, converted with the offset in force when it is read."""
    model = LIBRARY.get("iEM3255")
    offset_s = 600.25
    clock = Clock(offset_s=offset_s)
    # The simulator's truth on the same "true" clock (the devices serve by the system's).
    with Simulator(
        [SimulatedDevice("iem", model)], seed=3, tick_ms=TICK, clock_offset_ms=600_250
    ) as sim:
        host, port, unit, _ = sim.endpoint("iem")
        count = len(model.measurements)
        device = settings("iem", model, host, port, unit)
        async with Acquisition([(device, model)], clock=clock) as a:
            snapshot = await first_full_snapshot(a, count)
            now = clock.now_ms()
            k = a.index("iem", "ActivePower")
            sent = int(snapshot.read_at_ms[k])
            assert 0 <= now - sent < 2_000, "a fresh reading, on the gateway's clock"
            ticks = range(sent // TICK * TICK, sent + 1000, TICK)
            assert float(snapshot.values[k]) in [sim.truth("iem", "ActivePower", t) for t in ticks]
            assert all(abs(now - b.read_at_ms) < 2_000 for b in a.raw_blocks("iem"))
            # A resynchronisation moves the clock: the same reading is as old as before.
            clock.offset_s = offset_s - 30
            age_after = clock.now_ms() - int(a.snapshot().read_at_ms[k])
            assert 0 <= age_after < 2_000
