"""Validating a remote configuration document (§6) as a whole, every error with its path.

Nothing of a document is used before all of it has been checked: the result is
either a :class:`RemoteConfig` or a :class:`RemoteConfigRejected` naming every
problem (``measurements[4711].period_s``, ``alarms[3].threshold``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Set
from fractions import Fraction
from typing import Any, NoReturn, cast

from panelfast.exceptions import ConfigPathError, RemoteConfigRejected
from panelfast.remote_config._model import (
    AlarmCondition,
    AlarmRule,
    RemoteConfig,
    SampledMeasurement,
    Severity,
)

__all__ = [
    "DOCUMENT_PATH",
    "MAX_ALARMS",
    "MAX_DOCUMENT_BYTES",
    "MAX_ERRORS",
    "MAX_MEASUREMENTS",
    "MAX_SAMPLES_PER_MINUTE",
    "MAX_VERSION_LENGTH",
    "parse_document",
    "report_body",
    "restore",
    "validate",
    "validate_alarms",
    "validate_bytes",
]

#: The product's ceiling (§6).
MAX_MEASUREMENTS = 5_000
MAX_SAMPLES_PER_MINUTE = Fraction(500)
MAX_ALARMS = 100
#: A valid document at the ceiling is under 1 MiB; 8 MiB leaves room for
#: verbose clouds while refusing to parse (and hold) anything absurd.
MAX_DOCUMENT_BYTES = 8 * 1024 * 1024
#: Errors listed in a rejection; the rest are counted in one final entry, so
#: the report stays well under the hub's 256,000-byte body limit.
MAX_ERRORS = 1_000
#: A version is echoed in every report and If-None-Match: keep it bounded.
MAX_VERSION_LENGTH = 256
#: The path of a problem with the document as a whole.
DOCUMENT_PATH = "(document)"

_ALARM_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_CONDITIONS: tuple[AlarmCondition, ...] = ("over", "under")
_SEVERITIES: tuple[Severity, ...] = ("low", "medium", "high")
_SHOWN_CHARS = 40


class _Errors:
    """Collects errors, keeping the first ones and counting the rest.

    A limit error (over 5,000 measurements, 500 samples per minute, 100
    alarms) is listed first, always: it is the one the cloud must fix, and
    thousands of entry errors must not push it out of the list.
    """

    __slots__ = ("items", "limits", "total")

    def __init__(self) -> None:
        self.items: list[ConfigPathError] = []
        self.limits: list[ConfigPathError] = []
        self.total = 0

    def add(self, path: str, message: str) -> None:
        self.total += 1
        if len(self.items) < MAX_ERRORS:
            self.items.append(ConfigPathError(path, message))

    def limit(self, path: str, message: str) -> None:
        """A product limit is exceeded (listed before every other error)."""
        self.total += 1
        self.limits.append(ConfigPathError(path, message))

    def listed(self) -> list[ConfigPathError]:
        if self.total <= MAX_ERRORS:
            return [*self.limits, *self.items]
        kept = [*self.limits, *self.items][: MAX_ERRORS - 1]
        hidden = self.total - len(kept)
        return [*kept, ConfigPathError(DOCUMENT_PATH, f"… {hidden} more errors not listed")]


def _shown(value: object) -> str:
    """A short description of a JSON value for a message (never the whole of a huge one)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        if len(value) > _SHOWN_CHARS:
            return repr(value[:_SHOWN_CHARS]) + f"… ({len(value)} characters)"
        return repr(value)
    if isinstance(value, int):
        text = str(value) if value.bit_length() < 64 else f"an integer of {value.bit_length()} bits"
        return text
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _integer(value: object) -> int | None:
    """A JSON integer: a number with no fractional part (60 and 60.0); never a boolean."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None


def _finite(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:
            return None
    if isinstance(value, float) and math.isfinite(value):
        return value
    return None


def _required_integer(
    entry: dict[str, Any], name: str, path: str, minimum: int, errors: _Errors
) -> int | None:
    if name not in entry:
        errors.add(f"{path}.{name}", "required")
        return None
    value = _integer(entry[name])
    if value is None or value < minimum:
        errors.add(f"{path}.{name}", f"must be an integer ≥ {minimum}, got {_shown(entry[name])}")
        return None
    return value


def _required_name(entry: dict[str, Any], name: str, path: str, errors: _Errors) -> str | None:
    if name not in entry:
        errors.add(f"{path}.{name}", "required")
        return None
    value = entry[name]
    if not isinstance(value, str):
        errors.add(f"{path}.{name}", f"must be a string, got {_shown(value)}")
        return None
    return value


class _Topology:
    """The names a document may use: the last published topology (None: trust, for restore).

    ``withdrawn``: devices of that topology the gateway no longer has (removed
    from its configuration file since), named as such in their errors.
    """

    __slots__ = ("_devices", "pairs", "withdrawn")

    def __init__(
        self, pairs: Set[tuple[str, str]] | None, withdrawn: Set[str] = frozenset()
    ) -> None:
        self.pairs = pairs
        self.withdrawn = withdrawn
        # Only needed to word an error: built on the first unknown name.
        self._devices: set[str] | None = None

    def check(
        self, device: str | None, measurement: str | None, path: str, errors: _Errors
    ) -> bool:
        """Whether ``device/measurement`` names a published measurement (errors added if not)."""
        if device is None or measurement is None:
            return False
        if self.pairs is None or (device, measurement) in self.pairs:
            return True
        if self._devices is None:
            self._devices = {known for known, _ in self.pairs}
        if device in self.withdrawn:
            errors.add(
                f"{path}.device",
                f"device {_shown(device)} is no longer configured on the gateway: "
                "its topology must be published again",
            )
        elif device not in self._devices:
            errors.add(
                f"{path}.device",
                f"unknown device {_shown(device)}: not in the last published topology",
            )
        else:
            errors.add(
                f"{path}.measurement",
                f"device {_shown(device)} has no measurement {_shown(measurement)} "
                "in the last published topology",
            )
        return False


def _measurement_entry(
    entry: object,
    index: int,
    topology: _Topology,
    first_at: dict[tuple[str, str], int],
    errors: _Errors,
) -> tuple[SampledMeasurement | None, int | None]:
    """The careful path for an entry that is not plainly valid: every error, precisely."""
    path = f"measurements[{index}]"
    if not isinstance(entry, dict):
        errors.add(path, f"must be an object, got {_shown(entry)}")
        return None, None
    device = _required_name(entry, "device", path, errors)
    measurement = _required_name(entry, "measurement", path, errors)
    period = _required_integer(entry, "period_s", path, 1, errors)
    if not topology.check(device, measurement, path, errors):
        return None, period
    key = (cast(str, device), cast(str, measurement))
    if key in first_at:
        errors.add(
            path,
            f"{_shown(key[0])}/{_shown(key[1])} is already listed at measurements[{first_at[key]}]",
        )
        return None, period
    first_at[key] = index
    if period is None:
        return None, None
    return SampledMeasurement(index, key[0], key[1], period), period


def _measurements(
    value: list[Any], topology: _Topology, errors: _Errors
) -> tuple[list[SampledMeasurement], Fraction]:
    sampled: list[SampledMeasurement] = []
    first_at: dict[tuple[str, str], int] = {}
    # Counted per period, summed once as exact fractions: 5,000 Fraction additions
    # would cost more than the rest of the validation.
    periods: dict[int, int] = {}
    published = topology.pairs
    for index, entry in enumerate(value):
        # Fast path for the plainly valid entry (nearly all of them, nearly always).
        if type(entry) is dict:
            device = entry.get("device")
            measurement = entry.get("measurement")
            period = entry.get("period_s")
            if (
                type(device) is str
                and type(measurement) is str
                and type(period) is int
                and period >= 1
            ):
                key = (device, measurement)
                if key not in first_at and (published is None or key in published):
                    first_at[key] = index
                    periods[period] = periods.get(period, 0) + 1
                    sampled.append(SampledMeasurement(index, device, measurement, period))
                    continue
        checked, counted = _measurement_entry(entry, index, topology, first_at, errors)
        if counted is not None:
            periods[counted] = periods.get(counted, 0) + 1
        if checked is not None:
            sampled.append(checked)
    rate = sum((Fraction(60 * n, p) for p, n in periods.items()), Fraction(0))
    if len(value) > MAX_MEASUREMENTS:
        errors.limit("measurements", f"{len(value)} measurements; at most {MAX_MEASUREMENTS:,}")
    if rate > MAX_SAMPLES_PER_MINUTE:
        shown = str(rate.numerator) if rate.denominator == 1 else f"{rate} (≈ {float(rate):.3f})"
        errors.limit(
            "measurements",
            f"{shown} samples per minute (sum of 60 / period_s); at most {MAX_SAMPLES_PER_MINUTE}",
        )
    return sampled, rate


def _alarm(
    entry: dict[str, Any], path: str, topology: _Topology, errors: _Errors
) -> AlarmRule | None:
    alarm_id = _required_name(entry, "id", path, errors)
    if alarm_id is not None and not _ALARM_ID.fullmatch(alarm_id):
        errors.add(f"{path}.id", f"{_shown(alarm_id)} does not match [A-Za-z0-9_.-]{{1,64}}")
        alarm_id = None
    device = _required_name(entry, "device", path, errors)
    measurement = _required_name(entry, "measurement", path, errors)
    known = topology.check(device, measurement, path, errors)
    condition = entry.get("condition")
    if "condition" not in entry:
        errors.add(f"{path}.condition", "required")
    elif condition not in _CONDITIONS:
        errors.add(f"{path}.condition", f'must be "over" or "under", got {_shown(condition)}')
    threshold = None
    if "threshold" not in entry:
        errors.add(f"{path}.threshold", "required")
    else:
        threshold = _finite(entry["threshold"])
        if threshold is None:
            errors.add(
                f"{path}.threshold", f"must be a finite number, got {_shown(entry['threshold'])}"
            )
    hysteresis = None
    if "hysteresis" not in entry:
        errors.add(f"{path}.hysteresis", "required")
    else:
        hysteresis = _finite(entry["hysteresis"])
        if hysteresis is None or hysteresis < 0:
            errors.add(
                f"{path}.hysteresis",
                f"must be a finite number ≥ 0, got {_shown(entry['hysteresis'])}",
            )
            hysteresis = None
    delay = _required_integer(entry, "delay_s", path, 0, errors)
    severity = entry.get("severity", "medium")
    if severity not in _SEVERITIES:
        errors.add(f"{path}.severity", f'must be "low", "medium" or "high", got {_shown(severity)}')
        return None
    if (
        alarm_id is None
        or not known
        or condition not in _CONDITIONS
        or threshold is None
        or hysteresis is None
        or delay is None
    ):
        return None
    return AlarmRule(
        id=alarm_id,
        device=cast(str, device),
        measurement=cast(str, measurement),
        condition=cast(AlarmCondition, condition),
        threshold=threshold,
        hysteresis=hysteresis,
        delay_s=delay,
        severity=cast(Severity, severity),
    )


def _alarms(
    value: list[Any], topology: _Topology, errors: _Errors, where: str = "alarms"
) -> list[AlarmRule]:
    rules: list[AlarmRule] = []
    first_at: dict[str, int] = {}
    for index, entry in enumerate(value):
        path = f"{where}[{index}]"
        if not isinstance(entry, dict):
            errors.add(path, f"must be an object, got {_shown(entry)}")
            continue
        rule = _alarm(entry, path, topology, errors)
        alarm_id = entry.get("id")
        if isinstance(alarm_id, str):
            if alarm_id in first_at:
                errors.add(
                    f"{path}.id",
                    f"{_shown(alarm_id)} is already used by {where}[{first_at[alarm_id]}]",
                )
                continue
            first_at[alarm_id] = index
        if rule is not None:
            rules.append(rule)
    if len(value) > MAX_ALARMS:
        errors.limit(where, f"{len(value)} alarms; at most {MAX_ALARMS}")
    return rules


def validate_alarms(
    value: object, published: Set[tuple[str, str]] | None, *, where: str = "alarms"
) -> tuple[AlarmRule, ...]:
    """Check a list of alarms on its own, with the remote configuration's rules and limits.

    The local alarms of email publication have the same shape and limits as
    the remote configuration's; their errors are named from ``where``
    (``email.alarms[3].threshold``). ``published`` is the measurements that
    may be watched, or ``None`` when they are not known yet (checked later).
    Raises :class:`RemoteConfigRejected` listing every problem.
    """
    errors = _Errors()
    rules: list[AlarmRule] = []
    if not isinstance(value, list):
        errors.add(where, f"must be a list, got {_shown(value)}")
    else:
        rules = _alarms(value, _Topology(published), errors, where)
    if errors.total:
        raise RemoteConfigRejected(errors.listed())
    return tuple(rules)


def _check(
    document: object, published: Set[tuple[str, str]] | None, withdrawn: Set[str] = frozenset()
) -> RemoteConfig:
    errors = _Errors()
    if not isinstance(document, dict):
        errors.add(DOCUMENT_PATH, f"must be a JSON object, got {_shown(document)}")
        raise RemoteConfigRejected(errors.listed())
    topology = _Topology(published, withdrawn)

    version = document.get("version")
    if "version" not in document:
        errors.add("version", "required")
    elif not isinstance(version, str) or not 0 < len(version) <= MAX_VERSION_LENGTH:
        errors.add(
            "version",
            f"must be a non-empty string of at most {MAX_VERSION_LENGTH} characters, "
            f"got {_shown(version)}",
        )
    readable_version = (
        version if isinstance(version, str) and len(version) <= MAX_VERSION_LENGTH else None
    )

    sampled: list[SampledMeasurement] = []
    if "measurements" not in document:
        errors.add("measurements", "required")
    elif not isinstance(document["measurements"], list):
        errors.add("measurements", f"must be a list, got {_shown(document['measurements'])}")
    else:
        sampled, _rate = _measurements(document["measurements"], topology, errors)

    rules: list[AlarmRule] = []
    if "alarms" not in document:
        errors.add("alarms", "required")
    elif not isinstance(document["alarms"], list):
        errors.add("alarms", f"must be a list, got {_shown(document['alarms'])}")
    else:
        rules = _alarms(document["alarms"], topology, errors)

    publisher_period: int | None = None
    publisher = document.get("publisher")
    if "publisher" not in document:
        errors.add("publisher", "required")
    elif not isinstance(publisher, dict):
        errors.add("publisher", f"must be an object, got {_shown(publisher)}")
    else:
        publisher_period = _required_integer(publisher, "period_s", "publisher", 1, errors)

    if errors.total or publisher_period is None:
        raise RemoteConfigRejected(errors.listed(), readable_version)
    return RemoteConfig(
        version=cast(str, version),
        measurements=tuple(sampled),
        alarms=tuple(rules),
        publisher_period_s=publisher_period,
    )


def validate(
    document: object, published: Set[tuple[str, str]], *, withdrawn: Set[str] = frozenset()
) -> RemoteConfig:
    """Check a parsed document whole against the last published topology's measurements.

    Returns the typed configuration, or raises :class:`RemoteConfigRejected`
    listing every problem; never applies or keeps any part of a bad document.
    ``withdrawn`` names devices of the published topology that are no longer
    configured (``published`` does not list their measurements any more).
    """
    return _check(document, published, withdrawn)


def restore(document: object) -> RemoteConfig:
    """Rebuild a configuration that was validated when it was applied (from the store).

    The topology check is not repeated: the topology may have been published
    again since, and what was applied stays applied until the cloud sends more.
    """
    return _check(document, None)


def _no_constants(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


def parse_document(raw: bytes) -> object:
    """Parse a document's bytes strictly (UTF-8 JSON, no NaN/Infinity), bounded in size."""
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise RemoteConfigRejected(
            [
                ConfigPathError(
                    DOCUMENT_PATH,
                    f"{len(raw):,} bytes; a remote configuration is at most "
                    f"{MAX_DOCUMENT_BYTES:,} bytes",
                )
            ]
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RemoteConfigRejected(
            [ConfigPathError(DOCUMENT_PATH, f"not UTF-8 (byte {exc.start})")]
        ) from None
    try:
        return json.loads(text, parse_constant=_no_constants)
    except RecursionError:
        raise RemoteConfigRejected(
            [ConfigPathError(DOCUMENT_PATH, "not valid JSON: nested too deeply")]
        ) from None
    except ValueError as exc:
        # JSONDecodeError and the too-many-digits integer guard both land here.
        raise RemoteConfigRejected(
            [ConfigPathError(DOCUMENT_PATH, f"not valid JSON: {str(exc)[:200]}")]
        ) from None


def validate_bytes(raw: bytes, published: Set[tuple[str, str]]) -> RemoteConfig:
    """Parse then validate a document as received from the hub."""
    return validate(parse_document(raw), published)


def report_body(
    outcome: RemoteConfig | RemoteConfigRejected, *, version: str | None = None
) -> dict[str, Any]:
    """The §6 report: ``applied`` for a configuration, ``rejected`` with every error.

    ``version`` is the one the hub served (its ETag); it takes precedence and
    is needed when the document had no readable version of its own.
    """
    if isinstance(outcome, RemoteConfig):
        return {"version": version or outcome.version, "status": "applied", "errors": []}
    return {
        "version": version or outcome.version or "",
        "status": "rejected",
        "errors": [{"path": error.path, "message": error.message} for error in outcome.errors],
    }
