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
So is the SMTP password of email publication (``email.password_file``).

Publication is one setting, ``publication.method``: ``cloud`` (data and
alarms to the cloud), ``email`` (alarms by email, from the local
``[[email.alarms]]``) or ``none``. Cloud and email publication are mutually
exclusive (see :mod:`panelfast.publication` for switching). The former
``cloud.alarm_publication = "cloud" | "email"`` still loads, as the method.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
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

from panelfast.exceptions import ConfigError, ConfigIssue, ModelError, RemoteConfigRejected
from panelfast.models.loader import ModelLibrary
from panelfast.remote_config import AlarmRule, validate_alarms

__all__ = [
    "CloudSettings",
    "ControlSettings",
    "DeviceSettings",
    "EmailSettings",
    "GatewaySettings",
    "IdentitySettings",
    "LoggingSettings",
    "MetricsSettings",
    "PublicationMethod",
    "PublicationSettings",
    "RtuConnection",
    "Settings",
    "StorageSettings",
    "TcpConnection",
    "TimeSettings",
    "WebSettings",
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
    #: Read-only mirror of ``publication.method``, set at load for code that still
    #: reads it; never written back (in a file it is the former name of the method).
    alarm_publication: Annotated[Literal["cloud", "email", "none"], Field(exclude=True)] = "cloud"
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


PublicationMethod = Literal["cloud", "email", "none"]
_METHODS: tuple[str, ...] = get_args(PublicationMethod)


class PublicationSettings(_Section):
    """Where the gateway publishes: to the cloud, alarms by email, or nowhere."""

    #: Cloud and email publication are mutually exclusive (the seed's rule).
    method: PublicationMethod = "cloud"


#: At most this many recipients, each address at most this long.
MAX_RECIPIENTS = 10
MAX_ADDRESS_CHARS = 128


def _email_address(value: str) -> str:
    if len(value) > MAX_ADDRESS_CHARS:
        raise ValueError(f"{len(value)} characters; an address is at most {MAX_ADDRESS_CHARS}")
    # Imported here: only a file with an [email] section pays for its tables.
    from email_validator import EmailNotValidError, validate_email

    try:
        # No DNS look-up: the gateway may load its file before the network is up.
        checked = validate_email(value, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise ValueError(f"{value!r} is not a valid email address: {exc}") from None
    return str(checked.ascii_email or checked.normalized)


EmailAddress = Annotated[str, AfterValidator(_email_address)]


class EmailSettings(_Section):
    """Email publication of alarms: the SMTP server, who sends, who receives, which alarms."""

    host: Annotated[str, Field(min_length=1, max_length=253)]
    #: Default 587 for ``starttls``, 465 for ``tls``.
    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    #: ``starttls``: plain connection upgraded (required, never skipped);
    #: ``tls``: TLS from the first byte. Certificates are always verified.
    security: Literal["starttls", "tls"] = "starttls"
    #: SMTP AUTH; without a username the server is used without authenticating.
    username: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    #: The password's file, mode 0600 (a secret: never in the configuration file).
    password_file: Path | None = None
    from_address: EmailAddress
    recipients: Annotated[tuple[EmailAddress, ...], Field(min_length=1, max_length=MAX_RECIPIENTS)]
    ca_bundle: Path | None = None
    timeout_s: Annotated[float, Field(gt=0, le=300)] = 30.0
    #: Events waiting for the server at most; beyond, the oldest are dropped, counted.
    queue_limit: Annotated[int, Field(ge=10, le=100_000)] = 10_000
    #: The alarms watched in email mode (same shape and limits as the remote
    #: configuration's); checked by :func:`parse_settings`.
    alarms: tuple[AlarmRule, ...] = ()

    @field_validator("recipients")
    @classmethod
    def _distinct(cls, recipients: tuple[str, ...]) -> tuple[str, ...]:
        seen: set[str] = set()
        for address in recipients:
            if address.lower() in seen:
                raise ValueError(f"{address!r} is listed twice")
            seen.add(address.lower())
        return recipients

    @model_validator(mode="after")
    def _credentials_together(self) -> EmailSettings:
        if (self.username is None) != (self.password_file is None):
            raise ValueError("username and password_file go together (SMTP AUTH), or neither")
        return self

    @property
    def smtp_port(self) -> int:
        if self.port is not None:
            return self.port
        return 587 if self.security == "starttls" else 465

    def check_measurements(self, known: AbstractSet[tuple[str, str]]) -> None:
        """Refuse alarms on a measurement the devices' models do not have (known once
        the models are loaded), each named by its path."""
        issues = [
            ConfigIssue(
                f"email.alarms[{index}].measurement",
                f"device {rule.device!r} has no measurement {rule.measurement!r}",
            )
            for index, rule in enumerate(self.alarms)
            if (rule.device, rule.measurement) not in known
        ]
        if issues:
            raise ConfigError("(config)", issues)

    def password(self) -> SecretStr | None:
        """Read the SMTP password (its file must be mode 0600); ``None`` without AUTH."""
        if self.password_file is None:
            return None
        return read_password(self.password_file)


class GatewaySettings(_Section):
    """Local interfaces and what the user explicitly allowed."""

    #: Outputs remote control (§9) is enabled with `panelfast outputs remote-control
    #: enable`, which asks for the user's confirmation; the file may only say false.
    outputs_remote_control: StrictBool = False
    #: Extra folders of device model files, besides the models shipped.
    model_dirs: tuple[Path, ...] = ()

    @field_validator("outputs_remote_control")
    @classmethod
    def _confirmed_elsewhere(cls, enabled: bool) -> bool:
        if enabled:
            raise ValueError(
                "outputs remote control is enabled with `panelfast outputs remote-control "
                "enable`, which asks you to confirm the risk, not in the configuration file"
            )
        return enabled


class ControlSettings(_Section):
    """The control API the daemon serves (the CLI, services and web pages use it)."""

    #: The Unix socket; default ``control.sock`` in the storage folder.
    socket: Path | None = None
    #: The group that may use the socket besides the daemon's user (mode 0660).
    group: str | None = None


class MetricsSettings(_Section):
    """Prometheus metrics on a port of their own (off unless ``listen`` is set)."""

    #: ``host:port`` (``[v6]:port``) to serve ``/metrics`` on. The page names the
    #: site's devices and states to whoever can read it: keep it on loopback
    #: unless the scraper is elsewhere.
    listen: str | None = None

    @field_validator("listen")
    @classmethod
    def _host_port(cls, listen: str | None) -> str | None:
        if listen is not None:
            split_host_port(listen)
        return listen


class WebSettings(_Section):
    """The local web pages and the control API over HTTPS, behind a login (off unless
    ``listen`` is set: a gateway that does not serve them imports none of their stack)."""

    #: ``host:port`` (``[v6]:port``) to serve HTTPS on, e.g. ``0.0.0.0:8443``.
    listen: str | None = None
    #: The name the audit log records changes under (``web:<user>``).
    user: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,32}$")] = "admin"
    #: The server certificate (PEM, chain included) and its private key (mode 0600 or
    #: 0640); neither: a self-signed certificate is made and kept in the storage folder.
    certificate: Path | None = None
    key: Path | None = None
    #: A login ends after this long without a request from the person...
    session_idle_min: Annotated[int, Field(ge=1, le=24 * 60)] = 30
    #: ...and this long after it began, whatever happens.
    session_max_h: Annotated[int, Field(ge=1, le=7 * 24)] = 12

    @field_validator("listen")
    @classmethod
    def _host_port(cls, listen: str | None) -> str | None:
        if listen is not None:
            split_host_port(listen)
        return listen

    @model_validator(mode="after")
    def _certificate_with_key(self) -> WebSettings:
        if (self.certificate is None) != (self.key is None):
            raise ValueError("certificate and key go together, or neither (self-signed)")
        return self


class LoggingSettings(_Section):
    """Where the daemon's log goes and in which form (``panelfast run`` options override)."""

    #: ``text``: human lines; ``json``: one JSON object per line, every field apart.
    format: Literal["text", "json"] = "text"
    #: A file to log to instead of standard error, rotated by size.
    file: Path | None = None
    #: Rotation: a file reaching ``max_mb`` is renamed ``.1`` and ``backups`` are kept.
    max_mb: Annotated[int, Field(ge=1, le=10_000)] = 10
    backups: Annotated[int, Field(ge=1, le=100)] = 5


def split_host_port(text: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` → (host, port); ValueError says what is wrong."""
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host:
        raise ValueError(f"{text!r} is not host:port (e.g. 127.0.0.1:9108)")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{text!r}: the port must be 1..65535")
    return host, int(port)


class Settings(_Section):
    """The whole configuration file."""

    identity: IdentitySettings
    cloud: CloudSettings
    time: TimeSettings = TimeSettings()
    storage: StorageSettings = StorageSettings()
    gateway: GatewaySettings = GatewaySettings()
    control: ControlSettings = ControlSettings()
    publication: PublicationSettings = PublicationSettings()
    email: EmailSettings | None = None
    metrics: MetricsSettings = MetricsSettings()
    web: WebSettings = WebSettings()
    logging: LoggingSettings = LoggingSettings()
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
    document, issues = _publication(document)
    try:
        settings = Settings.model_validate(document)
    except ValidationError as exc:
        issues += [ConfigIssue(_key_path(err["loc"]), _message(err)) for err in exc.errors()]
        raise ConfigError(source, issues) from None
    if issues:
        raise ConfigError(source, issues)
    return _resolve_paths(settings, Path(source).parent if source != "<config>" else Path())


def _section(document: dict[str, Any], name: str) -> dict[str, Any] | None:
    value = document.get(name)
    return value if isinstance(value, dict) else None


def _publication(document: dict[str, Any]) -> tuple[dict[str, Any], list[ConfigIssue]]:
    """The publication method (from its former key too) and the email alarms, checked."""
    issues: list[ConfigIssue] = []
    document = dict(document)
    _publication_method(document, issues)
    _email_alarms(document, issues)
    return document, issues


def _publication_method(document: dict[str, Any], issues: list[ConfigIssue]) -> None:
    cloud, publication = _section(document, "cloud"), _section(document, "publication")
    method = publication.get("method", "cloud") if publication is not None else "cloud"
    key = "publication.method"
    if cloud is not None and "alarm_publication" in cloud:
        # The former key: a file written before publication.method still loads.
        former = cloud["alarm_publication"]
        if publication is not None and "method" in publication:
            if former != method:
                issues.append(
                    ConfigIssue(
                        "cloud.alarm_publication",
                        "replaced by publication.method, which says otherwise; remove it",
                    )
                )
        elif former not in _METHODS:
            issues.append(
                ConfigIssue(
                    "cloud.alarm_publication",
                    f"now publication.method, one of {', '.join(map(repr, _METHODS))}; "
                    f"got {former!r}",
                )
            )
        else:
            method, key = former, "cloud.alarm_publication"
            document["publication"] = {**(publication or {}), "method": former}
    if cloud is not None:
        cloud = {k: v for k, v in cloud.items() if k != "alarm_publication"}
        if method in _METHODS:
            cloud["alarm_publication"] = method
        document["cloud"] = cloud
    if method == "email" and "email" not in document:
        former_note = "; this key is now publication.method" if key != "publication.method" else ""
        issues.append(
            ConfigIssue(
                key,
                "email publication needs an [email] section (host, from_address, recipients, "
                f"alarms){former_note}",
            )
        )


def _email_alarms(document: dict[str, Any], issues: list[ConfigIssue]) -> None:
    """Check the email alarms by the remote configuration's own rules, each problem
    named by its path (``email.alarms[3].threshold``); pydantic is left the typed
    rules, or none when they are invalid."""
    email = _section(document, "email")
    if email is None or "alarms" not in email:
        return
    email = dict(email)
    # A dump of loaded settings (a local change, validated again) holds tuples.
    listed, devices = email.pop("alarms"), document.get("devices")
    listed = list(listed) if isinstance(listed, tuple) else listed
    device_ids = (
        {d.get("id") for d in devices if isinstance(d, dict)}
        if isinstance(devices, list | tuple)
        else set()
    )
    try:
        rules = validate_alarms(listed, None, where="email.alarms")
    except RemoteConfigRejected as exc:
        issues += [ConfigIssue(e.path, e.message) for e in exc.errors]
    else:
        for index, rule in enumerate(rules):
            if rule.device not in device_ids:
                issues.append(
                    ConfigIssue(
                        f"email.alarms[{index}].device",
                        f"unknown device {rule.device!r}: not among the [[devices]]",
                    )
                )
        email["alarms"] = rules
    document["email"] = email


def load_settings(path: str | os.PathLike[str], *, whole: bool = True) -> Settings:
    """Read and check a configuration file; relative paths are from its folder.

    Besides the file itself, what it refers to is checked too (the claim key
    file, each device's model): every command and the daemon start from a
    configuration known to be whole. ``whole=False`` leaves those to the
    caller (``panelfast doctor`` checks them one by one, each with its fix).
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
    issues = referred_problems(settings) if whole else []
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
    control = settings.control
    if control.socket is not None:
        control = control.model_copy(update={"socket": resolve(control.socket)})
    gateway = settings.gateway.model_copy(
        update={"model_dirs": tuple(resolve(p) for p in settings.gateway.model_dirs)}
    )
    email = settings.email
    if email is not None:
        email = email.model_copy(
            update={
                "password_file": email.password_file and resolve(email.password_file),
                "ca_bundle": email.ca_bundle and resolve(email.ca_bundle),
            }
        )
    logs = settings.logging
    if logs.file is not None:
        logs = logs.model_copy(update={"file": resolve(logs.file)})
    web = settings.web
    if web.certificate is not None and web.key is not None:
        web = web.model_copy(
            update={"certificate": resolve(web.certificate), "key": resolve(web.key)}
        )
    return settings.model_copy(
        update={
            "identity": identity,
            "cloud": cloud,
            "storage": storage,
            "gateway": gateway,
            "control": control,
            "email": email,
            "logging": logs,
            "web": web,
        }
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


def read_password(path: Path) -> SecretStr:
    """Read the SMTP password file, refusing one that others can read."""
    key = "email.password_file"
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(str(path), [ConfigIssue(key, f"cannot read: {exc.strerror}")]) from None
    except UnicodeDecodeError:
        raise ConfigError(str(path), [ConfigIssue(key, "not UTF-8 text")]) from None
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
    if not text:
        raise ConfigError(str(path), [ConfigIssue(key, "the password file is empty")])
    return SecretStr(text)


def write_secret(path: Path, text: str) -> None:
    """Write a secret file created with mode 0600 (never briefly world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode("ascii"))
    finally:
        os.close(fd)
