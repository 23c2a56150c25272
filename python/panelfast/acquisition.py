"""Acquisition: every device's Modbus polling, run by the Rust engine off the GIL.

:class:`Acquisition` builds a :class:`panelfast._native.ModbusEngine` from the
commissioned devices (:class:`~panelfast.config.DeviceSettings`) and their
models (:class:`~panelfast.models.DeviceModel`). The engine polls on its own
threads; Python only reads a whole :class:`Snapshot` of all points in one call
(numpy arrays, no per-register objects) and the per-device diagnostics.
Points go to the engine as typed :class:`~panelfast._native.ModbusPoint` objects
(made once per model, shared by its devices) and diagnostics come back as
frozen :class:`DeviceDiagnostics`, built once in the Rust binding.

Identification measurements (``identification = true`` in the model: name,
model, serial number) are read once per connection, and registers a device
answers it does not have (exception 0x02) are not asked for again until it
reconnects; :attr:`DeviceDiagnostics.lacking` lists them.

Point order (the index into every snapshot array): devices in the order
given, and within a device its model's measurements in model order, then its
outputs' status registers. :attr:`Acquisition.points` lists them and
:meth:`Acquisition.index` finds one.

Changing the device set while polling (a live reload): :meth:`Acquisition.switch_to`
gives this object a new engine and point layout in place (the gateway's parts
hold this object), at a moment the caller chooses (a sampling instant), and
:meth:`Acquisition.finish_switch` then stops the old engine and starts the new
one. The unchanged devices keep their last readings meanwhile
(:mod:`panelfast._carried`).

Times: the engine stamps reads on the system clock; given the gateway's
:class:`~panelfast.clock.Clock`, the read times that leave this module (in
snapshots and raw blocks) are converted here, once, with the clock's offset
*at the moment they are read*: the age of a reading stays right when a
resynchronisation changes the offset. (The diagnostics' times, built in the
Rust binding, are still the system clock's.)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self

import numpy as np
from numpy.typing import NDArray

from panelfast._carried import CarriedReadings
from panelfast._native import (
    DeviceDiagnostics,
    Field,
    LastError,
    ModbusEngine,
    ModbusPoint,
    RegisterRange,
)
from panelfast.clock import Clock
from panelfast.config import DeviceSettings, RtuConnection, TcpConnection
from panelfast.exceptions import LayoutError, ModbusError
from panelfast.models import DeviceModel, MeasurementDef, OutputDef

__all__ = [
    "Acquisition",
    "DeviceDiagnostics",
    "DeviceState",
    "LastError",
    "MeasurementReading",
    "PointKind",
    "PointRef",
    "RawBlock",
    "RegisterRange",
    "Snapshot",
]

log = logging.getLogger(__name__)

#: :attr:`DeviceDiagnostics.state`.
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
    point was sent (unix ms on the gateway's clock, 0 before the first);
    ``texts`` holds ASCII points.
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
    #: When the read was sent (unix ms on the gateway's clock).
    read_at_ms: int
    #: The registers (bits as 0/1 for functions 1 and 2); None: no data.
    registers: NDArray[np.uint16] | None


@dataclass(frozen=True, slots=True)
class MeasurementReading:
    """A measurement's latest value, for a person to look at (see :meth:`Acquisition.readings`)."""

    id: str
    name: str
    unit: str
    #: The register type (``FLOAT32``, ``DATETIME``: unix ms, ``ASCII``: text...).
    type: str
    #: The value as decoded (an exact integer for unscaled integers, text for
    #: ASCII); None when the device has not given a valid one.
    value: float | int | str | None
    #: When the read that gave it was sent (unix ms, gateway's clock); None: never read.
    read_at_ms: int | None


_NO_INTEGER = int(np.iinfo(np.int64).min)


def _point(m: MeasurementDef) -> ModbusPoint:
    field = Field(m.address, m.type, m.order, m.scale, m.offset, m.invalid, m.bit, m.bits, m.length)
    return ModbusPoint(m.function, field, identification=m.identification)


def _status_point(output: OutputDef) -> ModbusPoint:
    return ModbusPoint(3, Field(output.status_address, "UINT16"))


def _model_points(device_id: str, model: DeviceModel) -> list[ModbusPoint]:
    """A model's points in snapshot order: its measurements, then its outputs' status."""
    points: list[ModbusPoint] = []
    for k, m in enumerate(model.measurements):
        where = f"device {device_id!r} (model {model.name!r}) measurement {k} ({m.id})"
        try:
            points.append(_point(m))
        except LayoutError as e:
            raise LayoutError(f"{where}: {e}") from e
        except (ValueError, OverflowError) as e:
            # Out of range for Modbus (function 5, bit 300...).
            raise ModbusError(f"{where}: {e}") from e
    return points + [_status_point(o) for o in model.outputs]


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
        self._layouts: dict[int, tuple[DeviceModel, dict[str, int], list[ModbusPoint]]] = {}
        # Per device: how long its readings stay fresh (two poll periods plus a
        # timeout, as the sampling judges them): how long a reload carries them.
        self._fresh_ms: dict[str, int] = {}
        count = 0
        for settings, model in devices:
            if id(model) not in self._layouts:
                ids = [m.id for m in model.measurements] + [o.id for o in model.outputs]
                positions = {point_id: k for k, point_id in enumerate(ids)}
                points = _model_points(settings.id, model)
                self._layouts[id(model)] = (model, positions, points)
            self._add(settings, model, self._layouts[id(model)][2], retries)
            self._devices[settings.id] = (model, count)
            connection = settings.connection
            self._fresh_ms[settings.id] = 2 * connection.period_ms + connection.timeout_ms
            count += len(model.measurements) + len(model.outputs)
        self._size = count
        self._points: tuple[PointRef, ...] | None = None
        self._states: dict[str, DeviceState] = {}
        # During a switch of device sets: the old engine, until it has stopped,
        # and the unchanged devices' readings, until the new engine has them.
        self._retired: ModbusEngine | None = None
        self._carried: CarriedReadings | None = None
        self._stopped = False

    @property
    def size(self) -> int:
        """How many points a snapshot holds."""
        return self._size

    def _offset_ms(self) -> int:
        return self._clock.offset_ms if self._clock is not None else 0

    def _on_clock(self, system_ms: int) -> int:
        """A system-clock time from the engine on the gateway's clock (0: never)."""
        return system_ms + self._offset_ms() if system_ms else 0

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

    def _add(
        self,
        settings: DeviceSettings,
        model: DeviceModel,
        points: list[ModbusPoint],
        retries: int,
    ) -> None:
        connection = settings.connection
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
            # A setting out of range for Modbus (unit id 300...): name the device.
            raise ModbusError(f"device {settings.id!r} (model {model.name!r}): {e}") from e

    @property
    def running(self) -> bool:
        """Polling (a switch of device sets under way counts: it polls again at once)."""
        return self._engine.running or self._retired is not None

    def start(self) -> None:
        """Start polling (on the engine's own threads)."""
        self._engine.start()

    def stop(self) -> None:
        """Stop polling and close every connection."""
        self._stopped = True
        self._engine.stop()
        retired, self._retired, self._carried = self._retired, None, None
        if retired is not None:
            retired.stop()

    def switch_to(self, new: Acquisition, *, carry: Collection[str] = ()) -> None:
        """Poll ``new``'s devices from now on, in place (``new`` is used up).

        Synchronous, so the caller makes it one moment (a sampling instant):
        from the next snapshot on, indices are ``new``'s. A polling engine is
        not stopped here: :meth:`finish_switch` stops it, then starts the new
        one. Until then, and until the new engine has read them, the devices
        in ``carry`` (same connection, same model on both sides) keep their
        last readings in the snapshots.
        """
        if new.running:
            raise ValueError("the device set to switch to must not be polling yet")
        old_engine, old_devices = self._engine, self._devices
        polling = old_engine.running
        self._engine, self._devices, self._layouts = new._engine, new._devices, new._layouts
        self._size, self._fresh_ms, self._points = new._size, new._fresh_ms, None
        self._states = {d: s for d, s in self._states.items() if d in self._devices}
        if not polling:
            self._carried = None
            return
        self._retired = old_engine
        spans = []
        for device_id in carry:
            before, after = old_devices.get(device_id), self._devices.get(device_id)
            if before is None or after is None:
                continue
            count = len(after[0].measurements) + len(after[0].outputs)
            spans.append((before[1], after[1], count))
        longest = max((self._fresh_ms[d] for d in carry if d in self._devices), default=0)
        self._carried = CarriedReadings(old_engine, spans, self._system_now_ms() + longest)

    async def finish_switch(self) -> None:
        """After :meth:`switch_to` while polling: stop the old engine (off the event
        loop: it waits for its connections to close), then start the new one."""
        retired = self._retired
        if retired is None:
            return
        await asyncio.to_thread(retired.stop)
        if self._carried is not None:
            self._carried.old_stopped()
        self._retired = None
        if not self._stopped:
            self._engine.start()

    def _system_now_ms(self) -> int:
        if self._clock is not None:
            return self._clock.now_ms() - self._clock.offset_ms
        return time.time_ns() // 1_000_000

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
        texts = self._engine.texts()
        carried = self._carried
        if carried is not None:
            arrays = (values, integers, valid, read_at_ms)
            if not carried.fill(arrays, texts, self._system_now_ms()):
                self._carried = None
        offset = self._offset_ms()
        if offset:
            # In place: the engine hands over fresh arrays. 0 (never read) stays 0.
            np.add(read_at_ms, offset, out=read_at_ms, where=read_at_ms > 0)
        return Snapshot(values, integers, valid, read_at_ms, texts)

    def readings(self, device_id: str) -> list[MeasurementReading]:
        """A device's measurements and their latest values, built on request from one
        snapshot (pages and commands ask for this; the sampling path never does)."""
        entry = self._devices.get(device_id)
        if entry is None:
            raise KeyError(f"no device {device_id!r}")
        model, first = entry
        snap = self.snapshot()
        span = slice(first, first + len(model.measurements))
        values, integers = snap.values[span].tolist(), snap.integers[span].tolist()
        valid, read_at = snap.valid[span].tolist(), snap.read_at_ms[span].tolist()
        readings = []
        for k, m in enumerate(model.measurements):
            # Text is kept apart from the numeric arrays (whose valid flag it lacks).
            value: float | int | str | None = snap.texts.get(first + k)
            if value is None and valid[k]:
                value = integers[k] if integers[k] != _NO_INTEGER else values[k]
            readings.append(
                MeasurementReading(m.id, m.name, m.unit, m.type, value, read_at[k] or None)
            )
        return readings

    def raw_blocks(self, device_id: str) -> list[RawBlock]:
        """A device's last cycle as it answered: one block per read (commissioning aid)."""
        return [
            RawBlock(function, start, self._on_clock(read_at), registers)
            for function, start, read_at, registers in self._engine.raw_blocks(device_id)
        ]

    def diagnostics(self) -> list[DeviceDiagnostics]:
        """Each device's state, last error, round-trip times, counters, and the
        registers it lacks; its times on the gateway's clock, as the snapshot's."""
        return self._engine.diagnostics(self._offset_ms())

    def state_changes(self) -> list[tuple[DeviceDiagnostics, DeviceState]]:
        """The devices whose state changed since the last call, each with its state before."""
        changed = []
        for d in self.diagnostics():
            before = self._states.get(d.device_id, "unknown")
            # "unknown" is where a new engine starts (a reload): not news about the device.
            if d.state != before and d.state != "unknown":
                changed.append((d, before))
                self._states[d.device_id] = d.state
        return changed

    async def watch_states(self, interval_s: float = 1.0) -> None:
        """Log each device going offline and coming back, once per change."""
        while True:
            await asyncio.sleep(interval_s)
            for d, before in self.state_changes():
                _log_state_change(d, before)

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


def _log_state_change(d: DeviceDiagnostics, before: DeviceState) -> None:
    error = d.last_error.message if d.last_error is not None else None
    fields = {"device": d.device_id, "state": d.state, "previous_state": before, "error": error}
    if d.state == "offline":
        log.warning(
            "device %s offline: %s",
            d.device_id,
            error or "no answer",
            extra={"event": "device.offline", **fields},
        )
    elif before == "offline":
        log.info(
            "device %s back (%s)", d.device_id, d.state, extra={"event": "device.back", **fields}
        )
    elif before == "unknown":
        log.info(
            "device %s answering (%s)",
            d.device_id,
            d.state,
            extra={"event": "device.answering", **fields},
        )
    else:
        # Degraded comes and goes with a busy device: kept out of a normal log.
        log.debug(
            "device %s %s (was %s): %s",
            d.device_id,
            d.state,
            before,
            error,
            extra={"event": f"device.{d.state}", **fields},
        )
