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
├── SimulatorError    the device simulator cannot serve a model, or listen   [Rust core]
├── ConfigError       the gateway's configuration file is invalid
├── ReloadRefused     a configuration read again changes what cannot change while
│                     the gateway runs (identity, storage folder...): the running one stays
├── PublicationConflict  cloud services and email publication asked for together
├── MailError         an email was not sent; ``stage``, ``code``, ``text``: the SMTP server's answer
├── ModelError        a device model file is invalid, or no model has that name
├── TopologyError     the devices cannot be described as a topology (§5)
├── RemoteConfigError
│   ├── RemoteConfigRejected   a remote configuration is invalid; nothing of it applied (§6)
│   ├── RemoteConfigReadOnly   a local change to what the remote configuration imposes
│   └── StateStoreError        the stored applied configuration / topology state is unreadable
├── RemoteControlNotConfirmed  enabling outputs remote control without confirming the risk (§9)
├── CloudError        a cloud call failed; ``diagnostic`` and ``hint`` say what to check
│   ├── NetworkUnreachable  DNS, refused, timeout, reset, proxy refusal, 5xx after retries
│   ├── BadCredentials      TLS certificate not verified, 401 bad_credentials
│   │   └── TokenExpired    401 token_expired (bootstrap again, then retry)
│   ├── NotRegistered       403 device_not_registered
│   ├── InvalidPayload      400 invalid_payload: do not retry it unchanged
│   ├── NotFound            404 not_found: unknown upload, command or route
│   ├── Conflict            409 conflict; ``expected`` is the seq the cloud expects
│   ├── PayloadTooLarge     413 payload_too_large: split it or use the upload service
│   ├── RateLimited         429 rate_limited; ``retry_after`` seconds
│   ├── CloudProtocolError  the cloud answered something the protocol does not allow
│   └── NotConnected        the user disconnected: no cloud traffic until Connect
└── RefCloudError     the reference cloud refused an operator request
    └── RefCloudRequestError  a protocol request the reference cloud answers with an error
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
    SimulatorError,
)

__all__ = [
    "AlarmError",
    "BadCredentials",
    "BatchError",
    "CloudError",
    "CloudProtocolError",
    "ConfigError",
    "ConfigIssue",
    "ConfigPathError",
    "Conflict",
    "DecodeError",
    "InvalidPayload",
    "LayoutError",
    "MailError",
    "ModbusError",
    "ModbusExceptionError",
    "ModbusTimeoutError",
    "ModbusTransportError",
    "ModelError",
    "NetworkUnreachable",
    "NotConnected",
    "NotFound",
    "NotRegistered",
    "PanelfastError",
    "PayloadTooLarge",
    "PublicationConflict",
    "RateLimited",
    "RefCloudError",
    "RefCloudRequestError",
    "ReloadRefused",
    "RemoteConfigError",
    "RemoteConfigReadOnly",
    "RemoteConfigRejected",
    "RemoteControlNotConfirmed",
    "RingError",
    "SimulatorError",
    "StateStoreError",
    "TokenExpired",
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


class ReloadRefused(PanelfastError):
    """A configuration read again while the gateway runs was not applied, none of it:
    it changes what cannot change live (the identity, the storage folder...).
    ``issues`` names each key with the reason; the running configuration stays."""

    def __init__(self, source: str, issues: Sequence[ConfigIssue]) -> None:
        self.source = source
        self.issues = list(issues)
        lines = "\n".join(f"  {issue}" for issue in self.issues)
        super().__init__(f"{source} not applied; the running configuration stays:\n{lines}")


class PublicationConflict(PanelfastError):
    """Cloud services and email publication of alarms are mutually exclusive: one was
    asked for while the other is on (see :mod:`panelfast.publication` for the rule).

    ``turn_off`` names what is on and must be turned off first (``"cloud services"``
    or ``"email publication"``); ``hint`` is the command that does it.
    """

    def __init__(self, message: str, *, turn_off: str, hint: str) -> None:
        self.turn_off = turn_off
        self.hint = hint
        super().__init__(message)


class MailError(PanelfastError):
    """An email was not sent.

    ``stage`` is the step that failed (``connect``, ``starttls``, ``login``,
    ``mail from``, ``rcpt to``, ``data``); ``code`` and ``text`` are the SMTP
    server's exact answer, when it answered (``None`` for a connection that
    failed or a certificate that was not verified); ``transient`` says whether
    trying again later may succeed (a 4xx answer, no answer at all).
    """

    def __init__(
        self,
        stage: str,
        message: str,
        *,
        code: int | None = None,
        text: str | None = None,
        transient: bool = True,
    ) -> None:
        self.stage = stage
        self.code = code
        self.text = text
        self.transient = transient
        answer = f": the server answered {code} {text}" if code is not None else ""
        super().__init__(f"{stage}: {message}{answer}")


class ModelError(PanelfastError):
    """A device model file is invalid, or no model has the name asked for.

    ``issues`` names each offending entry and key (``measurements[3] (VoltageAN).type``)
    with its problem; every line of the message starts with the file's name.
    """

    def __init__(self, source: str, issues: Sequence[ConfigIssue]) -> None:
        self.source = source
        self.issues = list(issues)
        super().__init__("\n".join(f"{source}: {issue}" for issue in self.issues))


class CloudError(PanelfastError):
    """A cloud call failed (cloud protocol §1).

    ``diagnostic`` is the Connection diagnostic this outcome shows (§4), or
    ``None`` when the outcome says nothing about the connection (the hub
    answered, so the link and the credentials are fine). ``hint`` tells the
    user what to check, e.g. which host and port could not be reached.
    ``status`` and ``code`` are the HTTP status and the ``error`` code of the
    cloud's answer, when there was one.
    """

    diagnostic: str | None = None

    def __init__(
        self, message: str, *, hint: str = "", status: int | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.status = status
        self.code = code


class NetworkUnreachable(CloudError):
    """DNS failure, refused or reset connection, timeout, proxy refusal, 5xx after retries."""

    diagnostic = "Network unreachable"


class BadCredentials(CloudError):
    """The server certificate was not verified, or the cloud answered 401 bad_credentials."""

    diagnostic = "Bad credentials"


class TokenExpired(BadCredentials):
    """401 token_expired: the hub token must be renewed by bootstrapping again."""


class NotRegistered(CloudError):
    """403 device_not_registered: the cloud does not know this serial number."""

    diagnostic = "Device not registered"


class InvalidPayload(CloudError):
    """400 invalid_payload: the request is malformed; do not retry it unchanged."""


class NotFound(CloudError):
    """404 not_found: unknown upload, command or route."""


class Conflict(CloudError):
    """409 conflict; ``expected`` is the sequence number the cloud expects, if it said."""

    def __init__(
        self, message: str, *, expected: int | None = None, hint: str = "", status: int = 409
    ) -> None:
        super().__init__(message, hint=hint, status=status, code="conflict")
        self.expected = expected


class PayloadTooLarge(CloudError):
    """413 payload_too_large (or refused before sending): split it, or use the upload service."""


class RateLimited(CloudError):
    """429 rate_limited: nothing is sent to that host for ``retry_after`` seconds."""

    def __init__(
        self, message: str, *, retry_after: float, hint: str = "", status: int = 429
    ) -> None:
        super().__init__(message, hint=hint, status=status, code="rate_limited")
        self.retry_after = retry_after


class CloudProtocolError(CloudError):
    """The cloud answered something cloud protocol v1 does not allow (status or body)."""


class NotConnected(CloudError):
    """The user disconnected the gateway: no cloud traffic until Connect (§11)."""

    diagnostic = None


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


class RemoteControlNotConfirmed(PanelfastError):
    """Outputs remote control is enabled only once the user confirmed the risk it names."""

    def __init__(self, risk: str) -> None:
        self.risk = risk
        super().__init__(
            f"outputs remote control stays disabled: enabling it needs your explicit "
            f"confirmation of this: {risk}"
        )


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
