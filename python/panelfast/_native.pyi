"""Type stubs of the Rust core, ``panelfast._native`` (checked by mypy.stubtest)."""

from collections.abc import Sequence
from typing import Any, final

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "BatchError",
    "DecodeError",
    "LayoutError",
    "ModbusEngine",
    "ModbusError",
    "ModbusExceptionError",
    "ModbusTimeoutError",
    "ModbusTransportError",
    "PanelfastError",
    "RingError",
    "__version__",
]

__version__: str

class PanelfastError(Exception): ...
class LayoutError(PanelfastError): ...
class DecodeError(PanelfastError): ...
class RingError(PanelfastError): ...
class BatchError(PanelfastError): ...

# --- Modbus acquisition engine (rust/python/modbus.rs) ---

class ModbusError(PanelfastError): ...

class ModbusExceptionError(ModbusError):
    code: int
    name: str

class ModbusTimeoutError(ModbusError): ...
class ModbusTransportError(ModbusError): ...

#: (function, address, type, order, scale, offset, invalid, bit, bits, length)
_ModbusPoint = tuple[int, int, str, str, float, float, int | bool | None, int, int, int]

@final
class ModbusEngine:
    def __init__(self) -> None: ...
    def add_device(
        self,
        device_id: str,
        *,
        transport: str,
        points: Sequence[_ModbusPoint],
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
    ) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.bool_], NDArray[np.int64]]: ...
    def texts(self) -> dict[int, str]: ...
    def diagnostics(self) -> list[dict[str, Any]]: ...
    def write(self, device_id: str, function: int, address: int, values: Sequence[int]) -> None: ...
