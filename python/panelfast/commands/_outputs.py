"""Switching the outputs of IO modules, confirming by read-back, and seeing every change.

An output is switched by writing its command register (function 6: 1 off,
2 on, 3 toggle, as on a PowerTag C IO); the acquisition engine sends the write
ahead of the device's polling, on the same connection, so it never overlaps a
poll. Then the output's status register is read back: the switch is ``done``
only once a poll sent *after* the write answered shows the expected state.
One switch at a time per device (a schedule and a cloud command on the same
device take turns), and a command's expiry is judged at the last moment,
just before the write.

Every state change is recorded with its source and queued for the cloud
(:meth:`CommandStore.record_state`): the gateway's own switches as ``cloud``,
``schedule`` or ``local``, and changes seen on the device by polling that
nobody here made (a push button, a manual override) as ``local``. The last
change of each output (when, by which source) is kept in memory as well, for
the status the page shows at every refresh.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from panelfast.acquisition import Acquisition
from panelfast.clock import Clock
from panelfast.commands._model import Action, OutputRef
from panelfast.commands._store import CommandStore, KnownState, Source
from panelfast.config import DeviceSettings
from panelfast.exceptions import ModbusError, ModbusExceptionError
from panelfast.models import DeviceModel, OutputDef

__all__ = ["Devices", "OutputControl", "OutputInfo", "SwitchResult"]

log = logging.getLogger(__name__)

_CODES: dict[str, Literal[1, 2, 3]] = {"off": 1, "on": 2, "toggle": 3}
#: Exception 0x06: an impulse output still sending its pulse. Tried again this often.
_BUSY = 0x06
_BUSY_TRIES = 5
_BUSY_PAUSE_S = 0.3
#: How often the read-back looks at the latest snapshot.
_READBACK_POLL_S = 0.05


#: The devices whose outputs are controlled: fixed, or asked each time (a live
#: reload of the configuration adds, removes and changes devices).
Devices = (
    Sequence[tuple[DeviceSettings, DeviceModel]]
    | Callable[[], Iterable[tuple[DeviceSettings, DeviceModel]]]
)


@dataclass(frozen=True, slots=True)
class SwitchResult:
    status: Literal["done", "rejected", "failed"]
    reason: str | None = None
    #: The state read back after the write (``on``/``off``), if one was read.
    readback: str | None = None


@dataclass(frozen=True, slots=True)
class OutputInfo:
    """An output as the API and the page show it."""

    device: str
    #: The output's id in its device's model (``Q1``): ``device/id`` names it (§5).
    id: str
    name: str
    #: ``contactor`` (latched) or ``impulse``.
    mode: str
    #: As last polled (``on``/``off``); None when the device has not answered.
    state: Literal["on", "off"] | None
    #: The last change known (unix ms, by the gateway's clock) and who made it:
    #: ``cloud``, ``schedule`` or ``local`` (a local switch, or seen on the device).
    changed_at_ms: int | None
    changed_by: str | None

    @property
    def ref(self) -> OutputRef:
        return OutputRef(self.device, self.id)


@dataclass(frozen=True, slots=True)
class _Output:
    ref: OutputRef
    definition: OutputDef
    #: The longest a poll of its status may take to come after a write.
    readback_s: float


def _word(state: bool) -> Literal["on", "off"]:
    return "on" if state else "off"


class OutputControl:
    """The configured devices' outputs: switch them, read them, watch them."""

    def __init__(
        self,
        acquisition: Acquisition,
        devices: Devices,
        store: CommandStore,
        clock: Clock,
        *,
        on_change: Callable[[], None] = lambda: None,
        watch_interval_s: float = 1.0,
    ) -> None:
        self._acquisition = acquisition
        self._store = store
        self._clock = clock
        self._on_change = on_change
        self._watch_interval_s = watch_interval_s
        self._devices = devices if callable(devices) else lambda: devices
        self._table: dict[OutputRef, _Output] = {}
        self._table_of: tuple[tuple[int, int], ...] | None = None
        self._locks: dict[str, asyncio.Lock] = {}
        # Outputs being switched: the watcher leaves their changes to the switch.
        self._switching: set[OutputRef] = set()
        self._seen_ms: dict[OutputRef, int] = {}
        # Last known states (as stored): the watcher compares polls with them in memory.
        self._known: dict[str, KnownState] = store.known_states()

    def _outputs(self) -> dict[OutputRef, _Output]:
        """The outputs of the devices configured now (any thread)."""
        devices = list(self._devices())
        of = tuple((id(settings), id(model)) for settings, model in devices)
        if of != self._table_of:  # a live reload changed the devices: built anew
            table = {}
            for settings, model in devices:
                c = settings.connection
                # Two poll periods (a cycle may just have started), its reads retried, a margin.
                readback_s = (2 * c.period_ms + 3 * c.timeout_ms) / 1000 + 1.0
                for o in model.outputs:
                    ref = OutputRef(settings.id, o.id)
                    table[ref] = _Output(ref, o, readback_s)
            self._table, self._table_of = table, of
        return self._table

    def _index(self, ref: OutputRef) -> int | None:
        """The output's status in the snapshots; None if its device just went (a reload)."""
        try:
            return self._acquisition.index(ref.device, ref.output)
        except KeyError:
            return None

    def has(self, ref: OutputRef) -> bool:
        return ref in self._outputs()

    def outputs(self) -> list[OutputInfo]:
        """Every configured output (any thread: it reads the snapshot and a copy of memory)."""
        outputs = self._outputs()
        snapshot = self._acquisition.snapshot() if outputs else None
        known = dict(self._known)
        infos = []
        for ref, o in outputs.items():
            state: Literal["on", "off"] | None = None
            k = self._index(ref)
            if snapshot is not None and k is not None and k < len(snapshot.valid):
                state = _word(bool(snapshot.values[k])) if snapshot.valid[k] else None
            last = known.get(str(ref))
            infos.append(
                OutputInfo(
                    ref.device,
                    ref.output,
                    o.definition.name,
                    o.definition.mode,
                    state,
                    last.ts_ms if last else None,
                    last.source if last else None,
                )
            )
        return infos

    async def switch_locally(self, ref: OutputRef, action: Action, who: str | None) -> SwitchResult:
        """Switch from here (source ``local``), and record it in the history with ``who``."""
        result = await self.switch(ref, action, source="local")
        await asyncio.to_thread(
            self._store.audit,
            self._clock.now_ms(),
            source="local",
            kind="output",
            target=str(ref),
            action=action,
            status=result.status,
            reason=result.reason,
            readback=result.readback,
            who=who,
        )
        return result

    def _lock(self, device: str) -> asyncio.Lock:
        return self._locks.setdefault(device, asyncio.Lock())

    async def switch(
        self,
        ref: OutputRef,
        action: Action,
        *,
        source: Source,
        expires_at: int | None = None,
    ) -> SwitchResult:
        """Switch ``ref``; ``done`` once the state read back is the one expected."""
        unknown = SwitchResult("rejected", f"unknown_output: no output {ref} on this gateway")
        output = self._outputs().get(ref)
        if output is None:
            return unknown
        async with self._lock(ref.device):
            if expires_at is not None and self._clock.now() >= expires_at:
                return SwitchResult("rejected", "expired")
            expected: bool
            if action == "toggle":
                snapshot = self._acquisition.snapshot()
                k = self._index(ref)
                if k is None:
                    return unknown  # its device was removed while waiting for its turn
                if not snapshot.valid[k]:
                    return SwitchResult(
                        "failed", f"device_unavailable: the state of {ref} is unknown, not toggled"
                    )
                expected = not bool(snapshot.values[k])
            else:
                expected = action == "on"
            self._switching.add(ref)
            try:
                failure = await self._write(ref.device, output, _CODES[action])
                if failure is not None:
                    return SwitchResult("failed", failure)
                # Compared with the engine's read times, which are on the system clock.
                written_ms = int(time.time() * 1000)
                state = await self._read_back(ref, written_ms, output.readback_s)
                if state is None:
                    return SwitchResult(
                        "failed",
                        f"readback_timeout: no poll of {ref}'s status within "
                        f"{output.readback_s:.0f} s after the write",
                    )
                await self._record(ref, state, source)
                self._seen_ms[ref] = written_ms
            finally:
                self._switching.discard(ref)
            if state != expected:
                return SwitchResult(
                    "failed",
                    f"readback_mismatch: {ref} reads {_word(state)} after the write, "
                    f"expected {_word(expected)}",
                    _word(state),
                )
            return SwitchResult("done", None, _word(state))

    async def _write(self, device: str, output: _Output, code: Literal[1, 2, 3]) -> str | None:
        """Write the command register; None when the device accepted it, else why not."""
        for attempt in range(_BUSY_TRIES):
            try:
                await self._acquisition.write(device, 6, output.definition.command_address, [code])
                return None
            except ModbusExceptionError as exc:
                if exc.code == _BUSY and attempt + 1 < _BUSY_TRIES:
                    await asyncio.sleep(_BUSY_PAUSE_S)  # an impulse still on: it ends soon
                    continue
                return f"write_failed: the device refused the write: {exc}"
            except ModbusError as exc:
                return f"write_failed: {exc}"
        return "write_failed: the device stayed busy"

    async def _read_back(self, ref: OutputRef, written_ms: int, wait_s: float) -> bool | None:
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            snapshot = self._acquisition.snapshot()
            k = self._index(ref)  # again each time: a live reload may renumber the points
            # Only a read sent after the write was answered shows its effect.
            if k is not None and snapshot.valid[k] and int(snapshot.read_at_ms[k]) > written_ms:
                return bool(snapshot.values[k])
            await asyncio.sleep(_READBACK_POLL_S)
        return None

    async def watch(self) -> None:
        """Record changes seen on the devices that no switch here made (source ``local``)."""
        while True:
            await asyncio.sleep(self._watch_interval_s)
            outputs = self._outputs()
            if not outputs:
                continue
            # Indices with the snapshot, no await between: a live reload renumbers points.
            snapshot = self._acquisition.snapshot()
            indices = [(ref, self._index(ref)) for ref in outputs]
            for ref, k in indices:
                if k is None:
                    continue
                read_ms = int(snapshot.read_at_ms[k])
                if ref in self._switching or not snapshot.valid[k]:
                    continue
                if read_ms <= self._seen_ms.get(ref, 0):
                    continue  # nothing newer than what a switch here already recorded
                self._seen_ms[ref] = read_ms
                state = bool(snapshot.values[k])
                known = self._known.get(str(ref))
                if (known is None or known.state != state) and await self._record(
                    ref, state, "local", observed=True
                ):
                    log.info("output %s is %s (seen on the device)", ref, _word(state))

    async def _record(
        self, ref: OutputRef, state: bool, source: Source, *, observed: bool = False
    ) -> bool:
        """Note the state; a change is queued for the cloud. True if it changed."""
        now_ms = self._clock.now_ms()
        changed = await asyncio.to_thread(
            self._store.record_state, str(ref), state, now_ms, source, observed=observed
        )
        if changed:
            self._known[str(ref)] = KnownState(state, now_ms, source)
            self._on_change()
        return changed
