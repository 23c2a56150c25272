"""Every exception panelfast raises, rooted at one :class:`PanelfastError`.

```
PanelfastError
├── LayoutError       a register layout (device model fields) is invalid    [Rust core]
├── DecodeError       register data does not fit the layout                  [Rust core]
├── RingError         a sample ring was used with arguments that do not fit  [Rust core]
├── BatchError        a data batch cannot be encoded, or is malformed        [Rust core]
├── ModbusError       the Modbus engine refused a call (bad device settings, [Rust core]
│   │                 unknown device, not running), or a request failed
│   ├── ModbusExceptionError  the device answered with an exception response;
│   │                         ``code`` (0x02...) and ``name`` (IllegalDataAddress...)
│   ├── ModbusTimeoutError    no answer within the device's timeout
│   └── ModbusTransportError  connection failed or reset, or a garbled answer
├── AlarmError        an alarm, or the readings given to it, are invalid     [Rust core]
└── ConfigError       the gateway's configuration file is invalid
```

Those marked [Rust core] are raised by the Rust core (``panelfast._native``) and are the
same classes here; catching ``PanelfastError`` catches all of them.
"""

from __future__ import annotations

from collections.abc import Sequence

from panelfast._native import (
    AlarmError,
    BatchError,
    DecodeError,
    LayoutError,
    ModbusError,
    ModbusExceptionError,
    ModbusTimeoutError,
    ModbusTransportError,
    PanelfastError,
    RingError,
)

__all__ = [
    "AlarmError",
    "BatchError",
    "ConfigError",
    "ConfigIssue",
    "DecodeError",
    "LayoutError",
    "ModbusError",
    "ModbusExceptionError",
    "ModbusTimeoutError",
    "ModbusTransportError",
    "PanelfastError",
    "RingError",
]


class ConfigIssue:
    """One problem in a configuration file: where it is and what is wrong."""

    __slots__ = ("key", "message")

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.message = message

    def __repr__(self) -> str:
        return f"ConfigIssue(key={self.key!r}, message={self.message!r})"

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


class ConfigError(PanelfastError):
    """The gateway's configuration file is invalid.

    ``issues`` names every offending key (``devices[2].unit_id``) with its
    problem, so a user fixes the file in one pass.
    """

    def __init__(self, source: str, issues: Sequence[ConfigIssue]) -> None:
        self.source = source
        self.issues = list(issues)
        lines = "\n".join(f"  {issue}" for issue in self.issues)
        super().__init__(f"invalid configuration {source}:\n{lines}")
