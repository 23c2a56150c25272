"""Local settings changes: what the user may change on the gateway, and what the cloud owns.

Sampling, alarms and the publication period are the remote configuration's
(§6): any local attempt to change them is refused with
:class:`~panelfast.exceptions.RemoteConfigReadOnly`, which says the cloud manages
them. A few settings of the configuration file are the user's
(:data:`LOCAL_SETTINGS`); :func:`change_setting` validates a new value as the
file loader would, and :func:`edit_config_file` writes it into the file in
place, keeping the user's comments and layout.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from panelfast._durable import write_atomically
from panelfast.config import Settings, parse_settings
from panelfast.exceptions import ConfigError, ConfigIssue
from panelfast.publication import change_publication_method
from panelfast.remote_config import ensure_local_change_allowed

__all__ = ["LOCAL_SETTINGS", "change_setting", "cloud_services_on", "edit_config_file"]

#: ``section.key`` → what it is. Only these change locally; device commissioning
#: and identity are edited in the file itself, as when the gateway is installed.
LOCAL_SETTINGS: dict[str, str] = {
    "cloud.request_timeout_s": "timeout of one cloud request, in seconds",
    "publication.method": "cloud, email (alarms) or none; email only while disconnected",
    "storage.quota_mb": "disk quota of the outbox, in MB",
    "time.mode": "time synchronisation: manual, ntp or cloud",
    "time.ntp_server": "the NTP server used in mode ntp",
}


#: Outputs remote control is not a file setting: enabling it needs the user's confirmation.
_REMOTE_CONTROL = (
    "outputs remote control is enabled with `panelfast outputs remote-control enable`, "
    "which asks you to confirm the risk; it is not a setting of the file"
)


def _refuse_unknown(key: str) -> ConfigError:
    if key == "gateway.outputs_remote_control":
        return ConfigError("(local setting)", [ConfigIssue(key, _REMOTE_CONTROL)])
    if key == "cloud.alarm_publication":
        return ConfigError(
            "(local setting)",
            [ConfigIssue(key, "replaced by publication.method (cloud, email or none)")],
        )
    known = ", ".join(sorted(LOCAL_SETTINGS))
    return ConfigError(
        "(local setting)", [ConfigIssue(key, f"not a setting changed locally (those are: {known})")]
    )


def cloud_services_on(settings: Settings) -> bool:
    """Whether the user's Connect holds, as the gateway last stored it."""
    from panelfast.cloud import StateStore

    return StateStore(settings.storage.dir).load().connect


def change_setting(
    settings: Settings,
    key: str,
    value: object,
    *,
    applied_version: str | None = None,
    cloud_on: bool | None = None,
) -> Settings:
    """``settings`` with ``key`` set to ``value``, validated as the file loader would.

    Raises :class:`~panelfast.exceptions.RemoteConfigReadOnly` for what the cloud
    manages (``sampling.*``, ``alarms.*``, ``publisher.*``...), naming
    ``applied_version``, :class:`~panelfast.exceptions.PublicationConflict` for
    a publication method that cloud services being on forbid (``cloud_on``:
    the Connect holds; None: as stored in the storage folder), and
    :class:`~panelfast.exceptions.ConfigError` for an unknown key or an invalid value.
    """
    ensure_local_change_allowed(key, applied_version)
    if key not in LOCAL_SETTINGS:
        raise _refuse_unknown(key)
    if key == "publication.method":
        on = cloud_services_on(settings) if cloud_on is None else cloud_on
        change_publication_method(settings.publication.method, value, cloud_on=on)
    section, field = key.split(".", 1)
    # Paths were resolved at load; validating the resolved document keeps them as they are.
    document = settings.model_dump(mode="python")
    document[section][field] = value
    try:
        return parse_settings(document, "<config>")
    except ConfigError as exc:
        issues = [i for i in exc.issues if i.key == key] or exc.issues
        raise ConfigError("(local setting)", issues) from None


def _from_text(settings: Settings, key: str, text: str) -> object:
    """A value typed on a command line, read as the setting's type reads it
    (``"15"`` → 15, ``"true"`` → True); the file itself takes no such conversion."""
    section, field = key.split(".", 1)
    part: BaseModel = getattr(settings, section)
    kind = type(part).model_fields[field].annotation
    if kind not in (int, float, bool):
        return text
    try:
        return TypeAdapter(kind).validate_python(text)
    except ValidationError:
        return text  # refused below, as the file loader refuses it


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value)
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\u{ord(m.group()):04x}", escaped)
    return f'"{escaped}"'


def _current(settings: Settings, key: str) -> Any:
    section, field = key.split(".", 1)
    part: BaseModel = getattr(settings, section)
    return getattr(part, field)


def edit_config_file(
    path: Path,
    key: str,
    value: str,
    *,
    applied_version: str | None = None,
    cloud_on: bool | None = None,
) -> object:
    """Set ``key`` to ``value`` (as typed on a command line) in the file at ``path``.

    The value is validated first (``"true"``, ``"15"`` are converted as the
    setting's type requires); the line ``key = ...`` of the ``[section]`` is
    replaced (or added), the result checked by reading it back, and the file
    replaced atomically. Returns the value as stored.
    """
    ensure_local_change_allowed(key, applied_version)
    if key not in LOCAL_SETTINGS:
        raise _refuse_unknown(key)
    try:
        text = path.read_text(encoding="utf-8")
        document = tomllib.loads(text)
    except FileNotFoundError:
        raise ConfigError(str(path), [ConfigIssue("(file)", "no such file")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), [ConfigIssue("(file)", f"not valid TOML: {exc}")]) from None
    current = parse_settings(document, str(path))
    settings = change_setting(current, key, _from_text(current, key, value), cloud_on=cloud_on)
    stored = _current(settings, key)
    section, field = key.split(".", 1)
    edited = _set_line(text, section, field, _toml_value(stored))
    if key == "publication.method":
        # The method's former key would contradict the new one: it goes.
        edited = _drop_line(edited, "cloud", "alarm_publication")
    # Read it back: a file written another way (inline tables, dotted keys) must
    # not be silently left unchanged or broken.
    try:
        reread = tomllib.loads(edited)
        check = parse_settings(reread, str(path))
    except (tomllib.TOMLDecodeError, ConfigError):
        check = None
    if check is None or _current(check, key) != stored:
        raise ConfigError(
            str(path),
            [ConfigIssue(key, "written in a form this command cannot edit; edit the file by hand")],
        )
    # The file keeps its mode: it may be shared with a group that reads it.
    write_atomically(path, edited.encode("utf-8"), mode=path.stat().st_mode & 0o777)
    return stored


_HEADER = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.-]+)\s*\]\]?\s*(#.*)?$")


def _section_lines(lines: list[str], section: str) -> tuple[int, int] | None:
    """The ``[section]`` header's line and the line that ends the section, if present."""
    start: int | None = None
    for index, line in enumerate(lines):
        header = _HEADER.match(line)
        if header is None:
            continue
        if start is not None:  # the next section ends ours
            return start, index
        if header.group(1) == section and not line.lstrip().startswith("[["):
            start = index
    return None if start is None else (start, len(lines))


def _set_line(text: str, section: str, field: str, rendered: str) -> str:
    """Replace ``field = ...`` in ``[section]``, or add it (and the section) if absent."""
    lines = text.splitlines()
    assignment = re.compile(rf"^\s*{re.escape(field)}\s*=")
    found = _section_lines(lines, section)
    if found is None:
        return text.rstrip("\n") + f"\n\n[{section}]\n{field} = {rendered}\n"
    start, end = found
    last = start
    for index in range(start + 1, end):
        if assignment.match(lines[index]):
            lines[index] = f"{field} = {rendered}"
            return "\n".join(lines) + "\n"
        if lines[index].strip():
            last = index
    lines.insert(last + 1, f"{field} = {rendered}")
    return "\n".join(lines) + "\n"


def _drop_line(text: str, section: str, field: str) -> str:
    """``text`` without the ``field = ...`` line of ``[section]`` (unchanged if absent)."""
    lines = text.splitlines()
    assignment = re.compile(rf"^\s*{re.escape(field)}\s*=")
    found = _section_lines(lines, section)
    if found is None:
        return text
    kept = [
        line
        for i, line in enumerate(lines)
        if not (found[0] < i < found[1] and assignment.match(line))
    ]
    return "\n".join(kept) + "\n"
