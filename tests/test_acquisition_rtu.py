"""Modbus RTU: a serial bus over a socat pseudo-terminal pair, and RTU over TCP.

A pymodbus RTU server answers for units 1 and 2 at one end of the pair; the
engine polls them, and unit 3 that nobody answers for, from the other end.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import SimDevice

from modbus_peers import encode, sim_device, tcp_server
from panelfast.acquisition import Acquisition
from panelfast.config import DeviceSettings
from panelfast.models import DeviceModel, MeasurementDef

PERIOD_MS = 300

MODEL = DeviceModel(
    name="meter",
    vendor="test",
    measurements=(
        MeasurementDef(
            id="voltage", name="V", unit="V", kind="instantaneous", function=3,
            address=0, type="FLOAT32", order="CDAB",
        ),
        MeasurementDef(
            id="energy", name="E", unit="Wh", kind="cumulative", function=4,
            address=10, type="UINT64",
        ),
        MeasurementDef(
            id="setpoint", name="S", unit="", kind="instantaneous", function=3,
            address=5, type="UINT16",
        ),
    ),
)  # fmt: skip


def meter(unit_id: int, voltage: float, energy: int) -> SimDevice:
    holding = encode(voltage, "FLOAT32", "CDAB") + [0] * 4
    inputs = [0] * 10 + encode(energy, "UINT64", "ABCD")
    return sim_device(unit_id, holding, inputs=inputs)


def rtu_device(id: str, port: str, unit_id: int) -> DeviceSettings:
    connection = {
        "type": "rtu", "port": port, "baud_rate": 38400, "parity": "none",
        "unit_id": unit_id, "period_ms": PERIOD_MS, "timeout_ms": 100,
    }  # fmt: skip
    return DeviceSettings.model_validate(
        {"id": id, "name": id, "model": "meter", "connection": connection}
    )


@contextlib.asynccontextmanager
async def pty_pair(folder: Path) -> AsyncIterator[tuple[str, str]]:
    """Two connected pseudo-terminals: (the gateway's end, the devices' end)."""
    assert shutil.which("socat"), "socat is needed for the RTU tests: make system-deps"
    ends = folder / "gateway", folder / "bus"
    process = await asyncio.create_subprocess_exec(
        "socat", "-d", "-d",
        f"pty,raw,echo=0,link={ends[0]}", f"pty,raw,echo=0,link={ends[1]}",
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(200):
            if all(end.exists() for end in ends):
                break
            await asyncio.sleep(0.01)
        yield str(ends[0]), str(ends[1])
    finally:
        process.terminate()
        await process.wait()


def drop_requests_to_absent_units(sending: bool, frame: bytes) -> bytes:
    # pymodbus answers an unknown unit with exception 0x04 where a real bus
    # stays silent: spoil the frame's CRC so that pymodbus discards it.
    if sending or frame[:1] in (b"\x01", b"\x02") or not frame:
        return frame
    return frame[:-1] + bytes([frame[-1] ^ 0xFF])


@contextlib.asynccontextmanager
async def rtu_server(devices: list[SimDevice], port: str) -> AsyncIterator[None]:
    server = ModbusSerialServer(
        devices,
        framer=FramerType.RTU,
        port=port,
        baudrate=38400,
        parity="N",
        trace_packet=drop_requests_to_absent_units,
    )
    task = asyncio.create_task(server.serve_forever())
    await asyncio.sleep(0.2)
    try:
        yield
    finally:
        await server.shutdown()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(predicate: Any, within_s: float = 5.0) -> None:
    deadline = time.monotonic() + within_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_rtu_bus_with_a_dead_unit(tmp_path: Path) -> None:
    async with pty_pair(tmp_path) as (gateway, bus):
        devices = [meter(1, 230.5, 123_456_789_012), meter(2, 231.75, 42)]
        async with rtu_server(devices, bus):
            acquisition = Acquisition(
                [(rtu_device(f"m{unit}", gateway, unit), MODEL) for unit in (1, 2, 3)]
            )
            async with acquisition:
                await until(lambda: all(d.cycles >= 3 for d in acquisition.diagnostics()))
                await acquisition.write("m2", 6, 5, [77])
                setpoint = acquisition.index("m2", "setpoint")
                await until(lambda: acquisition.snapshot().integers[setpoint] == 77)
                snapshot = acquisition.snapshot()
                diagnostics = acquisition.diagnostics()

    values = {p.device_id + "." + p.id: p.index for p in acquisition.points}
    assert snapshot.values[values["m1.voltage"]] == 230.5
    assert snapshot.integers[values["m1.energy"]] == 123_456_789_012
    assert snapshot.values[values["m2.voltage"]] == 231.75
    assert snapshot.integers[values["m2.energy"]] == 42
    for d in diagnostics[:2]:
        assert d.state == "ok", d
        assert d.overruns == 0, d
    # Devices on one bus are staggered over the period: m2 a third later.
    phase = [snapshot.read_at_ms[values[f"m{u}.voltage"]] % PERIOD_MS for u in (1, 2)]
    assert phase[0] < 60, phase
    assert 100 <= phase[1] < 160, phase
    dead = diagnostics[2]
    assert dead.state in ("degraded", "offline"), dead
    assert dead.last_error is not None
    assert dead.last_error.kind == "timeout"
    assert not snapshot.valid[values["m3.voltage"]]


async def test_rtu_over_tcp() -> None:
    async with tcp_server([meter(7, 229.0, 99)], framer=FramerType.RTU) as port:
        settings = DeviceSettings.model_validate(
            {
                "id": "converter",
                "name": "behind a serial converter",
                "model": "meter",
                "connection": {
                    "type": "rtu-over-tcp",
                    "host": "127.0.0.1",
                    "port": port,
                    "unit_id": 7,
                    "period_ms": 100,
                },
            }
        )
        async with Acquisition([(settings, MODEL)]) as acquisition:
            await until(lambda: acquisition.diagnostics()[0].cycles >= 2)
            snapshot = acquisition.snapshot()
            diagnostics = acquisition.diagnostics()[0]
    assert diagnostics.state == "ok", diagnostics
    assert snapshot.values[acquisition.index("converter", "voltage")] == 229.0
    assert snapshot.integers[acquisition.index("converter", "energy")] == 99


async def test_a_missing_serial_port_is_reported_not_raised(tmp_path: Path) -> None:
    missing = str(tmp_path / "ttyUSB9")
    async with Acquisition([(rtu_device("lost", missing, 1), MODEL)]) as acquisition:
        await until(lambda: acquisition.diagnostics()[0].cycles >= 1)
        diagnostics = acquisition.diagnostics()[0]
    assert diagnostics.last_error is not None
    assert diagnostics.last_error.kind == "transport"
    assert "ttyUSB9" in diagnostics.last_error.message
    assert diagnostics.state in ("degraded", "offline")
