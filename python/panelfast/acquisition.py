"""Acquisition: every device's Modbus polling, run by the Rust engine off the GIL.

:class:`Acquisition` builds a :class:`panelfast._native.ModbusEngine` from the
commissioned devices (:class:`~panelfast.config.DeviceSettings`) and their
models (:class:`~panelfast.models.DeviceModel`). The engine polls on its own
threads; Python only reads a whole :class:`Snapshot` of all points in one call
(numpy arrays, no per-register objects) and the per-device diagnostics.

Point order (the index into every snapshot array): devices in the order
given, and within a device its model's measurements in model order, then its
outputs' status registers. :attr:`Acquisition.points` lists them and
:meth:`Acquisition.index` finds one.

Times: the engine stamps reads on the system clock; given the gateway's
:class:`~panelfast.clock.Clock`, every time that leaves this module (read
times in snapshots and raw blocks, the diagnostics' times) is converted here,
once, with the clock's offset *at the moment it is read*: the age of a reading
stays right when a resynchronisation changes the offset.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self

import numpy as np
from numpy.typing import NDArray

from panelfast._native import ModbusEngine
from panelfast.clock import Clock
from panelfast.config import DeviceSettings, RtuConnection, TcpConnection
from panelfast.exceptions import ModbusError
from panelfast.models import DeviceModel, MeasurementDef, OutputDef

__all__ = [
    "Acquisition",
    "DeviceDiagnostics",
    "DeviceState",
    "LastError",
    "PointKind",
    "PointRef",
    "RawBlock",
    "Snapshot",
]

DeviceState = Literal["unknown", "ok", "degraded", "offline"]
#: A model's measurement, or the status register of one of its outputs.
PointKind = Literal["measurement", "output"]
WriteFunction = Literal[5, 6, 15, 16]
#: Output commands (function 6 on the output's command register), §9.
OutputCommand = Literal[1, 2, 3]


@dataclass(frozen=True, slots=True)
class PointRef:
    """Which device and measurement (or output) a snapshot index holds."""

    device_id: str
    id: str
    kind: PointKind
    index: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The latest value of every point, index-aligned arrays.

    ``values`` is NaN where ``valid`` is false; ``integers`` holds the exact
    value of unscaled integer points (energy counters, DATETIME in unix ms)
    and ``i64::MIN`` otherwise; ``read_at_ms`` is when the read holding the
    point was sent (unix ms, 0 before the first); ``texts`` holds ASCII points.
    """

    values: NDArray[np.float64]
    integers: NDArray[np.int64]
    valid: NDArray[np.bool_]
    read_at_ms: NDArray[np.int64]
    texts: dict[int, str]


@dataclass(frozen=True, slots=True)
class RawBlock:
    """One read of a device's last cycle, as the device answered it."""

    function: int
    start: int
    #: When the read was sent (unix ms).
    read_at_ms: int
    #: The registers (bits as 0/1 for functions 1 and 2); None: no data.
    registers: NDArray[np.uint16] | None


@dataclass(frozen=True, slots=True)
class LastError:
    """A device's last failed request."""

    #: ``exception`` (the device answered no), ``timeout``, ``transport`` or ``protocol``.
    kind: str
    #: The exception code (0x02...) for exception responses.
    code: int | None
    #: ``IllegalDataAddress``... for exceptions, else the kind.
    name: str
    message: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class DeviceDiagnostics:
    """How a device's polling goes."""

    device_id: str
    state: DeviceState
    last_error: LastError | None
    rtt_last_ms: float
    rtt_mean_ms: float
    rtt_max_ms: float
    requests: int
    errors: int
    timeouts: int
    exceptions: int
    cycles: int
    overruns: int
    reads_per_cycle: int
    last_cycle_ms: int | None
    #: How long the last cycle's reads took, back to back.
    last_cycle_duration_ms: float
    last_answer_ms: int | None

    @classmethod
    def from_engine(cls, raw: dict[str, Any]) -> DeviceDiagnostics:
        error = raw["last_error"]
        return cls(
            **{
                **raw,
                "last_error": None if error is None else LastError(**error),
            }
        )


#: What the engine takes per point: function, address, type, order, scale,
#: offset, invalid (sentinel), bit, bits, length.
_Point = tuple[int, int, str, str, float, float, int | bool | None, int, int, int]


def _point(m: MeasurementDef) -> _Point:
    return (
        m.function, m.address, m.type, m.order, m.scale, m.offset,
        m.invalid, m.bit, m.bits, m.length,
    )  # fmt: skip


def _status_point(output: OutputDef) -> _Point:
    return (3, output.status_address, "UINT16", "ABCD", 1.0, 0.0, None, 0, 1, 0)


class Acquisition:
    """Polls the given devices; start it, then read snapshots and diagnostics."""

    def __init__(
        self,
        devices: Iterable[tuple[DeviceSettings, DeviceModel]],
        *,
        retries: int = 2,
        clock: Clock | None = None,
    ) -> None:
        self._engine = ModbusEngine()
        # None: times stay on the system clock (a tool with no synchronised clock).
        self._clock = clock
        # Per device its model and first snapshot index; per model (many
        # devices share one) where each point sits: no per-point objects for
        # 100,000 points unless :attr:`points` is asked for.
        self._devices: dict[str, tuple[DeviceModel, int]] = {}
        self._layouts: dict[int, tuple[DeviceModel, dict[str, int]]] = {}
        count = 0
        for settings, model in devices:
            self._add(settings, model, retries)
            self._devices[settings.id] = (model, count)
            if id(model) not in self._layouts:
                ids = [m.id for m in model.measurements] + [o.id for o in model.outputs]
                self._layouts[id(model)] = (model, {point_id: k for k, point_id in enumerate(ids)})
            count += len(model.measurements) + len(model.outputs)
        self._size = count
        self._points: tuple[PointRef, ...] | None = None

    @property
    def size(self) -> int:
        """How many points a snapshot holds."""
        return self._size

    def _offset_ms(self) -> int:
        return self._clock.offset_ms if self._clock is not None else 0

    def _on_clock(self, system_ms: int | None) -> int | None:
        """A system-clock time from the engine on the gateway's clock (0 and None: never)."""
        if not system_ms:
            return system_ms
        return system_ms + self._offset_ms()

    @property
    def points(self) -> tuple[PointRef, ...]:
        """Every point, in snapshot order."""
        if self._points is None:
            points: list[PointRef] = []
            for device_id, (model, first) in self._devices.items():
                points += [
                    PointRef(device_id, m.id, "measurement", first + k)
                    for k, m in enumerate(model.measurements)
                ]
                after = first + len(model.measurements)
                points += [
                    PointRef(device_id, o.id, "output", after + k)
                    for k, o in enumerate(model.outputs)
                ]
            self._points = tuple(points)
        return self._points

    def _add(self, settings: DeviceSettings, model: DeviceModel, retries: int) -> None:
        connection = settings.connection
        points = [_point(m) for m in model.measurements]
        points += [_status_point(o) for o in model.outputs]
        common: dict[str, Any] = {
            "points": points,
            "unit_id": connection.unit_id,
            "period_ms": connection.period_ms,
            "timeout_ms": connection.timeout_ms,
            "retries": retries,
            "max_registers_per_read": model.max_registers_per_read,
            "max_gap": model.max_gap,
        }
        try:
            if isinstance(connection, TcpConnection):
                self._engine.add_device(
                    settings.id,
                    transport=connection.type,
                    host=connection.host,
                    port=connection.port,
                    **common,
                )
            else:
                assert isinstance(connection, RtuConnection)
                self._engine.add_device(
                    settings.id,
                    transport="rtu",
                    serial_port=connection.port,
                    baud_rate=connection.baud_rate,
                    parity=connection.parity,
                    stop_bits=connection.stop_bits,
                    data_bits=connection.data_bits,
                    **common,
                )
        except (ValueError, OverflowError) as e:
            # A point out of range for Modbus (address > 65535...): name the device.
            raise ModbusError(f"device {settings.id!r} (model {model.name!r}): {e}") from e

    @property
    def running(self) -> bool:
        return self._engine.running

    def start(self) -> None:
        """Start polling (on the engine's own threads)."""
        self._engine.start()

    def stop(self) -> None:
        """Stop polling and close every connection."""
        self._engine.stop()

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    def index(self, device_id: str, point_id: str) -> int:
        """The snapshot index of a device's measurement (or output status)."""
        entry = self._devices.get(device_id)
        if entry is None:
            raise KeyError(f"no device {device_id!r}")
        model, first = entry
        position = self._layouts[id(model)][1].get(point_id)
        if position is None:
            raise KeyError(f"no point {point_id!r} on device {device_id!r}")
        return first + position

    def snapshot(self) -> Snapshot:
        """The latest values of all points, in one call."""
        values, integers, valid, read_at_ms = self._engine.snapshot()
        offset = self._offset_ms()
        if offset:
            # In place: the engine hands over fresh arrays. 0 (never read) stays 0.
            np.add(read_at_ms, offset, out=read_at_ms, where=read_at_ms > 0)
        return Snapshot(values, integers, valid, read_at_ms, self._engine.texts())

    def raw_blocks(self, device_id: str) -> list[RawBlock]:
        """A device's last cycle as it answered: one block per read (commissioning aid)."""
        return [
            RawBlock(function, start, self._on_clock(read_at) or 0, registers)
            for function, start, read_at, registers in self._engine.raw_blocks(device_id)
        ]

    def diagnostics(self) -> list[DeviceDiagnostics]:
        """Each device's state, last error, round-trip times and counters."""
        out = []
        for raw in self._engine.diagnostics():
            for key in ("last_cycle_ms", "last_answer_ms"):
                raw[key] = self._on_clock(raw[key])
            if raw["last_error"] is not None:
                raw["last_error"]["at_ms"] = self._on_clock(raw["last_error"]["at_ms"])
            out.append(DeviceDiagnostics.from_engine(raw))
        return out

    async def write(
        self, device_id: str, function: WriteFunction, address: int, values: Sequence[int]
    ) -> None:
        """Write (function 5, 6, 15 or 16); it jumps ahead of the device's polling.

        Raises :class:`~panelfast.exceptions.ModbusExceptionError` when the
        device refuses, ``ModbusTimeoutError`` / ``ModbusTransportError`` when
        it does not answer.
        """
        await asyncio.to_thread(self._engine.write, device_id, function, address, list(values))

    async def command_output(self, device_id: str, output_id: str, command: OutputCommand) -> None:
        """Switch an output: 1 off, 2 on, 3 toggle, on its command register (§9)."""
        entry = self._devices.get(device_id)
        if entry is None:
            raise KeyError(f"no device {device_id!r}")
        model = entry[0]
        output = next((o for o in model.outputs if o.id == output_id), None)
        if output is None:
            raise KeyError(f"no output {output_id!r} on device {device_id!r}")
        await self.write(device_id, 6, output.command_address, [command])
