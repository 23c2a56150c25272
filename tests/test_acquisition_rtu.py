"""Modbus RTU: a serial bus over a socat pseudo-terminal pair, and RTU over TCP.

A pymodbus RTU server answers for units 1 and 2 at one end of the pair; the
engine polls them, and unit 3 that nobody answers for, from the other end.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import statistics
from collections.abc import AsyncIterator
from pathlib import Path

from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import SimDevice

from modbus_peers import encode, sim_device, tcp_server
from panelfast.acquisition import Acquisition
from panelfast.config import DeviceSettings
from panelfast.models import DeviceModel, MeasurementDef
from waiting import eventually

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


def rtu_device(id: str, port: str, unit_id: int, timeout_ms: int = 1000) -> DeviceSettings:
    connection = {
        "type": "rtu", "port": port, "baud_rate": 38400, "parity": "none",
        "unit_id": unit_id, "period_ms": PERIOD_MS, "timeout_ms": timeout_ms,
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
        await eventually(lambda: all(end.exists() for end in ends), "socat's pty pair")
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
    await server.serve_forever(background=True)  # returns once the port is open
    try:
        yield
    finally:
        await server.shutdown()


async def test_rtu_bus_with_a_dead_unit(tmp_path: Path) -> None:
    async with pty_pair(tmp_path) as (gateway, bus):
        devices = [meter(1, 230.5, 123_456_789_012), meter(2, 231.75, 42)]
        async with rtu_server(devices, bus):
            acquisition = Acquisition(
                [
                    (rtu_device("m1", gateway, 1), MODEL),
                    (rtu_device("m2", gateway, 2), MODEL),
                    (rtu_device("m3", gateway, 3, timeout_ms=100), MODEL),
                ]
            )
            sent: dict[str, set[int]] = {"m1": set(), "m2": set()}

            def six_cycles_seen() -> bool:
                read_at = acquisition.snapshot().read_at_ms
                for device in sent:
                    at = int(read_at[acquisition.index(device, "voltage")])
                    if at:
                        sent[device].add(at)
                return all(len(times) >= 6 for times in sent.values())

            async with acquisition:
                await eventually(six_cycles_seen, "six cycles of m1 and m2")
                await acquisition.write("m2", 6, 5, [77])
                setpoint = acquisition.index("m2", "setpoint")
                await eventually(
                    lambda: acquisition.snapshot().integers[setpoint] == 77, "the write read back"
                )
                await eventually(
                    lambda: (
                        (last := acquisition.diagnostics()[2].last_error) is not None
                        and last.kind == "timeout"
                    ),
                    "the dead unit timed out",
                )
                snapshot = acquisition.snapshot()
                diagnostics = acquisition.diagnostics()

    values = {p.device_id + "." + p.id: p.index for p in acquisition.points}
    assert snapshot.values[values["m1.voltage"]] == 230.5
    assert snapshot.integers[values["m1.energy"]] == 123_456_789_012
    assert snapshot.values[values["m2.voltage"]] == 231.75
    assert snapshot.integers[values["m2.energy"]] == 42
    for d in diagnostics[:2]:
        assert d.state == "ok", d
        # A loaded machine (the peer answers from this test's loop) makes some
        # cycles late, never most.
        assert d.overruns * 4 <= d.cycles, d
    # Devices on one bus are staggered over the period: m2 a third later.
    phase = [statistics.median(t % PERIOD_MS for t in sent[d]) for d in ("m1", "m2")]
    assert phase[0] < 60, (phase, sent)
    assert 100 <= phase[1] < 160, (phase, sent)
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
            await eventually(lambda: acquisition.diagnostics()[0].cycles >= 2, "two cycles")
            snapshot = acquisition.snapshot()
            diagnostics = acquisition.diagnostics()[0]
    assert diagnostics.state == "ok", diagnostics
    assert snapshot.values[acquisition.index("converter", "voltage")] == 229.0
    assert snapshot.integers[acquisition.index("converter", "energy")] == 99


async def test_a_missing_serial_port_is_reported_not_raised(tmp_path: Path) -> None:
    missing = str(tmp_path / "ttyUSB9")
    async with Acquisition([(rtu_device("lost", missing, 1), MODEL)]) as acquisition:
        await eventually(lambda: acquisition.diagnostics()[0].cycles >= 1, "a cycle")
        diagnostics = acquisition.diagnostics()[0]
    assert diagnostics.last_error is not None
    assert diagnostics.last_error.kind == "transport"
    assert "ttyUSB9" in diagnostics.last_error.message
    assert diagnostics.state in ("degraded", "offline")
