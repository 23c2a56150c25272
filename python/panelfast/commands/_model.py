"""The commands of cloud protocol §9, parsed and checked before anything is done with them.

A command arrives as a JSON object; :func:`parse_command` turns it into one of
the typed commands below or raises :class:`InvalidCommand` with a reason that
names the field (``schedule.entries[0].at: ...``), which becomes the
``rejected`` result's reason. Unknown fields are ignored (a newer cloud may
send more), unknown command types are refused.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
)

__all__ = [
    "Action",
    "Command",
    "InvalidCommand",
    "OutputCommand",
    "OutputRef",
    "Schedule",
    "ScheduleCommand",
    "ScheduleDeleteCommand",
    "ScheduleEntry",
    "UploadLogsCommand",
    "parse_command",
    "parse_schedule",
]

#: What an output command asks; a schedule entry only sets a state (on or off).
Action = Literal["on", "off", "toggle"]
#: The command types of §9 that act on outputs: refused while remote control is disabled.
CONTROL_TYPES = frozenset({"output", "schedule"})
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_NAME = r"[A-Za-z0-9_.-]{1,64}"


class InvalidCommand(Exception):
    """A command that cannot be executed as sent; ``reason`` goes into the result."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True, order=True)
class OutputRef:
    """``<device id>/<output id>`` (§5): names one output of one device."""

    device: str
    output: str

    @classmethod
    def parse(cls, text: str) -> OutputRef:
        device, _, output = text.partition("/")
        return cls(device, output)

    def __str__(self) -> str:
        return f"{self.device}/{self.output}"


def _timezone(name: str) -> str:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA time zone {name!r}") from None
    return name


class _Strict(BaseModel):
    # Strict: "at": 730 or "expires_at": "soon" are mistakes, not conversions.
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


_Ref = Annotated[str, Field(pattern=rf"^{_NAME}/{_NAME}$")]
_Id = Annotated[str, Field(pattern=rf"^{_NAME}$")]
_Expiry = Annotated[int, Field(ge=0)] | None


class ScheduleEntry(_Strict):
    days: Annotated[
        list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]], Field(min_length=1)
    ]
    #: Local wall-clock time ``HH:MM`` in the schedule's time zone.
    at: Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    action: Literal["on", "off"]

    @property
    def hour(self) -> int:
        return int(self.at[:2])

    @property
    def minute(self) -> int:
        return int(self.at[3:])

    def weekdays(self) -> frozenset[int]:
        """Monday 0 .. Sunday 6, as :meth:`datetime.date.weekday` counts."""
        return frozenset(DAYS.index(d) for d in self.days)


class Schedule(_Strict):
    id: _Id
    output: _Ref
    timezone: Annotated[str, AfterValidator(_timezone)]
    entries: list[ScheduleEntry]

    @property
    def ref(self) -> OutputRef:
        return OutputRef.parse(self.output)


class OutputCommand(_Strict):
    id: str
    type: Literal["output"]
    output: _Ref
    action: Literal["on", "off", "toggle"]
    expires_at: _Expiry = None

    @property
    def ref(self) -> OutputRef:
        return OutputRef.parse(self.output)


class ScheduleCommand(_Strict):
    id: str
    type: Literal["schedule"]
    schedule: Schedule
    expires_at: _Expiry = None


class ScheduleDeleteCommand(_Strict):
    id: str
    type: Literal["schedule_delete"]
    schedule_id: _Id
    expires_at: _Expiry = None


class UploadLogsCommand(_Strict):
    id: str
    type: Literal["upload_logs"]
    expires_at: _Expiry = None


Command = OutputCommand | ScheduleCommand | ScheduleDeleteCommand | UploadLogsCommand
_COMMAND: TypeAdapter[Command] = TypeAdapter(Annotated[Command, Field(discriminator="type")])
_SCHEDULE: TypeAdapter[Schedule] = TypeAdapter(Schedule)
KNOWN_TYPES = frozenset({"output", "schedule", "schedule_delete", "upload_logs"})


def _issues(error: ValidationError, skip: int) -> str:
    shown = []
    for issue in error.errors()[:3]:
        # The first element of a discriminated union's location is the branch name.
        loc = issue["loc"][skip:]
        path = ""
        for part in loc:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        shown.append(f"{path or '(command)'}: {issue['msg']}")
    return "; ".join(shown)


def parse_command(body: dict[str, Any]) -> Command:
    """The typed command, or :class:`InvalidCommand` naming what is wrong."""
    kind = body.get("type")
    if kind not in KNOWN_TYPES:
        raise InvalidCommand(f"unknown_command_type: {kind!r} is not a command type of §9")
    try:
        return _COMMAND.validate_python(body)
    except ValidationError as error:
        raise InvalidCommand(f"invalid_command: {_issues(error, skip=1)}") from None


def parse_schedule(document: object) -> Schedule:
    """A stored schedule read back (it was valid when stored)."""
    try:
        return _SCHEDULE.validate_python(document)
    except ValidationError as error:
        raise InvalidCommand(f"invalid schedule: {_issues(error, skip=0)}") from None
