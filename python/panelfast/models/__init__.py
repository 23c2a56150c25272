"""Device models: what a kind of device measures, where in its registers, and its outputs.

A device model is a TOML file (format documented in ``models/README.md``);
the gateway ships models for common devices and users add their own. This
module holds the typed form every other part uses (acquisition, topology,
the simulator); the loader turns files into it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from panelfast.register_types import DataType

__all__ = [
    "DataType",
    "DeviceModel",
    "MeasurementDef",
    "MeasurementKind",
    "OutputDef",
    "OutputMode",
    "WordOrder",
]

#: Byte order of multi-register values: ABCD is big-endian, high word first.
WordOrder = Literal["ABCD", "CDAB", "BADC", "DCBA"]
#: ``instantaneous`` (power, voltage) or ``cumulative`` (energy counters), §5.
MeasurementKind = Literal["instantaneous", "cumulative"]
OutputMode = Literal["contactor", "impulse"]


@dataclass(frozen=True, slots=True)
class MeasurementDef:
    """One measurement of a device model and where it is read."""

    id: str
    name: str
    unit: str
    kind: MeasurementKind
    #: Modbus function code used to read it: 3 (holding), 4 (input), 1 (coils), 2 (discrete inputs).
    function: Literal[1, 2, 3, 4]
    #: Zero-based register (or bit) address, as on the wire.
    address: int
    type: DataType
    order: WordOrder = "ABCD"
    #: value = raw × scale + offset; an unscaled integer stays an exact integer.
    scale: float = 1.0
    offset: float = 0.0
    #: Raw pattern meaning "not available"; None uses the type's default sentinel,
    #: ``False`` disables it.
    invalid: int | Literal[False] | None = None
    #: BITMAP: first bit and width within the register.
    bit: int = 0
    bits: int = 1
    #: ASCII: number of registers (two characters each).
    length: int = 0
    #: The physical quantity it shows (``voltage_ln.1``, ``active_energy.delivered``...,
    #: see ``models/README.md``); the simulator serves it, empty means "nothing to simulate".
    quantity: str = ""
    #: Identification (name, model, serial number): constant while the device
    #: stays connected, read once per connection instead of every poll.
    identification: bool = False


@dataclass(frozen=True, slots=True)
class OutputDef:
    """An output of an IO module that the cloud or a schedule may switch (§9)."""

    id: str
    name: str
    mode: OutputMode
    #: Register written to command it (function 6): 1 off, 2 on, 3 toggle.
    command_address: int
    #: Register (function 3) read back for its state: 0 off, 1 on.
    status_address: int


@dataclass(frozen=True, slots=True)
class DeviceModel:
    """A kind of device: its identity, measurements and outputs."""

    name: str
    vendor: str
    description: str = ""
    measurements: tuple[MeasurementDef, ...] = field(default=())
    outputs: tuple[OutputDef, ...] = field(default=())
    #: Largest read the device accepts, in registers (≤ 125) and the gap worth reading through.
    max_registers_per_read: int = 125
    max_gap: int = 16
