"""The publication method — cloud, email (alarms) or none — and the rule that keeps
cloud services and email publication of alarms apart.

The seed: "Schneider Electric cloud services and service of publication of
emails for alarms are mutually exclusive, that is, both features cannot be
enabled concurrently." The rule, applied by the gateway, the control API,
the CLI (with or without a running daemon) and the configuration file alike:

* ``publication.method`` says what the gateway publishes: ``cloud`` (the
  remote configuration's data and alarms, to the cloud once connected),
  ``email`` (the alarms of ``[[email.alarms]]``, by email) or ``none``
  (nothing; alarm events are only logged).
* **Cloud services are on** while the user's Connect holds (it is kept
  across restarts, whether or not the cloud answers right now). Connect is
  possible only with method ``cloud``; with ``email`` or ``none`` it is
  refused: "cloud services are off: the publication method is email; set it
  to cloud first".
* **Leaving cloud while cloud services are on is refused: Disconnect first.**
  The gateway does not disconnect by itself: Disconnect tells the cloud and
  stops every exchange with it, data included, and is the user's own
  decision, as on a Panel Server where the cloud has its own switch. A
  refused switch changes nothing; a disconnection nobody asked for would
  silently cut the cloud's data.
* Every other switch is direct: cloud (disconnected) to email or none, email
  to cloud or none, none to either. Leaving email stops the alarm emails at
  once (what is still queued waits in ``mail.sqlite``, shown in the status,
  and goes first if email is enabled again); cloud services come on only at
  Connect. Setting the method it already has changes nothing.

So enabling one while the other is on is refused both ways, saying what to
turn off first: email publication while connected (Disconnect first), Connect
while email publication is on (set the method to cloud first, which turns
email off). Every switch is explicit — a command, an API call, or the file
edited by hand — and the control API records each in its audit log. A
gateway started with method ``email`` or ``none`` while an earlier Connect
holds (the file was edited by hand) disconnects at start and logs why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, cast, get_args

from panelfast.config import EmailSettings, PublicationMethod
from panelfast.exceptions import ConfigError, ConfigIssue, PublicationConflict
from panelfast.remote_config import AlarmRule

if TYPE_CHECKING:
    from panelfast.cloud import CloudSession

__all__ = [
    "EmailSetup",
    "MailFailure",
    "MailStatus",
    "PublicationChange",
    "PublicationStatus",
    "change_publication_method",
    "end_cloud_services_unless_cloud",
    "ensure_cloud_services_allowed",
]

log = logging.getLogger(__name__)

_METHODS: tuple[str, ...] = get_args(PublicationMethod)


@dataclass(frozen=True, slots=True)
class PublicationChange:
    """A switch of the publication method, as the audit log records it."""

    previous: PublicationMethod
    method: PublicationMethod

    @property
    def changed(self) -> bool:
        return self.previous != self.method

    def audit_text(self) -> str:
        if not self.changed:
            return f"publication method unchanged ({self.method})"
        return f"publication method changed from {self.previous} to {self.method}"


def change_publication_method(
    current: PublicationMethod, new: object, *, cloud_on: bool
) -> PublicationChange:
    """Check switching from ``current`` to ``new``; returns the change to record.

    ``cloud_on``: the user's Connect holds. Raises
    :class:`~panelfast.exceptions.PublicationConflict` when leaving cloud
    while it does (Disconnect first), and
    :class:`~panelfast.exceptions.ConfigError` for a value that is not a method.
    """
    if new not in _METHODS:
        allowed = ", ".join(repr(m) for m in _METHODS)
        raise ConfigError(
            "(local setting)",
            [ConfigIssue("publication.method", f"must be one of {allowed}, got {new!r}")],
        )
    requested = cast(PublicationMethod, new)
    if cloud_on and requested != "cloud":
        if requested == "email":
            message = (
                "cannot enable email publication of alarms: cloud services are on (connected), "
                "and the two are mutually exclusive; Disconnect first, then set the "
                "publication method to email"
            )
        else:
            message = (
                "cannot set the publication method to none: cloud services are on (connected) "
                "and would go on publishing; Disconnect first, then set it"
            )
        raise PublicationConflict(
            message, turn_off="cloud services", hint="run: panelfast disconnect"
        )
    return PublicationChange(current, requested)


async def end_cloud_services_unless_cloud(method: PublicationMethod, session: CloudSession) -> None:
    """At start: a Connect that holds while the method is not cloud (the file was
    edited by hand while connected) is ended, since the two never run together."""
    if method == "cloud" or not session.connect_requested:
        return
    log.warning(
        "cloud services stay off: the publication method is %s; disconnecting",
        method,
        extra={"event": "publication.cloud_off", "method": method},
    )
    await session.disconnect()


def ensure_cloud_services_allowed(method: PublicationMethod) -> None:
    """Refuse Connect unless the publication method is cloud."""
    if method == "cloud":
        return
    if method == "email":
        message = (
            "cloud services are off: the publication method is email; set it to cloud first "
            "(that turns email publication of alarms off: the two are mutually exclusive), "
            "then Connect"
        )
        turn_off = "email publication"
    else:
        message = "cloud services are off: the publication method is none; set it to cloud first"
        turn_off = "publication method none"
    raise PublicationConflict(
        message, turn_off=turn_off, hint="run: panelfast publication method cloud"
    )


@dataclass(frozen=True, slots=True)
class MailFailure:
    """Why the last email was not sent (or not to everyone): the step and the server's answer."""

    stage: str
    message: str
    #: The SMTP server's reply, when it gave one.
    code: int | None
    text: str | None
    at_ms: int


@dataclass(frozen=True, slots=True)
class MailStatus:
    """What the user sees of the alarm emails."""

    queued: int
    sent: int
    #: Events dropped at the queue's bound (``email.queue_limit``), ever.
    dropped: int
    #: The last attempt failed: the queued emails wait, retried with backoff.
    failing: bool
    last_error: MailFailure | None
    last_sent_ms: int | None


@dataclass(frozen=True, slots=True)
class PublicationStatus:
    """The publication method in force, and how its publication goes."""

    method: PublicationMethod
    #: The user's Connect holds (only ever with method cloud).
    cloud_services: bool
    #: The alarm emails: live in email mode; otherwise what the queue was left
    #: with (emails still queued wait for email to be enabled again); None if
    #: email publication was never used.
    email: MailStatus | None


@dataclass(frozen=True, slots=True)
class EmailSetup:
    """The ``[email]`` section as shown to the user: no secret (nor the password file)."""

    host: str
    port: int
    security: Literal["starttls", "tls"]
    #: SMTP AUTH user; None: the server is used without authenticating.
    username: str | None
    from_address: str
    recipients: tuple[str, ...]
    queue_limit: int
    alarms: tuple[AlarmRule, ...]

    @classmethod
    def of(cls, email: EmailSettings) -> EmailSetup:
        return cls(
            email.host,
            email.smtp_port,
            email.security,
            email.username,
            email.from_address,
            email.recipients,
            email.queue_limit,
            email.alarms,
        )
