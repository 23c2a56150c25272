"""Every exception panelfast raises, rooted at one :class:`PanelfastError`.

```
PanelfastError
├── LayoutError       a register layout (device model fields) is invalid    [Rust core]
├── DecodeError       register data does not fit the layout                  [Rust core]
├── RingError         a sample ring was used with arguments that do not fit  [Rust core]
├── BatchError        a data batch cannot be encoded, or is malformed        [Rust core]
├── SimulatorError    the device simulator cannot serve a model, or listen   [Rust core]
├── ConfigError       the gateway's configuration file is invalid
└── ModelError        a device model file is invalid, or no model has that name
```

The ``[Rust core]`` ones are raised by the Rust core (``panelfast._native``) and are the
same classes here; catching ``PanelfastError`` catches all of them.
"""

from __future__ import annotations

from collections.abc import Sequence

from panelfast._native import (
    BatchError,
    DecodeError,
    LayoutError,
    PanelfastError,
    RingError,
    SimulatorError,
)

__all__ = [
    "BatchError",
    "ConfigError",
    "ConfigIssue",
    "DecodeError",
    "LayoutError",
    "ModelError",
    "PanelfastError",
    "RingError",
    "SimulatorError",
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


class ModelError(PanelfastError):
    """A device model file is invalid, or no model has the name asked for.

    ``issues`` names each offending entry and key (``measurements[3] (VoltageAN).type``)
    with its problem; every line of the message starts with the file's name.
    """

    def __init__(self, source: str, issues: Sequence[ConfigIssue]) -> None:
        self.source = source
        self.issues = list(issues)
        super().__init__("\n".join(f"{source}: {issue}" for issue in self.issues))
