"""The device simulator over real TCP: pymodbus reads what `truth()` says; physics holds."""

from __future__ import annotations

import math
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.pdu import ModbusPDU

from panelfast._native import Field, RegisterLayout
from panelfast.exceptions import ModelError, SimulatorError
from panelfast.models import DeviceModel, MeasurementDef
from panelfast.models.loader import ModelLibrary, parse_model
from panelfast.simulator import Faults, SimulatedDevice, Simulator, fleet, synthetic_model
from waiting import wait_until

LIBRARY = ModelLibrary()
PM5560 = LIBRARY.get("PM5560")
IEM = LIBRARY.get("iEM3255")
IO = LIBRARY.get("IO-C")
TICK = 100
F32 = ModbusTcpClient.DATATYPE.FLOAT32
I64 = ModbusTcpClient.DATATYPE.INT64


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    devices = [
        SimulatedDevice("pm", PM5560),
        SimulatedDevice("iem", IEM, unit_id=3, endpoint="gw"),
        SimulatedDevice("io", IO, unit_id=4, endpoint="gw"),
    ]
    with Simulator(devices, seed=7, tick_ms=TICK) as simulator:
        yield simulator


def client(sim: Simulator, device: str, timeout: float = 10.0) -> ModbusTcpClient:
    host, port, *_ = sim.endpoint(device)
    c = ModbusTcpClient(host, port=port, timeout=timeout, retries=0)
    assert c.connect()
    return c


def read(c: ModbusTcpClient, sim: Simulator, device: str, address: int, count: int) -> ModbusPDU:
    rr = c.read_holding_registers(address, count=count, device_id=sim.endpoint(device).unit_id)
    return rr


def ticks_between(t0: int, t1: int) -> list[int]:
    """Every tick start a read made between t0 and t1 may have been served from."""
    return list(range(t0 // TICK * TICK, t1 + 1, TICK))


def timed_read(
    c: ModbusTcpClient, sim: Simulator, device: str, address: int, count: int
) -> tuple[list[int], list[int]]:
    t0 = Simulator.now_ms()
    rr = read(c, sim, device, address, count)
    t1 = Simulator.now_ms()
    assert not rr.isError(), rr
    return list(rr.registers), ticks_between(t0, t1)


def block_values(
    model: DeviceModel, start: int, regs: list[int], types: tuple[str, ...]
) -> dict[str, float | int]:
    """Decode with pymodbus every measurement of `types` inside the block."""
    out: dict[str, float | int] = {}
    for m in model.measurements:
        if m.type in types and m.function == 3 and start <= m.address < start + len(regs):
            at = m.address - start
            kind = F32 if m.type == "FLOAT32" else I64
            width = 2 if m.type == "FLOAT32" else 4
            value = ModbusTcpClient.convert_from_registers(regs[at : at + width], kind)
            assert isinstance(value, float | int)
            out[m.id] = value
    return out


def matching_tick(
    sim: Simulator, device: str, values: dict[str, float | int], ticks: list[int]
) -> int:
    for t in ticks:
        if all(sim.truth(device, mid, t) == v for mid, v in values.items()):
            return t
    raise AssertionError(f"no tick in {ticks} serves {values}")


def test_pm5560_registers_decode_to_truth(sim: Simulator) -> None:
    c = client(sim, "pm")
    with c:
        regs, ticks = timed_read(c, sim, "pm", 2999, 112)  # currents .. frequency
        values = block_values(PM5560, 2999, regs, ("FLOAT32",))
        assert len(values) == 27
        matching_tick(sim, "pm", values, ticks)
        regs, ticks = timed_read(c, sim, "pm", 3203, 36)  # energies
        energies = block_values(PM5560, 3203, regs, ("INT64",))
        assert len(energies) == 4
        t = matching_tick(sim, "pm", energies, ticks)
        assert isinstance(sim.truth("pm", "ActiveEnergyDelivered", t), int)


def test_snapshot_is_every_truth_at_once(sim: Simulator) -> None:
    t = Simulator.now_ms()
    snapshot = sim.snapshot("pm", t)
    assert list(snapshot) == [m.id for m in PM5560.measurements]
    assert all(snapshot[mid] == sim.truth("pm", mid, t) for mid in snapshot)
    assert snapshot["MeterModel"] == "PM5560"


def test_identification_text_and_clock_decode_with_the_gateway_decoder(sim: Simulator) -> None:
    c = client(sim, "pm")
    with c:
        names, _ = timed_read(c, sim, "pm", 29, 60)
        clock, ticks = timed_read(c, sim, "pm", 1836, 4)
    text = RegisterLayout([Field(29, "ASCII", length=20), Field(49, "ASCII", length=20)])
    assert text.decode_text([(29, names)]) == ["PM5560 Main incomer", "PM5560"]
    decoded = RegisterLayout([Field(1836, "DATETIME")]).decode([(1836, clock)])
    assert decoded.valid[0]
    assert int(decoded.integers[0]) in ticks
    assert sim.truth("pm", "DateTime", int(decoded.integers[0])) == int(decoded.integers[0])
    assert sim.truth("pm", "MeterModel", ticks[0]) == "PM5560"


def test_physics_holds_on_what_is_served(sim: Simulator) -> None:
    c = client(sim, "pm")
    with c:
        regs, _ = timed_read(c, sim, "pm", 2999, 112)
    v = block_values(PM5560, 2999, regs, ("FLOAT32",))
    for phase, (volt, amp) in enumerate(
        [("VoltageAN", "CurrentA"), ("VoltageBN", "CurrentB"), ("VoltageCN", "CurrentC")]
    ):
        p, q, s = (v[f"{kind}Power{'ABC'[phase]}"] for kind in ("Active", "Reactive", "Apparent"))
        assert 220 < v[volt] < 240
        assert s == pytest.approx(v[volt] * v[amp] / 1000, rel=1e-5)
        assert math.hypot(p, q) == pytest.approx(s, rel=1e-5)
        assert 0.8 < p / s < 1.0  # P = V·I·PF
    for total in ("ActivePower", "ReactivePower", "ApparentPower"):
        assert v[total] == pytest.approx(sum(v[f"{total}{x}"] for x in "ABC"), rel=1e-5)
    assert v["PowerFactor"] == pytest.approx(v["ActivePower"] / v["ApparentPower"], rel=1e-5)
    assert v["CurrentAvg"] == pytest.approx((v["CurrentA"] + v["CurrentB"] + v["CurrentC"]) / 3)
    assert v["VoltageAB"] == pytest.approx(math.sqrt(3) * 230, rel=0.03)
    assert v["Frequency"] == pytest.approx(50, abs=0.05)


def test_energy_is_monotonic_and_rises_at_the_rate_of_power(sim: Simulator) -> None:
    c = client(sim, "pm")
    readings = []
    with c:
        for _ in range(4):
            regs, _ = timed_read(c, sim, "pm", 3203, 4)
            readings.append(ModbusTcpClient.convert_from_registers(regs, I64))
            time.sleep(0.15)
    assert readings == sorted(readings)
    # Over ten minutes (computed, not waited for): ΔE = ∫P dt within the voltage ripple.
    t0 = Simulator.now_ms()
    e0 = sim.truth("pm", "ActiveEnergyDelivered", t0)
    e1 = sim.truth("pm", "ActiveEnergyDelivered", t0 + 600_000)
    powers = [sim.truth("pm", "ActivePower", t0 + k * 1000) for k in range(600)]
    assert isinstance(e0, int)
    assert isinstance(e1, int)
    expected_wh = sum(float(p) for p in powers) * 1000 / 3600  # kW·s → Wh
    assert e1 - e0 == pytest.approx(expected_wh, rel=0.02)


def test_devices_behind_one_port_are_told_apart_by_unit_id(sim: Simulator) -> None:
    assert sim.endpoint("iem")[:2] == sim.endpoint("io")[:2]
    c = client(sim, "iem")
    with c:
        regs, ticks = timed_read(c, sim, "iem", 3027, 6)
        values = block_values(IEM, 3027, regs, ("FLOAT32",))
        matching_tick(sim, "iem", values, ticks)
        # Nobody at unit 9: the gateway-style exception 0x0B.
        rr = c.read_holding_registers(3027, count=2, device_id=9)
        assert rr.isError()
        assert rr.exception_code == 0x0B
        # The iEM3255 reads at most 100 registers at a time: 0x03 beyond.
        rr = c.read_holding_registers(2999, count=101, device_id=3)
        assert rr.isError()
        assert rr.exception_code == 0x03


def test_io_module_outputs_follow_commands(sim: Simulator) -> None:
    c = client(sim, "io")
    unit = sim.endpoint("io").unit_id
    with c:

        def status() -> tuple[int, int, int]:
            q1, q2 = c.read_holding_registers(37020, count=2, device_id=unit).registers
            bitmap = c.read_holding_registers(37001, count=1, device_id=unit).registers[0]
            return q1, q2, bitmap

        assert status() == (0, 0, 0)
        assert not c.write_register(37050, 2, device_id=unit).isError()  # Q1 on
        assert status() == (1, 0, 0b01)
        assert sim.outputs("io") == {"Q1": True, "Q2": False}
        assert not c.write_register(37050, 3, device_id=unit).isError()  # toggle
        assert status() == (0, 0, 0)
        rr = c.write_register(37050, 9, device_id=unit)
        assert rr.isError()
        assert rr.exception_code == 0x03
        rr = c.write_register(37060, 2, device_id=unit)  # not a command register
        assert rr.isError()
        assert rr.exception_code == 0x02
        # Q2 drives an impulse relay: one pulse (bit 1 of 37001), the relay stays on.
        writes = sim.writes("io")
        assert not c.write_register(37051, 2, device_id=unit).isError()
        assert status() == (0, 1, 0b10)
        rr = c.write_register(37051, 3, device_id=unit)  # during the pulse: busy
        assert rr.isError()
        assert rr.exception_code == 0x06
        deadline = time.monotonic() + 5
        while status() != (0, 1, 0) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert status() == (0, 1, 0)
        assert sim.outputs("io") == {"Q1": False, "Q2": True}
        assert not c.write_register(37051, 2, device_id=unit).isError()  # already on: no pulse
        assert status() == (0, 1, 0)
        assert not c.write_register(37051, 1, device_id=unit).isError()  # off: one pulse
        assert status() == (0, 0, 0b10)
        assert sim.writes("io") == writes + 4  # every write request counted, refused ones too


def test_io_module_inputs_and_counters(sim: Simulator) -> None:
    c = client(sim, "io")
    unit = sim.endpoint("io").unit_id
    with c:
        t0 = Simulator.now_ms()
        bits = c.read_discrete_inputs(0, count=2, device_id=unit).bits[:2]
        inputs = c.read_holding_registers(37000, count=1, device_id=unit).registers[0]
        counters = c.read_holding_registers(37010, count=6, device_id=unit).registers
        t1 = Simulator.now_ms()
    ticks = ticks_between(t0, t1)
    assert any(
        [sim.truth("io", "DiscreteI1", t), sim.truth("io", "DiscreteI2", t)]
        == [int(b) for b in bits]
        for t in ticks
    )
    assert any(
        (sim.truth("io", "InputI1", t), sim.truth("io", "InputI2", t))
        == (inputs & 1, inputs >> 1 & 1)
        for t in ticks
    )
    pulses = ModbusTcpClient.convert_from_registers(counters[:4], I64)
    assert any(sim.truth("io", "PulsesI1", t) == pulses for t in ticks)
    flips = {sim.truth("io", "InputI1", t0 + k * 10_000) for k in range(60)}
    assert flips == {0, 1}  # inputs change now and then


def test_every_word_order_and_scaled_integers() -> None:
    def m(
        mid: str, address: int, type_: str, order: str = "ABCD", scale: float = 1.0
    ) -> MeasurementDef:
        return MeasurementDef(
            id=mid, name=mid, unit="V", kind="instantaneous", function=4, address=address,
            type=type_, order=order, scale=scale, quantity="voltage_ln.1",  # type: ignore[arg-type]
        )  # fmt: skip

    model = DeviceModel(
        name="Orders",
        vendor="test",
        measurements=(
            m("abcd", 0, "FLOAT32"),
            m("cdab", 2, "FLOAT32", "CDAB"),
            m("badc", 4, "FLOAT32", "BADC"),
            m("dcba", 6, "FLOAT32", "DCBA"),
            m("f64", 8, "FLOAT64", "CDAB"),
            m("deci", 12, "INT16", scale=0.1),
            m("milli", 13, "UINT32", "CDAB", scale=0.001),
        ),
    )
    with Simulator([SimulatedDevice("o", model)], tick_ms=TICK) as sim:
        c = client(sim, "o")
        with c:
            t0 = Simulator.now_ms()
            regs = c.read_input_registers(0, count=15, device_id=1).registers
            t1 = Simulator.now_ms()
    raw = b"".join(struct.pack(">H", r) for r in regs)
    swapped = b"".join(struct.pack("<H", r) for r in regs)
    got = {
        "abcd": struct.unpack(">f", raw[0:4])[0],
        "cdab": ModbusTcpClient.convert_from_registers(regs[2:4], F32, word_order="little"),
        "badc": struct.unpack(">f", swapped[8:12])[0],
        "dcba": struct.unpack("<f", raw[12:16])[0],
        "f64": ModbusTcpClient.convert_from_registers(
            regs[8:12], ModbusTcpClient.DATATYPE.FLOAT64, word_order="little"
        ),
        "deci": regs[12] * 0.1,
        "milli": (regs[14] << 16 | regs[13]) * 0.001,
    }
    t = next(t for t in ticks_between(t0, t1) if sim.truth("o", "abcd", t) == got["abcd"])
    for mid, value in got.items():
        assert sim.truth("o", mid, t) == pytest.approx(value, rel=1e-12), mid
    assert 220 < got["deci"] < 240
    assert got["deci"] != got["abcd"]


def test_same_seed_same_registers_other_seed_other_registers() -> None:
    t = Simulator.now_ms()
    a = Simulator([SimulatedDevice("m", PM5560)], seed=1).registers("m", 3, 2999, 112, t)
    b = Simulator([SimulatedDevice("m", PM5560)], seed=1).registers("m", 3, 2999, 112, t)
    c = Simulator([SimulatedDevice("m", PM5560)], seed=2).registers("m", 3, 2999, 112, t)
    assert a == b != c
    later = Simulator([SimulatedDevice("m", PM5560)], seed=1).registers("m", 3, 2999, 112, t + 5000)
    assert later != a  # values vary with time


@pytest.fixture
def faulty() -> Iterator[Simulator]:
    with Simulator([SimulatedDevice("m", IEM)], tick_ms=TICK) as simulator:
        yield simulator


def test_dead_device_accepts_and_never_answers(faulty: Simulator) -> None:
    faulty.set_faults("m", Faults(dead=True))
    c = client(faulty, "m", timeout=0.3)
    start = time.monotonic()
    with c:
        try:
            answered = not c.read_holding_registers(3027, count=2, device_id=1).isError()
        except ModbusException:  # pymodbus reports a timeout either way
            answered = False
    assert not answered
    assert time.monotonic() - start >= 0.25
    faulty.set_faults("m", Faults())
    c = client(faulty, "m")
    with c:
        assert not c.read_holding_registers(3027, count=2, device_id=1).isError()


def test_slow_device_answers_late(faulty: Simulator) -> None:
    faulty.set_faults("m", Faults(latency_ms=250))
    assert faulty.faults("m").latency_ms == 250
    c = client(faulty, "m")
    with c:
        start = time.monotonic()
        rr = c.read_holding_registers(3027, count=2, device_id=1)
        elapsed = time.monotonic() - start
    assert not rr.isError()
    assert elapsed >= 0.25


def test_busy_and_illegal_address_exceptions(faulty: Simulator) -> None:
    faulty.set_faults("m", Faults(illegal=((3, 3050, 10),)))
    c = client(faulty, "m")
    with c:
        rr = c.read_holding_registers(3053, count=2, device_id=1)
        assert rr.isError()
        assert rr.exception_code == 0x02
        rr = c.read_holding_registers(3040, count=10, device_id=1)  # ends before 3050
        assert not rr.isError()
        faulty.set_faults("m", Faults(busy_fraction=0.5))
        codes = []
        for _ in range(200):
            rr = c.read_holding_registers(3027, count=2, device_id=1)
            codes.append(rr.exception_code if rr.isError() else 0)
    assert set(codes) == {0, 0x06}
    assert 60 < codes.count(0x06) < 140


def test_a_thousand_devices_as_unit_ids_behind_four_ports() -> None:
    devices = fleet(PM5560, 1000, unit_ids_per_port=250)
    with Simulator(devices, seed=3, tick_ms=1000) as sim:
        endpoints = sim.start()
        ports = {(e.host, e.port) for e in endpoints.values()}
        assert len(ports) == 4
        voltages = set()
        for host, port in sorted(ports):
            c = ModbusTcpClient(host, port=port, timeout=10, retries=0)
            assert c.connect()
            with c:
                for unit in range(1, 251):
                    rr = c.read_holding_registers(3027, count=2, device_id=unit)
                    assert not rr.isError(), (port, unit)
                    voltages.add(ModbusTcpClient.convert_from_registers(rr.registers, F32))
        assert len(voltages) > 990  # each device has its own load
        assert all(220 < v < 240 for v in voltages)  # type: ignore[operator]


def test_stopped_simulator_refuses_connections() -> None:
    sim = Simulator([SimulatedDevice("m", IEM)])
    host, port, *_ = sim.start()["m"]
    assert sim.running
    sim.stop()
    assert not sim.running
    c = ModbusTcpClient(host, port=port, timeout=0.5, retries=0)
    assert not c.connect()
    c.close()


def test_bad_simulations_are_refused_with_a_reason() -> None:
    with pytest.raises(SimulatorError, match="unit id 1 is already used"):
        Simulator(
            [SimulatedDevice("a", IEM, endpoint="x"), SimulatedDevice("b", IEM, endpoint="x")]
        )
    bad_point = replace(IEM.measurements[2], quantity="volts")
    with pytest.raises(SimulatorError, match=r"CurrentL1.*unknown quantity \"volts\""):
        Simulator([SimulatedDevice("a", replace(IEM, measurements=(bad_point,)))])
    with pytest.raises(SimulatorError, match=r"unit id 300 is not within 0\.\.255"):
        Simulator([SimulatedDevice("a", IEM, unit_id=300)])
    with pytest.raises(SimulatorError, match="tick_ms"):
        Simulator([SimulatedDevice("a", IEM)], tick_ms=0)
    sim = Simulator([SimulatedDevice("a", IEM)])
    with pytest.raises(SimulatorError, match="busy_fraction"):
        sim.set_faults("a", Faults(busy_fraction=2.0))
    with pytest.raises(KeyError, match="nope"):
        sim.truth("a", "nope", 0)
    port = sim.start()["a"].port
    taken = Simulator([SimulatedDevice("b", IEM, port=port)])
    with pytest.raises(SimulatorError, match="cannot listen"):
        taken.start()
    sim.stop()


def test_registers_without_the_network_match_the_network(sim: Simulator) -> None:
    c = client(sim, "pm")
    with c:
        for _ in range(5):
            t0 = Simulator.now_ms()
            regs = list(read(c, sim, "pm", 3019, 20).registers)
            t1 = Simulator.now_ms()
            if t0 // TICK == t1 // TICK:
                assert sim.registers("pm", 3, 3019, 20, t0) == regs
                return
    pytest.fail("every read straddled a tick")


VALID_QUANTITIES = [
    "voltage_ln.1", "voltage_ln.avg", "voltage_ll.31", "voltage_ll.avg", "current.n",
    "current.avg", "active_power.total", "reactive_power.2", "apparent_power.3",
    "power_factor.total", "frequency", "active_energy.received", "reactive_energy.delivered",
    "apparent_energy.delivered", "input.16", "output.1", "pulse_count.3", "constant:-1.5e3", "",
]  # fmt: skip
INVALID_QUANTITIES = [
    "voltage_ln.12", "voltage_ll.1", "current.12", "active_power.avg", "input.0", "input.17",
    "frequency.1", "clock.1", "volts", "constant:x", "reactive_energy.received",
]  # fmt: skip


def one_point_model(quantity: str) -> DeviceModel:
    point = MeasurementDef(
        id="p", name="p", unit="", kind="instantaneous", function=3, address=0,
        type="FLOAT32", quantity=quantity,
    )  # fmt: skip
    return DeviceModel(name="q", vendor="test", measurements=(point,))


def one_point_document(quantity: str) -> dict[str, object]:
    point = {"id": "p", "name": "p", "address": 0, "type": "FLOAT32", "quantity": quantity}
    return {"name": "q", "vendor": "t", "measurements": [point]}


@pytest.mark.parametrize("quantity", VALID_QUANTITIES)
def test_loader_and_simulator_accept_the_same_quantities(quantity: str) -> None:
    document = one_point_document(quantity)
    parse_model(document, "q.toml")
    sim = Simulator([SimulatedDevice("d", one_point_model(quantity))])
    assert isinstance(sim.truth("d", "p", Simulator.now_ms()), float)


@pytest.mark.parametrize("quantity", INVALID_QUANTITIES)
def test_loader_and_simulator_refuse_the_same_quantities(quantity: str) -> None:
    document = one_point_document(quantity)
    with pytest.raises(ModelError, match=r"measurements\[0\] \(p\)\.quantity"):
        parse_model(document, "q.toml")
    with pytest.raises(SimulatorError, match="unknown quantity"):
        Simulator([SimulatedDevice("d", one_point_model(quantity))])


def can_connect(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError:
        return False
    return True


def test_offline_device_closes_its_port_and_comes_back_on_it(faulty: Simulator) -> None:
    host, port, *_ = faulty.endpoint("m")
    c = client(faulty, "m")
    with c:
        assert not c.read_holding_registers(3027, count=2, device_id=1).isError()
        faulty.set_faults("m", Faults(offline=True))
        wait_until(lambda: not can_connect(host, port), "the port closed")
        try:  # the open connection was dropped with the port
            answered = not c.read_holding_registers(3027, count=2, device_id=1).isError()
        except ModbusException:
            answered = False
        assert not answered
    faulty.set_faults("m", Faults())
    wait_until(lambda: can_connect(host, port), "the port open again")
    c = client(faulty, "m")
    with c:
        assert not c.read_holding_registers(3027, count=2, device_id=1).isError()


def test_unavailable_measurements_serve_their_sentinel(faulty: Simulator) -> None:
    unavailable = ("VoltageL1N", "ActiveEnergyImport")
    faulty.set_faults("m", Faults(unavailable=unavailable))
    assert faulty.faults("m").unavailable == unavailable
    c = client(faulty, "m")
    with c:
        volts = c.read_holding_registers(3027, count=4, device_id=1).registers
        energy = c.read_holding_registers(3203, count=4, device_id=1).registers
    assert volts[:2] == [0xFFC0, 0x0000]  # FLOAT32 "not available"
    assert volts[2:] != [0xFFC0, 0x0000]  # VoltageL2N still served
    assert energy == [0x8000, 0, 0, 0]  # INT64 "not available"
    layout = RegisterLayout([Field(3027, "FLOAT32"), Field(3203, "INT64")])
    decoded = layout.decode([(3027, volts[:2]), (3203, energy)])
    assert not decoded.valid.any()
    t = Simulator.now_ms()
    assert faulty.truth("m", "VoltageL1N", t) is None
    assert isinstance(faulty.truth("m", "VoltageL2N", t), float)
    faulty.set_faults("m", Faults())
    c = client(faulty, "m")
    with c:
        volts = c.read_holding_registers(3027, count=2, device_id=1).registers
    assert volts != [0xFFC0, 0x0000]
    with pytest.raises(KeyError, match="Nope"):
        faulty.set_faults("m", Faults(unavailable=("Nope",)))


def test_synthetic_model_serves_a_thousand_float_points() -> None:
    model = synthetic_model(1000)
    assert len(model.measurements) == 1000
    assert model.measurements[-1].address == 1998
    with Simulator([SimulatedDevice("s", model)], tick_ms=TICK) as sim:
        c = client(sim, "s")
        with c:
            t0 = Simulator.now_ms()
            regs = c.read_holding_registers(1874, count=124, device_id=1).registers
            t1 = Simulator.now_ms()
    values = {
        m.id: ModbusTcpClient.convert_from_registers(regs[m.address - 1874 :][:2], F32)
        for m in model.measurements[937:999]
    }
    assert len(values) == 62
    matching_tick(sim, "s", values, ticks_between(t0, t1))  # type: ignore[arg-type]
    with pytest.raises(SimulatorError, match=r"1\.\.32768"):
        synthetic_model(0)


def test_a_device_can_start_offline() -> None:
    device = SimulatedDevice("m", IEM, faults=Faults(offline=True))
    with Simulator([device]) as sim:
        host, port, *_ = sim.endpoint("m")
        wait_until(lambda: not can_connect(host, port), "the port closed")
        sim.set_faults("m", Faults())
        wait_until(lambda: can_connect(host, port), "the port open again")
