"""The documents the cloud keeps: topology versions, remote configurations, commands.

The topology version is a digest of the canonical document without
``published_at`` (spec §5: the same topology published twice has the same
version). Remote configurations are checked with the rules the gateway applies
(spec §6), so an operator can be told a document is invalid before a gateway is;
the operator can still send an invalid one on purpose (``raw``).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
import zoneinfo
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, TypeGuard

import zstandard
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from panelfast.exceptions import RefCloudError, RefCloudRequestError
from panelfast.refcloud.models import NAME_PATTERN, Topology

__all__ = [
    "MAX_TOPOLOGY_BYTES",
    "Command",
    "check_config",
    "decode_topology",
    "generate_config",
    "parse_command",
    "pydantic_issues",
    "topology_version",
]

MAX_TOPOLOGY_BYTES = 250_000
MAX_MEASUREMENTS = 5_000
MAX_SAMPLES_PER_MINUTE = 500
MAX_ALARMS = 100
_NAME = re.compile(NAME_PATTERN)


def pydantic_issues(err: ValidationError) -> str:
    """A one-line account of what a body got wrong, naming each offending field."""
    parts = []
    for issue in err.errors()[:5]:
        where = ".".join(str(p) for p in issue["loc"]) or "body"
        parts.append(f"{where}: {issue['msg']}")
    more = len(err.errors()) - 5
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def _bad(message: str) -> RefCloudRequestError:
    return RefCloudRequestError(400, "invalid_payload", message)


# -- topology ------------------------------------------------------------------------------


def topology_version(document: Mapping[str, Any]) -> str:
    """Digest of the document minus ``published_at``: same topology, same version."""
    canonical = {k: v for k, v in document.items() if k != "published_at"}
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "t-" + hashlib.sha256(text.encode()).hexdigest()[:24]


def _check_unique_ids(topology: Topology) -> None:
    seen_devices: set[str] = set()
    for i, device in enumerate(topology.devices):
        if device.id in seen_devices:
            raise _bad(f"devices[{i}].id: device id {device.id!r} appears twice")
        seen_devices.add(device.id)
        seen: set[str] = set()
        for j, meas in enumerate(device.measurements):
            if meas.id in seen:
                raise _bad(f"devices[{i}].measurements[{j}].id: {meas.id!r} appears twice")
            seen.add(meas.id)
        seen = set()
        for j, out in enumerate(device.outputs):
            if out.id in seen:
                raise _bad(f"devices[{i}].outputs[{j}].id: {out.id!r} appears twice")
            seen.add(out.id)


def decode_topology(body: bytes, *, zstd: bool, limit: int | None) -> dict[str, Any]:
    """The topology document of a request body, checked (spec §5), or a 400/413 error."""
    if zstd:
        try:
            reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(body))
            cap = (limit + 1) if limit is not None else -1
            body = reader.read(cap)
        except zstandard.ZstdError as err:
            raise _bad(f"body is not a valid zstd frame: {err}") from None
    if limit is not None and len(body) > limit:
        raise RefCloudRequestError(
            413,
            "payload_too_large",
            f"a topology over {limit} bytes goes through the upload service",
        )
    try:
        document = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise _bad(f"topology is not UTF-8: {err}") from None
    except json.JSONDecodeError as err:
        raise _bad(f"topology is not JSON: {err}") from None
    if not isinstance(document, dict):
        raise _bad("topology must be a JSON object")
    try:
        topology = Topology.model_validate(document)
    except ValidationError as err:
        raise _bad(f"invalid topology: {pydantic_issues(err)}") from None
    _check_unique_ids(topology)
    return document


# -- remote configuration ------------------------------------------------------------------


def _is_integer(value: object) -> TypeGuard[int | float]:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value) and value.is_integer()


def _is_number(value: object) -> TypeGuard[int | float]:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _topology_measurements(topology: Mapping[str, Any]) -> set[tuple[str, str]]:
    return {
        (str(d.get("id")), str(m.get("id")))
        for d in topology.get("devices", [])
        for m in d.get("measurements", [])
    }


def check_config(
    document: Mapping[str, Any], topology: Mapping[str, Any] | None
) -> list[tuple[str, str]]:
    """Every ``(path, message)`` a gateway would reject the document for (spec §6)."""
    issues: list[tuple[str, str]] = []
    known = _topology_measurements(topology) if topology is not None else None
    if not isinstance(document.get("version"), str):
        issues.append(("version", "required, a string"))
    measurements = document.get("measurements")
    alarms = document.get("alarms")
    publisher = document.get("publisher")
    if not isinstance(measurements, list):
        issues.append(("measurements", "required, a list"))
        measurements = []
    if not isinstance(alarms, list):
        issues.append(("alarms", "required, a list"))
        alarms = []
    if not isinstance(publisher, dict):
        issues.append(("publisher", "required, an object"))
    elif not (_is_integer(publisher.get("period_s")) and publisher["period_s"] >= 1):
        issues.append(("publisher.period_s", "an integer >= 1"))
    seen: set[tuple[str, str]] = set()
    rate = 0.0
    for i, entry in enumerate(measurements):
        where = f"measurements[{i}]"
        if not isinstance(entry, dict):
            issues.append((where, "an object"))
            continue
        key = (entry.get("device"), entry.get("measurement"))
        if not all(isinstance(k, str) for k in key):
            issues.append((where, "device and measurement are required strings"))
        elif known is not None and key not in known:
            issues.append((where, f"{key[0]}/{key[1]} is not in the topology"))
        elif key in seen:
            issues.append((where, f"{key[0]}/{key[1]} appears twice"))
        seen.add((str(key[0]), str(key[1])))
        period = entry.get("period_s")
        if not (_is_integer(period) and period >= 1):
            issues.append((f"{where}.period_s", "an integer >= 1"))
        else:
            rate += 60.0 / float(period)
    if len(measurements) > MAX_MEASUREMENTS:
        issues.append(("measurements", f"at most {MAX_MEASUREMENTS} measurements"))
    if rate > MAX_SAMPLES_PER_MINUTE:
        issues.append(("measurements", f"{rate:g} samples per minute, at most 500"))
    if len(alarms) > MAX_ALARMS:
        issues.append(("alarms", f"at most {MAX_ALARMS} alarms"))
    ids: set[str] = set()
    for i, alarm in enumerate(alarms):
        where = f"alarms[{i}]"
        if not isinstance(alarm, dict):
            issues.append((where, "an object"))
            continue
        alarm_id = alarm.get("id")
        if not (isinstance(alarm_id, str) and _NAME.match(alarm_id)):
            issues.append((f"{where}.id", "a string matching [A-Za-z0-9_.-]{1,64}"))
        elif alarm_id in ids:
            issues.append((f"{where}.id", f"{alarm_id!r} appears twice"))
        else:
            ids.add(alarm_id)
        key = (alarm.get("device"), alarm.get("measurement"))
        if not all(isinstance(k, str) for k in key):
            issues.append((where, "device and measurement are required strings"))
        elif known is not None and key not in known:
            issues.append((where, f"{key[0]}/{key[1]} is not in the topology"))
        if alarm.get("condition") not in ("over", "under"):
            issues.append((f"{where}.condition", "over or under"))
        if not _is_number(alarm.get("threshold")):
            issues.append((f"{where}.threshold", "a finite number"))
        hysteresis = alarm.get("hysteresis")
        if not (_is_number(hysteresis) and float(hysteresis) >= 0):
            issues.append((f"{where}.hysteresis", "a finite number >= 0"))
        delay = alarm.get("delay_s")
        if not (_is_integer(delay) and delay >= 0):
            issues.append((f"{where}.delay_s", "an integer >= 0"))
        if alarm.get("severity", "medium") not in ("low", "medium", "high"):
            issues.append((f"{where}.severity", "low, medium or high"))
    return issues


def generate_config(
    topology: Mapping[str, Any],
    *,
    period_s: int,
    publisher_period_s: int | None = None,
    devices: Sequence[str] | None = None,
    alarms: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """A configuration sampling every measurement of the topology (or of ``devices``)."""
    if period_s < 1:
        raise RefCloudError("period_s must be >= 1")
    wanted = set(devices) if devices is not None else None
    measurements = [
        {"device": d["id"], "measurement": m["id"], "period_s": period_s}
        for d in topology.get("devices", [])
        if wanted is None or d["id"] in wanted
        for m in d.get("measurements", [])
    ]
    if wanted is not None:
        missing = wanted - {d["id"] for d in topology.get("devices", [])}
        if missing:
            raise RefCloudError(f"devices not in the topology: {sorted(missing)}")
    document: dict[str, Any] = {
        "version": "0",
        "measurements": measurements,
        "alarms": [dict(a) for a in alarms],
        "publisher": {"period_s": publisher_period_s or period_s},
    }
    issues = check_config(document, topology)
    if issues:
        text = "; ".join(f"{path}: {message}" for path, message in issues[:5])
        raise RefCloudError(f"the generated configuration is invalid: {text}")
    return document


# -- commands the operator queues (spec §9) ------------------------------------------------

_OutputRef = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}/[A-Za-z0-9_.-]{1,64}$")]
_Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class _Cmd(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class OutputCommand(_Cmd):
    type: Literal["output"]
    output: _OutputRef
    action: Literal["on", "off", "toggle"]
    expires_at: int | None = None


class ScheduleEntry(_Cmd):
    days: Annotated[list[_Day], Field(min_length=1)]
    at: Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    action: Literal["on", "off"]


def _known_timezone(name: str) -> str:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA time zone {name!r}") from None
    return name


class Schedule(_Cmd):
    id: Annotated[str, Field(pattern=NAME_PATTERN)]
    output: _OutputRef
    timezone: Annotated[str, AfterValidator(_known_timezone)]
    entries: list[ScheduleEntry]


class ScheduleCommand(_Cmd):
    type: Literal["schedule"]
    schedule: Schedule
    expires_at: int | None = None


class ScheduleDeleteCommand(_Cmd):
    type: Literal["schedule_delete"]
    schedule_id: Annotated[str, Field(pattern=NAME_PATTERN)]
    expires_at: int | None = None


class UploadLogsCommand(_Cmd):
    type: Literal["upload_logs"]
    expires_at: int | None = None


Command = Annotated[
    OutputCommand | ScheduleCommand | ScheduleDeleteCommand | UploadLogsCommand,
    Field(discriminator="type"),
]
_COMMAND: TypeAdapter[Command] = TypeAdapter(Command)


def parse_command(body: Mapping[str, Any]) -> dict[str, Any]:
    """A command as the gateway will get it (without its id), or RefCloudError."""
    try:
        command = _COMMAND.validate_python(dict(body))
    except ValidationError as err:
        raise RefCloudError(f"invalid command: {pydantic_issues(err)}") from None
    return command.model_dump(exclude_none=True)
