"""Front end of the Rust device simulator: serve any device model over Modbus TCP.

Each :class:`SimulatedDevice` names its :class:`~panelfast.models.DeviceModel`
and where it answers: on a port of its own, or as one unit id among many
behind a shared port (``endpoint``), the way devices sit behind a Modbus
gateway. Values are realistic and consistent (V ≈ 230 V, P = V·I·PF per phase,
totals as sums, f ≈ 50 Hz, energy counters integrating the power) and
**deterministic**: a device serves, at wall-clock time ``t``, the state at the
start of ``t``'s tick, and :meth:`Simulator.truth` computes that same value
without the network, so a test knows exactly what a correct gateway must read::

    with Simulator([SimulatedDevice("mb-1", library.get("PM5560"))], seed=7) as sim:
        host, port, unit_id, transport = sim.endpoint("mb-1")
        ...  # read registers 3027.. with any Modbus client at time t
        sim.truth("mb-1", "VoltageAN", t)  # what it served
        sim.registers("mb-1", 3, 3027, 2, t)  # the registers themselves

Transports: Modbus TCP (default), RTU frames over TCP, and RTU on a serial
line (``transport="rtu"``, e.g. one end of a ``socat`` pseudo-terminal pair).
A unit id nobody has gets exception 0x0B over TCP, silence on a serial bus;
a device alone on its TCP port also answers unit ids 0 and 255.

Faults (:meth:`Simulator.set_faults`): ``dead`` (accepts, never answers),
``offline`` (powered off: its own port refuses connections),
``latency_ms``, ``busy_fraction`` (exception 0x06), ``illegal`` address ranges
(exception 0x02). Outputs of IO modules follow command writes (1 off, 2 on,
3 toggle) as on a PowerTag C IO: a contactor output is latched; an impulse
output sends one 500 ms pulse to its impulse relay when the command changes
the relay's state (none when it would not; "busy", 0x06, during a pulse).
The status registers read the load's state (contactor or relay);
:meth:`Simulator.writes` counts the write requests each device received.
:meth:`Simulator.reads` counts the reads each device was sent, to see how often a
gateway asks for what.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal, NamedTuple

from panelfast import _native
from panelfast.config import RtuConnection, Settings
from panelfast.exceptions import SimulatorError
from panelfast.models import DeviceModel, MeasurementDef
from panelfast.models.loader import ModelLibrary

__all__ = [
    "Endpoint",
    "Faults",
    "SimulatedDevice",
    "Simulator",
    "Transport",
    "devices_for_settings",
    "fleet",
    "synthetic_model",
    "unit_factor",
]

_PREFIX = {"k": 1e-3, "M": 1e-6, "m": 1e3}
_SI_UNITS = {"W", "var", "VA", "Wh", "varh", "VAh", "V", "A", "Hz"}


def unit_factor(unit: str) -> float:
    """What multiplies an SI value into ``unit``: ``kW`` → 1e-3, ``%`` → 100."""
    if unit == "%":
        return 100.0
    if unit[:1] in _PREFIX and unit[1:] in _SI_UNITS:
        return _PREFIX[unit[0]]
    return 1.0


class Faults(NamedTuple):
    """How a device misbehaves."""

    #: Accepts requests and never answers them.
    dead: bool = False
    #: Powered off: a port whose devices are all offline is closed (connections
    #: refused, open ones dropped); behind a shared port or on a bus: silence.
    offline: bool = False
    latency_ms: int = 0
    #: Share of requests answered with exception 0x06 (busy), 0..1.
    busy_fraction: float = 0.0
    #: (function code, first address, count) answered with exception 0x02.
    illegal: tuple[tuple[int, int, int], ...] = ()
    #: Measurement ids served as "not available" (their sentinel; DATETIME's invalid flag).
    unavailable: tuple[str, ...] = ()


#: Modbus TCP, RTU frames over TCP, or RTU on a serial line.
Transport = Literal["tcp", "rtu-over-tcp", "rtu"]


class Endpoint(NamedTuple):
    """Where a device answers: ``host``:``port`` (TCP), or the serial port's path in ``host``."""

    host: str
    port: int
    unit_id: int
    transport: Transport = "tcp"


@dataclass(frozen=True, slots=True)
class SimulatedDevice:
    """A device to simulate and where it answers."""

    id: str
    model: DeviceModel
    unit_id: int = 1
    #: 0: a free port chosen at start (unless ``endpoint`` groups it with others).
    port: int = 0
    #: Devices naming the same endpoint share one port, told apart by unit id.
    endpoint: str = ""
    transport: Transport = "tcp"
    #: ``rtu``: the serial line (e.g. one end of a ``socat`` pseudo-terminal pair);
    #: devices on the same line form one RTU bus.
    serial_port: str = ""
    baud_rate: int = 19200
    faults: Faults = field(default=Faults())
    #: Varies this device's load from others'; by default drawn from its id.
    seed: int | None = None


_FNV_OFFSET, _FNV_PRIME = 0xCBF29CE484222325, 0x100000001B3


def _stable_hash(text: str) -> int:
    # Python's hash() is salted per process; the load must not be.
    h = _FNV_OFFSET
    for byte in text.encode():
        h = ((h ^ byte) * _FNV_PRIME) & _U64
    return h


class Simulator:
    """Simulated devices served by the Rust core on its own runtime."""

    def __init__(
        self,
        devices: Iterable[SimulatedDevice],
        *,
        seed: int = 0,
        host: str = "127.0.0.1",
        tick_ms: int = 100,
        clock_offset_ms: int = 0,
    ) -> None:
        self.devices = tuple(devices)
        self.seed = seed
        #: The devices serve by the system clock; the times given to
        #: :meth:`truth`, :meth:`snapshot` and :meth:`registers` are on a clock
        #: this far ahead of it ("true time", in a test whose gateway's system
        #: clock is wrong while NTP and the cloud agree on the time).
        self.clock_offset_ms = clock_offset_ms
        self._index = {d.id: k for k, d in enumerate(self.devices)}
        if len(self._index) != len(self.devices):
            raise SimulatorError("device ids must be unique")
        if not 1 <= tick_ms <= 3_600_000:
            raise SimulatorError(f"tick_ms must be within 1..3600000, not {tick_ms}")
        models, listeners, native_devices = _plan(self.devices, host, seed)
        self._points = [{m.id: k for k, m in enumerate(d.model.measurements)} for d in self.devices]
        self._listener_of_device = [n[1] for n in native_devices]
        self._native = _native.Simulator(
            [_native_model(m) for m in models], listeners, native_devices, tick_ms
        )
        for d in self.devices:
            if d.faults != Faults():
                self.set_faults(d.id, d.faults)
        self._bound: list[tuple[str, int]] = []

    def start(self) -> dict[str, Endpoint]:
        """Listen and serve; where each device answers."""
        self._bound = self._native.start()
        return {d.id: self.endpoint(d.id) for d in self.devices}

    def stop(self) -> None:
        """Stop serving and close every connection."""
        self._native.stop()
        self._bound = []

    def __enter__(self) -> Simulator:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._native.running

    @property
    def tick_ms(self) -> int:
        return self._native.tick_ms

    @staticmethod
    def now_ms() -> int:
        """The simulator's clock (ms since the Unix epoch)."""
        return _native.Simulator.now_ms()

    def endpoint(self, device_id: str) -> Endpoint:
        if not self._bound:
            raise SimulatorError("the simulator is not started: no endpoint yet")
        k = self._device(device_id)
        host, port = self._bound[self._listener_of_device[k]]
        device = self.devices[k]
        return Endpoint(host, port, device.unit_id, device.transport)

    def _device(self, device_id: str) -> int:
        try:
            return self._index[device_id]
        except KeyError:
            raise KeyError(f"no simulated device {device_id!r}") from None

    def truth(self, device_id: str, measurement_id: str, t_ms: int) -> int | float | str | None:
        """The value ``device_id`` serves for ``measurement_id`` at ``t_ms``.

        Exactly what a correct decoder reads: FLOAT32 rounded to single
        precision, integers to the raw step, exact integers as ``int``,
        DATETIME as ms since the epoch, ASCII as ``str``; ``None`` when the
        device serves it as "not available" (``Faults.unavailable``).
        """
        k = self._device(device_id)
        return self._native.truth(k, self._point(k, measurement_id), t_ms - self.clock_offset_ms)

    def snapshot(self, device_id: str, t_ms: int) -> dict[str, int | float | str | None]:
        """Every measurement's value at ``t_ms``, by id (see :meth:`truth`)."""
        k = self._device(device_id)
        return {
            m.id: self._native.truth(k, p, t_ms - self.clock_offset_ms)
            for p, m in enumerate(self.devices[k].model.measurements)
        }

    def _point(self, k: int, measurement_id: str) -> int:
        try:
            return self._points[k][measurement_id]
        except KeyError:
            device_id = self.devices[k].id
            raise KeyError(f"{device_id}: no measurement {measurement_id!r}") from None

    def registers(
        self, device_id: str, function: int, address: int, count: int, t_ms: int | None = None
    ) -> list[int]:
        """The registers (bits as 0/1) a read would return at ``t_ms`` (default: now)."""
        t = self.now_ms() if t_ms is None else t_ms - self.clock_offset_ms
        return self._native.registers(self._device(device_id), function, address, count, t)

    def set_faults(self, device_id: str, faults: Faults) -> None:
        k = self._device(device_id)
        self._native.set_faults(
            k,
            dead=faults.dead,
            offline=faults.offline,
            latency_ms=faults.latency_ms,
            busy_fraction=faults.busy_fraction,
            illegal=list(faults.illegal),
            unavailable=[self._point(k, mid) for mid in faults.unavailable],
        )

    def faults(self, device_id: str) -> Faults:
        k = self._device(device_id)
        dead, offline, latency_ms, busy_fraction, illegal, unavailable = self._native.faults(k)
        ids = [m.id for m in self.devices[k].model.measurements]
        return Faults(
            dead,
            offline,
            latency_ms,
            busy_fraction,
            tuple(illegal),
            tuple(ids[p] for p in unavailable),
        )

    def reads(self, device_id: str) -> dict[tuple[int, int, int], int]:
        """How many times each read reached the device, answered or not:
        ``{(function, address, count): times}`` since the simulator was made."""
        return self._native.reads(self._device(device_id))

    def reads_touching(self, device_id: str, function: int, address: int, count: int = 1) -> int:
        """How many reads of ``function`` reached the device that cover any of
        ``count`` registers from ``address``."""
        end = address + count
        return sum(
            times
            for (fc, start, n), times in self.reads(device_id).items()
            if fc == function and start < end and address < start + n
        )

    def outputs(self, device_id: str) -> dict[str, bool]:
        """Each output's state as its status register reads it (True = on): the
        contactor, or the impulse relay (which stays as its last pulse left it)."""
        k = self._device(device_id)
        states = self._native.outputs(k)
        return {o.id: on for o, on in zip(self.devices[k].model.outputs, states, strict=True)}

    def writes(self, device_id: str) -> int:
        """How many write requests (functions 5, 6, 15, 16...) reached ``device_id``,
        whatever the answer: what proves that a gateway wrote nothing."""
        return self._native.writes(self._device(device_id))


_U64 = 0xFFFF_FFFF_FFFF_FFFF


def _plan(
    devices: tuple[SimulatedDevice, ...], host: str, seed: int
) -> tuple[list[DeviceModel], list[tuple[str, str, int]], list[tuple[int, int, int, int]]]:
    """Models (each once), listeners (devices sharing one once), and the native
    form of each device: (model index, listener index, unit id, seed)."""
    models: list[DeviceModel] = []
    model_index: dict[int, int] = {}
    listeners: list[tuple[str, str, int]] = []
    listener_of: dict[object, int] = {}
    native: list[tuple[int, int, int, int]] = []
    for k, d in enumerate(devices):
        highest = 247 if d.transport == "rtu" else 255
        if not 0 <= d.unit_id <= highest:
            raise SimulatorError(f"{d.id}: unit id {d.unit_id} is not within 0..{highest}")
        if not 0 <= d.port <= 65535:
            raise SimulatorError(f"{d.id}: port {d.port} is not within 0..65535")
        if id(d.model) not in model_index:
            model_index[id(d.model)] = len(models)
            models.append(d.model)
        key, listener = _listener(k, d, host)
        if key not in listener_of:
            listener_of[key] = len(listeners)
            listeners.append(listener)
        elif listeners[listener_of[key]] != listener:
            raise SimulatorError(f"{d.id}: its endpoint is already used with other settings")
        # Each device its own load: from its id unless given, varied by the seed.
        device_seed = d.seed if d.seed is not None else _stable_hash(d.id)
        mixed = (device_seed ^ (seed * 0x9E3779B97F4A7C15)) & _U64
        native.append((model_index[id(d.model)], listener_of[key], d.unit_id, mixed))
    return models, listeners, native


def _listener(k: int, d: SimulatedDevice, host: str) -> tuple[object, tuple[str, str, int]]:
    """Which devices share a listener, and the listener's native form."""
    if d.transport == "rtu":
        if not d.serial_port:
            raise SimulatorError(f"{d.id}: an rtu device needs its serial_port")
        return ("rtu", d.serial_port), ("rtu", d.serial_port, d.baud_rate)
    key = ("endpoint", d.endpoint) if d.endpoint else ("port", d.port or -k - 1)
    return (d.transport, *key), (d.transport, host, d.port)


#: (id, function, field, quantity, unit factor) of a point; (id, command, status, impulse)
#: of an output; (name, points, outputs, max registers per read) of a model.
_Point = tuple[str, int, _native.Field, str, float]
_NativeModel = tuple[str, list[_Point], list[tuple[str, int, int, bool]], int]


def _native_model(model: DeviceModel) -> _NativeModel:
    points = [
        (
            m.id,
            int(m.function),
            _native.Field(
                m.address,
                m.type,
                m.order,
                m.scale,
                m.offset,
                m.invalid,
                m.bit,
                m.bits,
                m.length,
            ),
            m.quantity,
            unit_factor(m.unit),
        )
        for m in model.measurements
    ]
    outputs = [
        (o.id, o.command_address, o.status_address, o.mode == "impulse") for o in model.outputs
    ]
    return (model.name, points, outputs, model.max_registers_per_read)


def fleet(
    model: DeviceModel,
    count: int,
    *,
    prefix: str | None = None,
    unit_ids_per_port: int = 0,
    base_port: int = 0,
    first: int = 0,
    endpoint_prefix: str | None = None,
    transport: Transport = "tcp",
    serial_port: str = "",
    baud_rate: int = 19200,
    faults: Faults | None = None,
) -> list[SimulatedDevice]:
    """``count`` devices of one model, numbered from ``first`` + 1.

    With ``unit_ids_per_port`` = 0 each device has a port of its own; with n,
    devices sit n to a port as unit ids 1..n (Modbus unit ids are 8-bit: a
    thousand devices take four ports of 250). Ports are free ones, or
    consecutive from ``base_port``. Fleets of several models share ports when
    they are laid out one after the other (``first``) under one
    ``endpoint_prefix``.
    """
    if count < 0 or not 0 <= unit_ids_per_port <= 255:
        raise SimulatorError("count must be ≥ 0 and unit_ids_per_port within 0..255")
    stem = prefix or re.sub(r"[^A-Za-z0-9_.-]", "-", model.name.lower())
    shared = endpoint_prefix or stem
    devices: list[SimulatedDevice] = []
    for k in range(first, first + count):
        group, unit = divmod(k, unit_ids_per_port) if unit_ids_per_port else (k, 0)
        devices.append(
            SimulatedDevice(
                id=f"{stem}-{k + 1}",
                model=model,
                unit_id=unit + 1,
                port=base_port + group if base_port else 0,
                endpoint=f"{shared}-port-{group}" if unit_ids_per_port else "",
                transport=transport,
                serial_port=serial_port,
                baud_rate=baud_rate,
                faults=faults or Faults(),
            )
        )
    return devices


def devices_for_settings(
    settings: Settings, library: ModelLibrary
) -> tuple[list[SimulatedDevice], list[str]]:
    """The gateway's configured devices, to serve where it will look for them.

    Modbus TCP and RTU-over-TCP devices are served on their configured port and
    unit id (devices sharing a port share a listener). Devices on a serial line
    are returned by id in the second list: serve them with ``transport="rtu"``
    on the other end of a pseudo-terminal pair.
    """
    devices: list[SimulatedDevice] = []
    serial: list[str] = []
    for d in settings.devices:
        c = d.connection
        if isinstance(c, RtuConnection):
            serial.append(d.id)
            continue
        devices.append(
            SimulatedDevice(
                id=d.id,
                model=library.get(d.model),
                unit_id=c.unit_id,
                port=c.port,
                endpoint=f"{c.type}:{c.port}",
                transport=c.type,
            )
        )
    return devices, serial


_SYNTHETIC = (
    ("voltage_ln.1", "V"), ("voltage_ln.2", "V"), ("voltage_ln.3", "V"),
    ("current.1", "A"), ("current.2", "A"), ("current.3", "A"),
    ("active_power.total", "kW"), ("reactive_power.total", "kvar"),
    ("power_factor.total", ""), ("frequency", "Hz"),
)  # fmt: skip


def synthetic_model(points: int) -> DeviceModel:
    """A device of ``points`` FLOAT32 measurements in consecutive holding registers
    (0, 2, 4...), cycling through the electrical quantities: the load of the
    acquisition benchmarks (100 devices × 1,000 points every second)."""
    if not 1 <= points <= 32768:
        raise SimulatorError(f"a synthetic model has 1..32768 points, not {points}")
    measurements = tuple(
        MeasurementDef(
            id=f"P{k:05d}",
            name=f"Point {k}",
            unit=_SYNTHETIC[k % len(_SYNTHETIC)][1],
            kind="instantaneous",
            function=3,
            address=2 * k,
            type="FLOAT32",
            quantity=_SYNTHETIC[k % len(_SYNTHETIC)][0],
        )
        for k in range(points)
    )
    return DeviceModel(
        name=f"synthetic-{points}",
        vendor="panelfast",
        description=f"{points} FLOAT32 measurements in consecutive registers",
        measurements=measurements,
    )
