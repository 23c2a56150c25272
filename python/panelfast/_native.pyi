"""Type stubs of the Rust core, ``panelfast._native`` (checked by mypy.stubtest)."""

from collections.abc import Sequence
from typing import Any, Final, Literal, final

import numpy as np
import numpy.typing as npt

# The type names are written once, in panelfast.register_types (checked there
# against REGISTER_TYPES when it loads).
from panelfast.register_types import DataType as _DataTypeName

__all__ = [
    "DEFAULT_LEVEL",
    "MAX_BODY_BYTES",
    "REGISTER_TYPES",
    "AlarmError",
    "AlarmEvent",
    "AlarmSet",
    "BatchError",
    "DecodeError",
    "Decoded",
    "DeviceDiagnostics",
    "EncodedBatch",
    "Field",
    "LastError",
    "LayoutError",
    "ModbusEngine",
    "ModbusError",
    "ModbusExceptionError",
    "ModbusPoint",
    "ModbusTimeoutError",
    "ModbusTransportError",
    "PanelfastError",
    "RegisterLayout",
    "RegisterRange",
    "RegisterType",
    "RingError",
    "RingStats",
    "SampleRing",
    "SeriesSet",
    "Simulator",
    "SimulatorError",
    "__version__",
    "decode_batch",
    "encode_batches",
    "encode_msgpack",
    "rebatch",
]

__version__: str
#: Largest request body the hub accepts, on the wire (spec §1).
MAX_BODY_BYTES: Final[int]
#: zstd level of data batches.
DEFAULT_LEVEL: Final[int]

class PanelfastError(Exception): ...
class LayoutError(PanelfastError): ...
class DecodeError(PanelfastError): ...
class RingError(PanelfastError): ...
class BatchError(PanelfastError): ...
class AlarmError(PanelfastError): ...
class SimulatorError(PanelfastError): ...

_WordOrderName = Literal["ABCD", "CDAB", "BADC", "DCBA"]
_Registers = npt.NDArray[np.uint16] | Sequence[int]

@final
class RegisterType:
    """What a register type is (one definition, in the Rust core)."""

    @property
    def name(self) -> _DataTypeName: ...
    @property
    def registers(self) -> int:
        """Registers a value occupies; 0 for ASCII, whose field gives its length."""
    @property
    def integer(self) -> bool: ...
    @property
    def exact(self) -> bool:
        """Unscaled, its values are exact integers (integer types, DATETIME)."""
    @property
    def signed(self) -> bool: ...
    @property
    def sentinel(self) -> int | None:
        """The usual "not available" raw pattern, if the type has one."""

#: Every register type's facts, in the order model files list them.
REGISTER_TYPES: Final[tuple[RegisterType, ...]]

@final
class Field:
    """One field of a register layout: where a value is and how it is encoded."""

    def __new__(
        cls,
        address: int,
        type: _DataTypeName,
        order: _WordOrderName = "ABCD",
        scale: float = 1.0,
        offset: float = 0.0,
        invalid: int | bool | None = None,
        bit: int = 0,
        bits: int = 1,
        length: int = 0,
    ) -> Field: ...
    @property
    def address(self) -> int: ...
    @property
    def type(self) -> _DataTypeName: ...
    @property
    def registers(self) -> int: ...
    @property
    def exact(self) -> bool: ...

@final
class Decoded:
    """Decoded values, one entry per field of the layout."""

    @property
    def values(self) -> npt.NDArray[np.float64]:
        """The value; NaN when not available."""
    @property
    def integers(self) -> npt.NDArray[np.int64]:
        """Exact value of exact-integer fields; the minimum int64 otherwise."""
    @property
    def valid(self) -> npt.NDArray[np.bool_]: ...
    def __len__(self) -> int: ...

@final
class RegisterLayout:
    """A compiled register layout: decodes many fields from read blocks in one call."""

    def __new__(cls, fields: Sequence[Field]) -> RegisterLayout: ...
    def __len__(self) -> int: ...
    @property
    def exact(self) -> npt.NDArray[np.bool_]: ...
    def decode(
        self, blocks: Sequence[tuple[int, _Registers]], *, partial: bool = False
    ) -> Decoded: ...
    def decode_text(self, blocks: Sequence[tuple[int, _Registers]]) -> list[str | None]: ...

@final
class SeriesSet:
    """Periodic series of samples, held in Rust."""

    @staticmethod
    def from_series(
        items: Sequence[tuple[int, int, int, npt.NDArray[np.float64] | npt.NDArray[np.int64]]],
    ) -> SeriesSet: ...
    def __len__(self) -> int: ...
    @property
    def samples(self) -> int: ...
    def to_list(self) -> list[tuple[int, int, int, npt.NDArray[Any]]]: ...

@final
class RingStats:
    @property
    def held(self) -> int: ...
    @property
    def pending(self) -> int: ...
    @property
    def dropped(self) -> int: ...
    @property
    def dropped_undrained(self) -> int: ...

@final
class SampleRing:
    """One bounded ring of samples per measurement; overflow drops the oldest, counted."""

    def __new__(
        cls, kinds: Sequence[Literal["float", "int"]], periods_ms: Sequence[int], capacity: int
    ) -> SampleRing: ...
    def __len__(self) -> int: ...
    @property
    def capacity(self) -> int: ...
    def append(
        self,
        t_ms: int,
        indices: npt.ArrayLike,
        floats: npt.ArrayLike,
        integers: npt.ArrayLike,
        valid: npt.ArrayLike,
    ) -> None: ...
    def drain(self, until_ms: int | None = None) -> SeriesSet: ...
    def read(self, from_ms: int, to_ms: int) -> SeriesSet: ...
    def stats(self) -> RingStats: ...

@final
class EncodedBatch:
    """One spec §7 batch: its ``body`` is the request body (a zstd frame)."""

    @property
    def seq(self) -> int: ...
    @property
    def body(self) -> bytes: ...
    @property
    def samples(self) -> int: ...
    @property
    def raw_bytes(self) -> int: ...
    @property
    def first_ms(self) -> int: ...
    @property
    def end_ms(self) -> int: ...

def encode_batches(
    series: SeriesSet,
    config_version: str,
    first_seq: int,
    *,
    max_bytes: int = 256000,
    level: int = 19,
) -> list[EncodedBatch]: ...
def rebatch(
    bodies: Sequence[bytes],
    config_version: str,
    first_seq: int,
    *,
    max_bytes: int = 256000,
    level: int = 19,
) -> list[EncodedBatch]: ...
def encode_msgpack(series: SeriesSet, seq: int, config_version: str) -> bytes: ...
def decode_batch(frame: bytes, *, max_decompressed: int = 67108864) -> dict[str, Any]: ...

#: ``(id, input, condition, threshold, hysteresis, delay_ms)``
_AlarmTuple = tuple[str, int, Literal["over", "under"], float, float, int]

@final
class AlarmEvent:
    """A transition of one alarm, stamped with the reading that completed it."""

    @property
    def index(self) -> int: ...
    @property
    def alarm(self) -> str: ...
    @property
    def active(self) -> bool: ...
    @property
    def ts_ms(self) -> int: ...
    @property
    def value(self) -> float: ...

@final
class AlarmSet:
    """Alarms in force and their states, evaluated on every new reading (spec §8)."""

    def __new__(cls, alarms: Sequence[_AlarmTuple]) -> AlarmSet: ...
    def __len__(self) -> int: ...
    def carry_over(self, alarms: Sequence[_AlarmTuple]) -> AlarmSet: ...
    def active(self) -> list[bool]: ...
    def inputs_needed(self) -> int: ...
    def saved_states(self) -> list[tuple[bool, int | None]]: ...
    def restore(self, states: Sequence[tuple[bool, int | None] | None]) -> None: ...
    def evaluate(
        self, values: npt.ArrayLike, valid: npt.ArrayLike, read_ms: npt.ArrayLike
    ) -> list[AlarmEvent]: ...

# --- Modbus acquisition engine (rust/python/modbus.rs) ---

class ModbusError(PanelfastError): ...

class ModbusExceptionError(ModbusError):
    code: int
    name: str

class ModbusTimeoutError(ModbusError): ...
class ModbusTransportError(ModbusError): ...

@final
class ModbusPoint:
    """A point to poll: the function code that reads it (1..4) and its field.

    ``identification`` points are read once per connection, not every poll.
    """

    def __new__(
        cls, function: int, field: Field, *, identification: bool = False
    ) -> ModbusPoint: ...
    @property
    def function(self) -> int: ...
    @property
    def field(self) -> Field: ...
    @property
    def identification(self) -> bool: ...

@final
class RegisterRange:
    """Registers (or bits) of one function code: ``count`` from ``address``."""

    def __new__(cls, function: int, address: int, count: int) -> RegisterRange: ...
    @property
    def function(self) -> int: ...
    @property
    def address(self) -> int: ...
    @property
    def count(self) -> int: ...
    def __eq__(self, value: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class LastError:
    """A device's last failed request."""

    @property
    def kind(self) -> Literal["exception", "timeout", "transport", "protocol"]:
        """``exception`` (the device answered no), or why no answer came back."""
    @property
    def code(self) -> int | None:
        """The exception code (0x02...) for exception responses."""
    @property
    def name(self) -> str:
        """``IllegalDataAddress``... for exceptions, else the kind."""
    @property
    def message(self) -> str: ...
    @property
    def at_ms(self) -> int: ...
    def __eq__(self, value: object, /) -> bool: ...

@final
class DeviceDiagnostics:
    """How a device's polling goes (built once per call, in the Rust binding)."""

    @property
    def device_id(self) -> str: ...
    @property
    def state(self) -> Literal["unknown", "ok", "degraded", "offline"]: ...
    @property
    def last_error(self) -> LastError | None: ...
    @property
    def rtt_last_ms(self) -> float: ...
    @property
    def rtt_mean_ms(self) -> float: ...
    @property
    def rtt_max_ms(self) -> float: ...
    @property
    def requests(self) -> int: ...
    @property
    def errors(self) -> int: ...
    @property
    def timeouts(self) -> int: ...
    @property
    def exceptions(self) -> int: ...
    @property
    def exception_codes(self) -> list[tuple[int, int]]:
        """Exception answers by code: ``(code, count)`` in code order."""
    @property
    def transport_errors(self) -> int:
        """Connections refused, reset or closed."""
    @property
    def protocol_errors(self) -> int:
        """Answers that did not match their request (a bad CRC ends as a timeout)."""
    @property
    def rtt_buckets(self) -> list[tuple[float, int]]:
        """Cumulative: ``(upper bound in seconds, answered requests within it)``,
        from 1 ms to 5 s, the last bound ``inf``."""
    @property
    def rtt_sum_s(self) -> float:
        """The round trips of answered requests, added up, in seconds."""
    @property
    def cycles(self) -> int: ...
    @property
    def overruns(self) -> int: ...
    @property
    def reads_per_cycle(self) -> int:
        """Reads in the device's plan (it grows when a read is split after 0x02)."""
    @property
    def last_cycle_ms(self) -> int | None: ...
    @property
    def last_cycle_duration_ms(self) -> float:
        """How long the last cycle's reads took, back to back."""
    @property
    def last_answer_ms(self) -> int | None: ...
    @property
    def lacking(self) -> list[RegisterRange]:
        """What the device said it does not have (0x02, or 0x01 for a function),
        as narrow as reads split; not asked for again until it reconnects."""
    def __eq__(self, value: object, /) -> bool: ...

@final
class ModbusEngine:
    def __init__(self) -> None: ...
    def add_device(
        self,
        device_id: str,
        *,
        transport: str,
        points: Sequence[ModbusPoint],
        host: str = "",
        port: int = 502,
        serial_port: str = "",
        baud_rate: int = 19200,
        parity: str = "even",
        stop_bits: int = 1,
        data_bits: int = 8,
        unit_id: int = 1,
        period_ms: int = 1000,
        timeout_ms: int = 1000,
        retries: int = 2,
        max_registers_per_read: int = 125,
        max_gap: int = 16,
    ) -> None: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...
    @property
    def running(self) -> bool: ...
    def point_count(self) -> int: ...
    def device_offsets(self) -> list[tuple[str, int]]: ...
    def snapshot(
        self,
    ) -> tuple[
        npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.bool_], npt.NDArray[np.int64]
    ]: ...
    def texts(self) -> dict[int, str]: ...
    def raw_blocks(
        self, device_id: str
    ) -> list[tuple[int, int, int, npt.NDArray[np.uint16] | None]]: ...
    def diagnostics(self, clock_offset_ms: int = 0) -> list[DeviceDiagnostics]:
        """Each device's diagnostics, their times moved by ``clock_offset_ms``
        (onto the gateway's synchronised clock)."""
    def write(self, device_id: str, function: int, address: int, values: Sequence[int]) -> None: ...

_SimPoint = tuple[str, int, Field, str, float]
_SimOutput = tuple[str, int, int, bool]
_SimModel = tuple[str, Sequence[_SimPoint], Sequence[_SimOutput], int]

@final
class Simulator:
    """Simulated Modbus devices behind Modbus TCP listeners (see panelfast.simulator)."""

    def __new__(
        cls,
        models: Sequence[_SimModel],
        listeners: Sequence[tuple[str, str, int]],
        devices: Sequence[tuple[int, int, int, int]],
        tick_ms: int = 100,
    ) -> Simulator: ...
    def start(self) -> list[tuple[str, int]]: ...
    def stop(self) -> None: ...
    @property
    def running(self) -> bool: ...
    @property
    def tick_ms(self) -> int: ...
    def __len__(self) -> int: ...
    def truth(self, device: int, point: int, t_ms: int) -> int | float | str | None: ...
    def registers(
        self, device: int, function: int, address: int, count: int, t_ms: int
    ) -> list[int]: ...
    def set_faults(
        self,
        device: int,
        *,
        dead: bool,
        offline: bool,
        latency_ms: int,
        busy_fraction: float,
        illegal: Sequence[tuple[int, int, int]],
        unavailable: Sequence[int],
    ) -> None: ...
    def faults(
        self, device: int
    ) -> tuple[bool, bool, int, float, list[tuple[int, int, int]], list[int]]: ...
    def outputs(self, device: int) -> list[bool]: ...
    def reads(self, device: int) -> dict[tuple[int, int, int], int]: ...
    def writes(self, device: int) -> int: ...
    @staticmethod
    def now_ms() -> int: ...
