"""The acquisition engine against an independent peer: a pymodbus TCP server.

Every data type in every word order is written by pymodbus (or struct) into
the server's registers; the engine's snapshot must decode exactly that.
"""

from __future__ import annotations

import math
import statistics
import struct
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from pymodbus.client import AsyncModbusTcpClient

from modbus_peers import encode, sim_device, tcp_server
from panelfast.acquisition import Acquisition
from panelfast.config import DeviceSettings
from panelfast.exceptions import LayoutError, ModbusError, ModbusExceptionError
from panelfast.models import DeviceModel, MeasurementDef, OutputDef
from waiting import eventually

PERIOD_MS = 100


def measurement(id: str, function: int, address: int, type: str, **kw: Any) -> MeasurementDef:
    return MeasurementDef(
        id=id, name=id, unit="", kind="instantaneous", function=function,  # type: ignore[arg-type]
        address=address, type=type, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def tcp_device(id: str, port: int, unit_id: int = 1, **kw: Any) -> DeviceSettings:
    connection = {"type": "tcp", "host": "127.0.0.1", "port": port, "unit_id": unit_id}
    # The peer runs on the test's own loop: on a loaded machine it may answer late.
    connection |= {"period_ms": PERIOD_MS, "timeout_ms": 5000} | kw
    return DeviceSettings.model_validate(
        {"id": id, "name": id, "model": "test", "connection": connection}
    )


# (type, value) written by the peer; each in every word order.
NUMBERS = [
    ("INT16", -12345), ("UINT16", 54321),
    ("INT32", -2_000_000_001), ("UINT32", 4_000_000_003),
    ("INT64", -9_000_000_000_000_000_007), ("UINT64", 9_000_000_000_000_000_009),
    ("FLOAT32", 230.25), ("FLOAT64", -1234567.890625),
]  # fmt: skip
ORDERS = ["ABCD", "CDAB", "BADC", "DCBA"]


def build_register_map() -> tuple[list[int], list[MeasurementDef], list[tuple[str, float | None]]]:
    """Holding registers, the model measuring them, and what each must read."""
    registers = [0] * 400
    measurements: list[MeasurementDef] = []
    expected: list[tuple[str, float | None]] = []
    at = 0
    for data_type, value in NUMBERS:
        for order in ORDERS if data_type not in ("INT16", "UINT16") else ["ABCD", "BADC"]:
            words = encode(value, data_type, order)
            registers[at : at + len(words)] = words
            name = f"{data_type}_{order}"
            measurements.append(measurement(name, 3, at, data_type, order=order, invalid=False))
            expected.append((name, value))
            at += len(words) + 1  # a one-register gap between values: read through
    # Scale and offset: raw 2305 × 0.1 - 40.
    registers[300] = 2305
    measurements.append(measurement("scaled", 3, 300, "UINT16", scale=0.1, offset=-40.0))
    expected.append(("scaled", 2305 * 0.1 - 40.0))
    # The type's default sentinel (0xFFC00000 for FLOAT32) means not available.
    registers[302:304] = [0xFFC0, 0x0000]
    measurements.append(measurement("sentinel", 3, 302, "FLOAT32"))
    expected.append(("sentinel", None))
    # A model-given sentinel, and the same pattern with sentinels disabled.
    registers[304] = 0x7FFF
    measurements.append(measurement("custom_na", 3, 304, "INT16", invalid=0x7FFF))
    expected.append(("custom_na", None))
    measurements.append(measurement("no_na", 3, 304, "INT16", invalid=False))
    expected.append(("no_na", 0x7FFF))
    # Bits 4..6 of register 306.
    registers[306] = 0b0101_0000
    measurements.append(measurement("bitmap", 3, 306, "BITMAP", bit=4, bits=3))
    expected.append(("bitmap", 0b101))
    # IEC 60870-5 date: 2026-11-24 03:04:05.678 UTC.
    registers[310:314] = [26, (11 << 8) | 24, (3 << 8) | 4, 5678]
    measurements.append(measurement("clock", 3, 310, "DATETIME"))
    moment = datetime(2026, 11, 24, 3, 4, 5, 678_000, tzinfo=UTC)
    expected.append(("clock", int(moment.timestamp() * 1000)))
    # ASCII: a serial number.
    text = b"PF-0042 "
    registers[320:324] = [int.from_bytes(text[k : k + 2], "big") for k in range(0, 8, 2)]
    measurements.append(measurement("serial", 3, 320, "ASCII", length=4))
    expected.append(("serial", None))
    return registers, measurements, expected


async def test_snapshot_decodes_what_pymodbus_wrote() -> None:
    registers, measurements, expected = build_register_map()
    inputs = encode(49.95, "FLOAT32", "CDAB")
    measurements.append(measurement("frequency", 4, 0, "FLOAT32", order="CDAB"))
    expected.append(("frequency", 49.95))
    coils = [False, True, True, False]
    measurements += [measurement(f"coil{k}", 1, k, "UINT16") for k in range(4)]
    expected += [(f"coil{k}", int(c)) for k, c in enumerate(coils)]
    discrete = [True] + [False] * 40 + [True]
    measurements += [measurement(f"di{k}", 2, k, "BITMAP") for k in (0, 1, 41)]
    expected += [("di0", 1), ("di1", 0), ("di41", 1)]
    model = DeviceModel(name="test", vendor="test", measurements=tuple(measurements))
    device = sim_device(1, registers, inputs=inputs, coils=coils, discrete=discrete)

    started_ms = time.time() * 1000
    async with (
        tcp_server([device]) as port,
        Acquisition([(tcp_device("meter", port), model)]) as acquisition,
    ):
        await eventually(lambda: acquisition.diagnostics()[0].cycles >= 2, "two cycles")
        snapshot = acquisition.snapshot()
        diagnostics = acquisition.diagnostics()[0]
        # When each of eight cycles began (its first read was sent).
        cycle_starts: set[int] = set()

        def eight_cycles_seen() -> bool:
            read_at = acquisition.snapshot().read_at_ms
            cycle_starts.add(int(read_at[read_at > 0].min()))
            return len(cycle_starts) >= 8

        await eventually(eight_cycles_seen, "eight cycles")

    assert diagnostics.state == "ok", diagnostics
    assert diagnostics.errors == 0
    # Coalesced: a handful of reads for ~40 points over ~330 registers.
    assert diagnostics.reads_per_cycle <= 7, diagnostics
    for name, value in expected:
        index = acquisition.index("meter", name)
        if value is None:
            assert not snapshot.valid[index], name
            assert math.isnan(snapshot.values[index]), name
            continue
        assert snapshot.valid[index], name
        if name.startswith("FLOAT32") or name == "frequency":
            assert snapshot.values[index] == struct.unpack("f", struct.pack("f", value))[0], name
        elif isinstance(value, int) and name != "scaled":
            assert snapshot.integers[index] == value, name  # exact, never through f64
        else:
            assert snapshot.values[index] == pytest.approx(value), name
    assert snapshot.texts == {acquisition.index("meter", "serial"): "PF-0042"}
    dtypes = [a.dtype for a in (snapshot.values, snapshot.integers, snapshot.valid)]
    assert dtypes == [np.float64, np.int64, np.bool_]
    assert snapshot.read_at_ms.dtype == np.int64
    read_at = snapshot.read_at_ms[snapshot.valid]
    assert started_ms <= read_at.min() <= read_at.max() <= time.time() * 1000
    # Cycles start on the wall-clock tick (t % period == 0): most of them within
    # a few ms (a loaded machine delays some, never most).
    phases = sorted(t % PERIOD_MS for t in cycle_starts)
    assert statistics.median(phases) < 20, phases


async def test_writes_reach_the_device_and_refusals_are_named() -> None:
    model = DeviceModel(
        name="io",
        vendor="test",
        measurements=(measurement("level", 3, 10, "UINT16"),),
        outputs=(
            OutputDef(
                id="relay", name="relay", mode="contactor", command_address=20, status_address=21
            ),
        ),
    )
    async with tcp_server([sim_device(1, [0] * 30, coils=[False] * 8)]) as port:
        async with Acquisition([(tcp_device("io", port), model)]) as acquisition:
            await acquisition.write("io", 16, 10, [7])
            await acquisition.command_output("io", "relay", 2)
            await acquisition.write("io", 15, 0, [1, 0, 1])
            await acquisition.write("io", 5, 3, [1])
            # Another client sees them.
            peer = AsyncModbusTcpClient("127.0.0.1", port=port)
            try:
                await peer.connect()
                written = await peer.read_holding_registers(10, count=11, device_id=1)
                coils = await peer.read_coils(0, count=4, device_id=1)
            finally:
                peer.close()
            assert (written.registers[0], written.registers[10]) == (7, 2)
            assert coils.bits[:4] == [True, False, True, True]
            # Polling sees the write.
            level = acquisition.index("io", "level")
            await eventually(
                lambda: acquisition.snapshot().integers[level] == 7, "the write read back"
            )
            with pytest.raises(ModbusExceptionError) as refused:
                await acquisition.write("io", 6, 1000, [1])
            assert refused.value.code == 2
            assert refused.value.name == "IllegalDataAddress"
            with pytest.raises(ModbusError, match="no device"):
                await acquisition.write("nope", 6, 0, [1])
            with pytest.raises(ValueError, match="not a write"):
                await acquisition.write("io", 3, 0, [1])  # type: ignore[arg-type]
            with pytest.raises(KeyError):
                await acquisition.command_output("io", "nope", 1)
            assert acquisition.points[1].kind == "output"
        assert not acquisition.running


async def test_unsupported_register_is_split_off_and_remembered() -> None:
    # Register 5 does not exist, so any read over it gets 0x02.
    device = sim_device(1, [100 + k for k in range(12)], missing=[5])
    model = DeviceModel(
        name="gappy",
        vendor="test",
        measurements=tuple(measurement(f"r{k}", 3, k, "UINT16") for k in range(12)),
    )
    async with (
        tcp_server([device]) as port,
        Acquisition([(tcp_device("gappy", port), model)]) as acquisition,
    ):
        await eventually(lambda: acquisition.diagnostics()[0].cycles >= 3, "three cycles")
        snapshot = acquisition.snapshot()
        diagnostics = acquisition.diagnostics()[0]
        raw = acquisition.raw_blocks("gappy")
    expected_valid = [k != 5 for k in range(12)]
    assert snapshot.valid.tolist() == expected_valid
    assert snapshot.integers[snapshot.valid].tolist() == [100 + k for k in range(12) if k != 5]
    assert diagnostics.state == "ok"
    assert diagnostics.last_error is not None
    assert (diagnostics.last_error.code, diagnostics.last_error.name) == (2, "IllegalDataAddress")
    # The raw blocks show which read the device refused.
    refused = [b for b in raw if b.registers is None]
    assert [(b.function, b.start) for b in refused] == [(3, 5)]
    read = {
        b.start + k: int(r)
        for b in raw
        if b.registers is not None
        for k, r in enumerate(b.registers)
    }
    assert read == {k: 100 + k for k in range(12) if k != 5}
    assert 2 < diagnostics.reads_per_cycle <= 6


def test_bad_models_are_refused_with_the_device_named() -> None:
    bad_bits = DeviceModel(
        name="bad",
        vendor="test",
        measurements=(measurement("b", 3, 0, "BITMAP", bit=12, bits=8),),
    )
    with pytest.raises(LayoutError, match=r"device 'm' \(model 'bad'\) measurement 0 \(b\): "):
        Acquisition([(tcp_device("m", 1502), bad_bits)])
    far = DeviceModel(
        name="far", vendor="test", measurements=(measurement("x", 3, 70000, "UINT16"),)
    )
    with pytest.raises(LayoutError, match=r"device 'm' \(model 'far'\) measurement 0 \(x\): "):
        Acquisition([(tcp_device("m", 1502), far)])
    wrong_function = DeviceModel(
        name="f5", vendor="test", measurements=(measurement("y", 5, 0, "UINT16"),)
    )
    with pytest.raises(ModbusError, match=r"device 'm'.*function 5 is not a read"):
        Acquisition([(tcp_device("m", 1502), wrong_function)])
