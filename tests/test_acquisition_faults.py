"""Devices that misbehave: dead, mute, slow, garbled, refusing.

Each sits on its own endpoint next to a healthy pymodbus device. Every fault
must show in that device's diagnostics, the engine must never crash, and the
healthy device's values must stay on schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from modbus_peers import free_port, sim_device, tcp_server
from panelfast._native import Field, ModbusEngine, ModbusPoint
from panelfast.acquisition import Acquisition, DeviceDiagnostics
from panelfast.config import DeviceSettings
from panelfast.exceptions import LayoutError, ModbusError
from panelfast.models import DeviceModel, MeasurementDef
from waiting import eventually

PERIOD_MS = 100
TIMEOUT_MS = 150

Behaviour = Callable[[bytes, asyncio.StreamWriter], Awaitable[None]]


def answer(request: bytes, pdu: bytes, transaction_offset: int = 0) -> bytes:
    """An MBAP frame answering ``request`` with ``pdu``."""
    tid, _, _, unit = struct.unpack(">HHHB", request[:7])
    return struct.pack(">HHHB", (tid + transaction_offset) & 0xFFFF, 0, len(pdu) + 1, unit) + pdu


def registers_pdu(request: bytes) -> bytes:
    function, _, count = struct.unpack(">BHH", request[7:12])
    return struct.pack(">BB", function, 2 * count) + bytes(2 * count)


async def exception_04(request: bytes, writer: asyncio.StreamWriter) -> None:
    writer.write(answer(request, bytes([request[7] | 0x80, 0x04])))


async def wrong_transaction_id(request: bytes, writer: asyncio.StreamWriter) -> None:
    writer.write(answer(request, registers_pdu(request), transaction_offset=1))


async def truncated(request: bytes, writer: asyncio.StreamWriter) -> None:
    writer.write(answer(request, registers_pdu(request))[:9])


async def reset(request: bytes, writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def garbage(request: bytes, writer: asyncio.StreamWriter) -> None:
    # A protocol id of 0x1234: not a Modbus frame.
    writer.write(b"\x00\x01\x12\x34\x00\x03\x01\x03\x00")


async def mute(request: bytes, writer: asyncio.StreamWriter) -> None:
    return


async def slow(request: bytes, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(0.3)
    writer.write(answer(request, registers_pdu(request)))


@contextlib.asynccontextmanager
async def misbehaving_server(behaviour: Behaviour) -> AsyncIterator[int]:
    """A TCP server that reads MBAP requests and answers them with ``behaviour``."""
    handlers: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
                while True:
                    header = await reader.readexactly(7)
                    length = struct.unpack(">H", header[4:6])[0]
                    request = header + await reader.readexactly(length - 1)
                    await behaviour(request, writer)
                    if not writer.transport.is_closing():
                        await writer.drain()
        finally:
            writer.close()
            handlers.discard(task)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()
        # Connections the engine left open (it stopped first) end with the server.
        for task in list(handlers):
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)


def device(id: str, port: int, unit_id: int = 1, timeout_ms: int = TIMEOUT_MS) -> DeviceSettings:
    connection = {"type": "tcp", "host": "127.0.0.1", "port": port, "unit_id": unit_id}
    connection |= {"period_ms": PERIOD_MS, "timeout_ms": timeout_ms}
    return DeviceSettings.model_validate(
        {"id": id, "name": id, "model": "m", "connection": connection}
    )


MODEL = DeviceModel(
    name="m",
    vendor="test",
    measurements=(
        MeasurementDef(
            id="p", name="p", unit="W", kind="instantaneous", function=3, address=0, type="FLOAT32"
        ),
    ),
)

HEALTHY = ("healthy1", "healthy2")

FAULTS: dict[str, tuple[Behaviour, str, str | None]] = {
    # behaviour, last error kind, its name
    "exception": (exception_04, "exception", "ServerDeviceFailure"),
    "wrong_tid": (wrong_transaction_id, "protocol", None),
    "truncated": (truncated, "timeout", None),
    "reset": (reset, "transport", None),
    "garbage": (garbage, "transport", None),
    "mute": (mute, "timeout", None),
    "slow": (slow, "timeout", None),
}


def diagnosed(diagnostics: dict[str, DeviceDiagnostics]) -> bool:
    """Every faulty device shows its fault, the healthy ones ten cycles."""
    dead = diagnostics["dead"]
    return (
        all(diagnostics[name].cycles >= 10 for name in HEALTHY)
        and dead.state == "offline"
        and dead.last_error is not None
        and all(
            (d := diagnostics[name]).errors >= 1
            and d.last_error is not None
            and d.last_error.kind == kind
            and d.state in ("degraded", "offline")
            for name, (_, kind, _) in FAULTS.items()
        )
        and diagnostics["exception"].state == "degraded"
        and diagnostics["mute"].timeouts >= 1
    )


async def test_faulty_devices_are_diagnosed_and_never_delay_healthy_ones() -> None:
    connects: list[bool] = []
    healthy = [sim_device(unit, [0x4348, 0x0000]) for unit in (1, 2)]  # 200.0
    async with contextlib.AsyncExitStack() as stack:
        healthy_port = await stack.enter_async_context(
            tcp_server(healthy, trace_connect=connects.append)
        )
        connects.clear()  # the server's readiness probe
        # The healthy peer answers from the test's own loop: a loaded machine
        # may hold it up, which is not what this test is about.
        devices = [
            (device(name, healthy_port, unit, timeout_ms=5000), MODEL)
            for unit, name in enumerate(HEALTHY, start=1)
        ]
        devices.append((device("dead", free_port()), MODEL))
        for name, (behaviour, _, _) in FAULTS.items():
            port = await stack.enter_async_context(misbehaving_server(behaviour))
            devices.append((device(name, port), MODEL))
        acquisition = Acquisition(devices, retries=1)
        async with acquisition:
            started_ms, started = time.time() * 1000, time.monotonic()
            await eventually(
                lambda: diagnosed({d.device_id: d for d in acquisition.diagnostics()}),
                "every fault diagnosed while the healthy devices are read",
            )
            elapsed_s = time.monotonic() - started
            snapshot = acquisition.snapshot()
            diagnostics = {d.device_id: d for d in acquisition.diagnostics()}

    for name in HEALTHY:
        d = diagnostics[name]
        index = acquisition.index(name, "p")
        assert snapshot.valid[index]
        assert snapshot.values[index] == 200.0
        assert snapshot.read_at_ms[index] > started_ms
        assert d.state == "ok", d
        assert d.errors == 0, d
        # Never held up by the others' timeouts (150 ms, retried: several per
        # cycle if they were waited for): read on nearly every tick of the
        # period, seldom late (a loaded machine makes some cycles late, not most).
        assert d.cycles >= 0.3 * elapsed_s * 1000 / PERIOD_MS, (d, elapsed_s)
        assert d.overruns * 4 <= d.cycles, d
    # Two unit ids behind one endpoint share one connection.
    assert connects.count(True) == 1

    assert diagnostics["dead"].last_error is not None
    assert diagnostics["dead"].last_error.kind == "transport"
    for name, (_, kind, error_name) in FAULTS.items():
        d = diagnostics[name]
        assert not snapshot.valid[acquisition.index(name, "p")], name
        assert d.last_error is not None, d
        assert d.last_error.kind == kind, d
        if error_name is not None:
            assert d.last_error.name == error_name
            assert d.last_error.code == 4


def test_bad_arguments_get_clear_errors_not_crashes() -> None:
    bad_order: Any = "XYZW"
    with pytest.raises(LayoutError, match='order "XYZW" is not one of'):
        Field(0, "FLOAT32", bad_order)
    with pytest.raises(LayoutError, match="address 70000"):
        Field(70000, "UINT16")
    with pytest.raises(ValueError, match="function 6 is not a read"):
        ModbusPoint(6, Field(0, "UINT16"))
    engine = ModbusEngine()
    # Points are typed: a tuple of field values is refused, not guessed at.
    untyped: Any = [(3, 0, "FLOAT32", "ABCD", 1.0, 0.0, None, 0, 1, 0)]
    with pytest.raises(TypeError, match="ModbusPoint"):
        engine.add_device("d", transport="tcp", host="127.0.0.1", points=untyped)
    with pytest.raises(ValueError, match="transport is"):
        engine.add_device("d", transport="udp", points=[])
    with pytest.raises(ModbusError, match="unit id 0"):
        engine.add_device("d", transport="rtu", serial_port="/dev/null", unit_id=0, points=[])
    with pytest.raises(ModbusError, match="no device"):
        engine.write("d", 6, 0, [1])
    engine.add_device("ok", transport="tcp", host="127.0.0.1", points=[])
    with pytest.raises(ModbusError, match="not running"):
        engine.write("ok", 6, 0, [1])
