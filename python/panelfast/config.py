"""The gateway's configuration file (TOML) → validated, typed settings.

The file holds what a commissioning engineer sets: the gateway's identity, the
cloud's bootstrap URL with an optional proxy and CA bundle, the time
synchronisation mode, where state is stored, and the devices. What the cloud
imposes (sampling, alarms, publication period) is *not* here: that is the
remote configuration, read-only on the gateway.

Every problem is reported at once, each with the key it concerns
(``devices[2].connection.unit_id``), as a :class:`~panelfast.exceptions.ConfigError`.
:func:`load_settings` checks what the file refers to as well: the claim key
file and each device's model. Numbers and booleans are strict: ``port = "502"``
is refused (it would be the string "502"), while TOML's own types need no
conversion (``request_timeout_s = 10`` is a number of seconds).

The claim key is a secret: it lives in its own file (``claim_key_file``),
which must be readable by its owner only (mode 0600), and is held as a
:class:`pydantic.SecretStr` so that it never appears in a repr or a log.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StrictBool,
    StrictFloat,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from panelfast.exceptions import ConfigError, ConfigIssue, ModelError
from panelfast.models.loader import ModelLibrary

__all__ = [
    "CloudSettings",
    "DeviceSettings",
    "GatewaySettings",
    "IdentitySettings",
    "RtuConnection",
    "Settings",
    "StorageSettings",
    "TcpConnection",
    "TimeSettings",
    "load_settings",
    "parse_settings",
    "referred_problems",
]

#: Ids of devices, measurements and outputs (cloud protocol §5).
ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
Identifier = Annotated[str, Field(pattern=ID_PATTERN)]


class _Section(BaseModel):
    # A misspelt key is a mistake the user wants to hear about, not ignore.
    model_config = ConfigDict(extra="forbid", frozen=True)


class IdentitySettings(_Section):
    """Panel Server identification, from the factory configuration (§2)."""

    serial: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{2,63}$")]
    model: Literal["entry", "universal", "advanced"] = "advanced"
    firmware: str = "0.1.0"
    mac: Annotated[str, Field(pattern=r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")]
    name: str = "Panel Server"
    claim_key_file: Path

    def claim_key(self) -> SecretStr:
        """Read the claim key: 32 bytes, hex; its file must be mode 0600."""
        return read_claim_key(self.claim_key_file)


class CloudSettings(_Section):
    """How to reach the cloud (§1): only the bootstrap URL is configured."""

    bootstrap_url: AnyHttpUrl
    ca_bundle: Path | None = None
    proxy: AnyHttpUrl | None = None
    #: Cloud publication and email publication of alarms are mutually exclusive.
    alarm_publication: Literal["cloud", "email"] = "cloud"
    request_timeout_s: Annotated[StrictFloat, Field(gt=0, le=120)] = 10.0

    @field_validator("bootstrap_url")
    @classmethod
    def _https_only(cls, url: AnyHttpUrl) -> AnyHttpUrl:
        if url.scheme != "https":
            raise ValueError("the cloud is reached over HTTPS only (§1): use an https:// URL")
        return url

    @field_validator("proxy")
    @classmethod
    def _http_proxy(cls, url: AnyHttpUrl | None) -> AnyHttpUrl | None:
        if url is not None and url.scheme != "http":
            raise ValueError("the proxy is an http://[user:password@]host:port URL")
        return url


class TimeSettings(_Section):
    """Time synchronisation: the claim signature needs a clock within 300 s."""

    mode: Literal["manual", "ntp", "cloud"] = "cloud"
    #: Used in mode ``ntp``, and in mode ``cloud`` before the first bootstrap.
    ntp_server: str = "pool.ntp.org"


class StorageSettings(_Section):
    """Where the gateway keeps its durable state (outbox, applied configuration)."""

    dir: Path = Path("/var/lib/panelfast")
    #: Disk quota of the outbox; when full the oldest data is dropped, counted.
    quota_mb: Annotated[StrictInt, Field(ge=1)] = 2500


class TcpConnection(_Section):
    """A device reached over Modbus TCP (or RTU framing over TCP, for converters)."""

    type: Literal["tcp", "rtu-over-tcp"]
    host: str
    port: Annotated[StrictInt, Field(ge=1, le=65535)] = 502
    unit_id: Annotated[StrictInt, Field(ge=0, le=255)] = 1
    timeout_ms: Annotated[StrictInt, Field(ge=10, le=60_000)] = 1000
    period_ms: Annotated[StrictInt, Field(ge=10, le=3_600_000)] = 1000


class RtuConnection(_Section):
    """A device on a serial Modbus RTU bus."""

    type: Literal["rtu"]
    port: str
    baud_rate: Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] = 19200
    parity: Literal["none", "even", "odd"] = "even"
    stop_bits: Literal[1, 2] = 1
    data_bits: Literal[7, 8] = 8
    unit_id: Annotated[StrictInt, Field(ge=1, le=247)] = 1
    timeout_ms: Annotated[StrictInt, Field(ge=10, le=60_000)] = 1000
    period_ms: Annotated[StrictInt, Field(ge=10, le=3_600_000)] = 1000


class DeviceSettings(_Section):
    """A device connected to the gateway, as commissioned."""

    id: Identifier
    name: str
    model: str
    label: str = ""
    usage: str = ""
    zone: str = ""
    commodity: Literal["electricity", "gas", "water", "heat", "other"] = "electricity"
    connection: Annotated[TcpConnection | RtuConnection, Field(discriminator="type")]


class GatewaySettings(_Section):
    """Local interfaces and what the user explicitly allowed."""

    #: Outputs remote control is off unless the user confirmed it (§9).
    outputs_remote_control: StrictBool = False
    #: Extra folders of device model files, besides the models shipped.
    model_dirs: tuple[Path, ...] = ()


class Settings(_Section):
    """The whole configuration file."""

    identity: IdentitySettings
    cloud: CloudSettings
    time: TimeSettings = TimeSettings()
    storage: StorageSettings = StorageSettings()
    gateway: GatewaySettings = GatewaySettings()
    devices: tuple[DeviceSettings, ...] = ()

    @model_validator(mode="after")
    def _unique_device_ids(self) -> Settings:
        seen: set[str] = set()
        for device in self.devices:
            if device.id in seen:
                raise ValueError(f"device id {device.id!r} is used twice")
            seen.add(device.id)
        return self


def _key_path(loc: tuple[int | str, ...]) -> str:
    """`("devices", 2, "connection", "tcp", "port")` → ``devices[2].connection.port``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("tcp", "rtu", "rtu-over-tcp", "TcpConnection", "RtuConnection"):
            continue  # the discriminated union's branch name is noise to the user
        else:
            out += f".{part}" if out else part
    return out or "(file)"


_EXPECTED = {"int_type": "a whole number", "float_type": "a number", "bool_type": "true or false"}


def _unquoted(text: str) -> bool:
    """Whether ``text`` would be a TOML number or boolean without its quotes."""
    try:
        value = tomllib.loads(f"v = {text}").get("v")
    except tomllib.TOMLDecodeError:
        return False
    return isinstance(value, int | float)  # a bool is an int


def _message(err: ErrorDetails) -> str:
    """pydantic's message; for a value of the wrong type, what was given instead."""
    given = err["input"]
    expected = _EXPECTED.get(err["type"])
    if expected is None:
        if err["type"] == "literal_error" and isinstance(given, str) and _unquoted(given):
            return f'{err["msg"]}, not the text "{given}" (write it without quotes)'
        return err["msg"]
    if isinstance(given, str):
        hint = " (write it without quotes)" if _unquoted(given) else ""
        return f'{expected}, not the text "{given}"{hint}'
    shown = str(given).lower() if isinstance(given, bool) else repr(given)
    return f"{expected}, not {shown}"


def parse_settings(document: dict[str, Any], source: str = "<config>") -> Settings:
    """Validate an already-parsed configuration document."""
    try:
        settings = Settings.model_validate(document)
    except ValidationError as exc:
        issues = [ConfigIssue(_key_path(err["loc"]), _message(err)) for err in exc.errors()]
        raise ConfigError(source, issues) from None
    return _resolve_paths(settings, Path(source).parent if source != "<config>" else Path())


def load_settings(path: str | os.PathLike[str]) -> Settings:
    """Read and check a configuration file; relative paths are from its folder.

    Besides the file itself, what it refers to is checked too (the claim key
    file, each device's model): every command and the daemon start from a
    configuration known to be whole.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        where = path.absolute()
        raise ConfigError(
            str(path), [ConfigIssue("(file)", f"no such file (looked for {where})")]
        ) from None
    except OSError as exc:
        raise ConfigError(
            str(path), [ConfigIssue("(file)", f"cannot read: {exc.strerror}")]
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(str(path), [ConfigIssue("(file)", "not UTF-8 text")]) from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), [ConfigIssue("(file)", f"not valid TOML: {exc}")]) from None
    settings = parse_settings(document, str(path))
    issues = referred_problems(settings)
    if issues:
        raise ConfigError(str(path), issues)
    return settings


def referred_problems(settings: Settings) -> list[ConfigIssue]:
    """What is wrong with what the settings refer to: the claim key file, the device models."""
    issues: list[ConfigIssue] = []
    try:
        settings.identity.claim_key()
    except ConfigError as exc:
        issues += exc.issues
    library = ModelLibrary(settings.gateway.model_dirs, strict=False)
    issues += [ConfigIssue("gateway.model_dirs", str(error)) for error in library.errors]
    for k, device in enumerate(settings.devices):
        try:
            library.get(device.model)
        except ModelError as exc:
            issues += [
                ConfigIssue(f"devices[{k}].model", f"{device.model}: {issue.message}")
                for issue in exc.issues
            ]
    return issues


def _resolve_paths(settings: Settings, base: Path) -> Settings:
    def resolve(p: Path) -> Path:
        return p if p.is_absolute() else (base / p)

    identity = settings.identity.model_copy(
        update={"claim_key_file": resolve(settings.identity.claim_key_file)}
    )
    cloud = settings.cloud
    if cloud.ca_bundle is not None:
        cloud = cloud.model_copy(update={"ca_bundle": resolve(cloud.ca_bundle)})
    storage = settings.storage.model_copy(update={"dir": resolve(settings.storage.dir)})
    gateway = settings.gateway.model_copy(
        update={"model_dirs": tuple(resolve(p) for p in settings.gateway.model_dirs)}
    )
    return settings.model_copy(
        update={"identity": identity, "cloud": cloud, "storage": storage, "gateway": gateway}
    )


_CLAIM_KEY = re.compile(r"^[0-9a-fA-F]{64}$")


def read_claim_key(path: Path) -> SecretStr:
    """Read a claim key file, refusing one that others can read."""
    key = "identity.claim_key_file"
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="ascii").strip()
    except OSError as exc:
        raise ConfigError(
            str(path), [ConfigIssue(key, f"cannot read {path}: {exc.strerror}")]
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(str(path), [ConfigIssue(key, "not a hex claim key")]) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            str(path),
            [
                ConfigIssue(
                    key,
                    f"mode {stat.S_IMODE(mode):04o} lets others read a secret; "
                    f"run: chmod 600 {path}",
                )
            ],
        )
    if not _CLAIM_KEY.match(text):
        raise ConfigError(str(path), [ConfigIssue(key, "a claim key is 64 hex digits (32 bytes)")])
    return SecretStr(text.lower())


def write_secret(path: Path, text: str) -> None:
    """Write a secret file created with mode 0600 (never briefly world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode("ascii"))
    finally:
        os.close(fd)
