"""Every exception panelfast raises, rooted at one :class:`PanelfastError`.

```
PanelfastError
├── LayoutError       a register layout (device model fields) is invalid    [Rust core]
├── DecodeError       register data does not fit the layout                  [Rust core]
├── RingError         a sample ring was used with arguments that do not fit  [Rust core]
├── BatchError        a data batch cannot be encoded, or is malformed        [Rust core]
├── ConfigError       the gateway's configuration file is invalid
├── TopologyError     the devices cannot be described as a topology (§5)
├── RemoteConfigError
│   ├── RemoteConfigRejected   a remote configuration is invalid; nothing of it applied (§6)
│   ├── RemoteConfigReadOnly   a local change to what the remote configuration imposes
│   └── StateStoreError        the stored applied configuration / topology state is unreadable
```

The first four are raised by the Rust core (``panelfast._native``) and are the
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
)

__all__ = [
    "BatchError",
    "ConfigError",
    "ConfigIssue",
    "ConfigPathError",
    "DecodeError",
    "LayoutError",
    "PanelfastError",
    "RemoteConfigError",
    "RemoteConfigReadOnly",
    "RemoteConfigRejected",
    "RingError",
    "StateStoreError",
    "TopologyError",
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


class TopologyError(PanelfastError):
    """The configured devices cannot be published as a topology (§5).

    ``problems`` lists every reason (an unknown device model, a duplicate or
    malformed measurement id, an address in a free-text field).
    """

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  {problem}" for problem in self.problems)
        super().__init__(f"cannot build the topology:\n{lines}")


class ConfigPathError:
    """One problem in a remote configuration: its JSON path and what is wrong.

    Not an exception itself: a rejected document carries many of these, and
    they go to the cloud as the report's ``errors`` (§6).
    """

    __slots__ = ("message", "path")

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ConfigPathError):
            return NotImplemented
        return (self.path, self.message) == (other.path, other.message)

    def __hash__(self) -> int:
        return hash((self.path, self.message))

    def __repr__(self) -> str:
        return f"ConfigPathError(path={self.path!r}, message={self.message!r})"

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class RemoteConfigError(PanelfastError):
    """Root of the remote configuration errors."""


class RemoteConfigRejected(RemoteConfigError):
    """A remote configuration is invalid and was rejected whole (§6).

    ``errors`` names every offending path (``alarms[3].threshold``);
    ``version`` is the document's own version when it had a readable one.
    """

    def __init__(self, errors: Sequence[ConfigPathError], version: str | None = None) -> None:
        self.errors = list(errors)
        self.version = version
        shown = "\n".join(f"  {error}" for error in self.errors[:20])
        more = f"\n  ... {len(self.errors) - 20} more" if len(self.errors) > 20 else ""
        label = f" {version!r}" if version is not None else ""
        super().__init__(f"remote configuration{label} rejected:\n{shown}{more}")


class RemoteConfigReadOnly(RemoteConfigError):
    """A local page, command or API tried to change what the cloud imposes (§6)."""

    def __init__(self, what: str, version: str | None = None) -> None:
        self.what = what
        self.version = version
        source = f"remote configuration {version!r}" if version else "the remote configuration"
        super().__init__(
            f"{what} is managed by the cloud ({source}) and is read-only on the gateway; "
            "change it in the cloud"
        )


class StateStoreError(RemoteConfigError):
    """The stored state (applied configuration, published topology) cannot be read."""
