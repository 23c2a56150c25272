"""The simulator speaks RTU too: framed over TCP, and on a serial line (a socat pty pair)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymodbus import FramerType
from pymodbus.client import ModbusSerialClient, ModbusTcpClient
from pymodbus.exceptions import ModbusException

from panelfast.models.loader import ModelLibrary
from panelfast.simulator import SimulatedDevice, Simulator
from waiting import PATIENCE_S, wait_until

LIBRARY = ModelLibrary()
F32 = ModbusTcpClient.DATATYPE.FLOAT32
TICK = 100


def served_at_one_of(sim: Simulator, device: str, value: float, t0: int, t1: int) -> bool:
    return any(
        sim.truth(device, "VoltageAN", t) == value for t in range(t0 // TICK * TICK, t1 + 1, TICK)
    )


def test_rtu_over_tcp() -> None:
    pm = LIBRARY.get("PM5560")
    devices = [
        SimulatedDevice(name, pm, unit_id=unit, endpoint="conv", transport="rtu-over-tcp")
        for name, unit in (("a", 5), ("b", 6))
    ]
    with Simulator(devices, tick_ms=TICK) as sim:
        endpoint = sim.endpoint("a")
        assert endpoint.transport == "rtu-over-tcp"
        assert endpoint[:2] == sim.endpoint("b")[:2]
        client = ModbusTcpClient(
            endpoint.host, port=endpoint.port, framer=FramerType.RTU, timeout=10, retries=0
        )
        assert client.connect()
        with client:
            for device, unit in (("a", 5), ("b", 6)):
                t0 = Simulator.now_ms()
                rr = client.read_holding_registers(3027, count=2, device_id=unit)
                t1 = Simulator.now_ms()
                assert not rr.isError(), rr
                value = client.convert_from_registers(rr.registers, F32)
                assert isinstance(value, float)
                assert served_at_one_of(sim, device, value, t0, t1)


@pytest.fixture
def pty_pair(tmp_path: Path) -> Iterator[tuple[str, str]]:
    socat = shutil.which("socat")
    if socat is None:
        pytest.fail("socat is needed for the RTU tests: run make system-deps")
    a, b = tmp_path / "sim", tmp_path / "gateway"
    proc = subprocess.Popen(
        [socat, f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: a.exists() and b.exists(), "socat's pty pair")
        yield str(a), str(b)
    finally:
        proc.terminate()
        proc.wait(timeout=PATIENCE_S)


def test_rtu_bus_on_a_serial_line(pty_pair: tuple[str, str]) -> None:
    line, gateway_side = pty_pair
    devices = [
        SimulatedDevice("pm", LIBRARY.get("PM5560"), unit_id=2, transport="rtu", serial_port=line),
        SimulatedDevice("io", LIBRARY.get("IO-C"), unit_id=3, transport="rtu", serial_port=line),
    ]
    with Simulator(devices, tick_ms=TICK) as sim:
        assert sim.endpoint("pm") == (line, 0, 2, "rtu")
        client = ModbusSerialClient(gateway_side, baudrate=19200, timeout=3, retries=0)
        assert client.connect()
        with client:
            t0 = Simulator.now_ms()
            rr = client.read_holding_registers(3027, count=2, device_id=2)
            t1 = Simulator.now_ms()
            assert not rr.isError(), rr
            value = client.convert_from_registers(rr.registers, F32)
            assert isinstance(value, float)
            assert served_at_one_of(sim, "pm", value, t0, t1)
            assert not client.write_register(37050, 2, device_id=3).isError()
            assert sim.outputs("io") == {"Q1": True, "Q2": False}
            # Nobody at unit 9: on a bus, silence.
            try:
                answered = not client.read_holding_registers(0, count=1, device_id=9).isError()
            except ModbusException:
                answered = False
            assert not answered


def test_missing_serial_port_is_a_clear_error(tmp_path: Path) -> None:
    from panelfast.exceptions import SimulatorError

    device = SimulatedDevice(
        "pm", LIBRARY.get("PM5560"), transport="rtu", serial_port=str(tmp_path / "nope")
    )
    sim = Simulator([device])
    with pytest.raises(SimulatorError, match="cannot open serial port"):
        sim.start()
