"""Every exception panelfast raises, rooted at one :class:`PanelfastError`.

```
PanelfastError
├── LayoutError       a register layout (device model fields) is invalid    [Rust core]
├── DecodeError       register data does not fit the layout                  [Rust core]
├── RingError         a sample ring was used with arguments that do not fit  [Rust core]
├── BatchError        a data batch cannot be encoded, or is malformed        [Rust core]
├── AlarmError        an alarm, or the readings given to it, are invalid     [Rust core]
├── ConfigError       the gateway's configuration file is invalid
└── RefCloudError     the reference cloud refused an operator request
    └── RefCloudRequestError  a protocol request the reference cloud answers with an error
```

The first five are raised by the Rust core (``panelfast._native``) and are the
same classes here; catching ``PanelfastError`` catches all of them.
"""

from __future__ import annotations

from collections.abc import Sequence

from panelfast._native import (
    AlarmError,
    BatchError,
    DecodeError,
    LayoutError,
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
    "PanelfastError",
    "RefCloudError",
    "RefCloudRequestError",
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


class RefCloudError(PanelfastError):
    """The reference cloud refused an operator request (unknown serial, bad document...)."""


class RefCloudRequestError(RefCloudError):
    """A request to the reference cloud answered with a protocol error.

    ``status`` is the HTTP status, ``code`` the spec's ``error`` (``invalid_payload``,
    ``conflict``...), ``extra`` any other member of the error body (``expected``), and
    ``headers`` the headers to send with it (``Retry-After``).
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        extra: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})
