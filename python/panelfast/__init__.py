"""panelfast: a fast, durable energy gateway with a Rust core.

It reads meters and IO modules over Modbus, samples measurements, evaluates
alarms and publishes data and alarms to a cloud over HTTPS (see
``shared/spec/cloud-protocol.md``). The hot path runs in Rust
(``panelfast._native``); orchestration runs on asyncio.
"""

from panelfast._native import __version__
from panelfast.exceptions import (
    BatchError,
    ConfigError,
    DecodeError,
    LayoutError,
    PanelfastError,
    RingError,
)

__all__ = [
    "BatchError",
    "ConfigError",
    "DecodeError",
    "LayoutError",
    "PanelfastError",
    "RingError",
    "__version__",
]
