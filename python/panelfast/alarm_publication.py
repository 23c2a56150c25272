"""Which alarms the gateway watches, and where their events go, by the publication method.

* ``cloud``: the remote configuration's alarms; each event to the outbox,
  published to the cloud once connected (as the data).
* ``email``: the alarms of the local configuration (``[[email.alarms]]``),
  checked against the devices' models, evaluated by the same Rust alarm
  engine; each event to the :class:`~panelfast.mail.AlarmMailer`, which
  stores it durably before emailing it (in order, retried, never twice).
* ``none``: the remote configuration's alarms are still watched and their
  events logged (by the :class:`~panelfast.alarms.AlarmWatch`), published nowhere.

The alarms' states go where their events go, in the same transaction: the
remote configuration's into the outbox, the email alarms' into the mail
queue, so that after a restart (or a switch back) each set goes on from the
states it was left in, and an active alarm is not announced again.

The :class:`~panelfast.alarms.AlarmWatch` evaluates one alarm set at a time;
this object chooses which, and switches it together with the events'
destination in one step on the event loop. :meth:`AlarmPublication.record`
reads, as it is called, what the watch just evaluated (nothing is awaited
between the evaluation and that call), so an event always goes where the set
it came from belongs, whenever the method changes. The mailer runs (and
retries) under the gateway's supervisor only in email mode; leaving email
stops it, after the events already handed over are stored.

See :mod:`panelfast.publication` for which switches are allowed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from panelfast._native import AlarmEvent, AlarmSet
from panelfast._supervisor import Supervisor
from panelfast.alarms import SavedAlarm, carry_states, restore_states
from panelfast.clock import Clock
from panelfast.config import EmailSettings, PublicationMethod, Settings
from panelfast.exceptions import ConfigError, ConfigIssue
from panelfast.local_settings import change_setting
from panelfast.publication import (
    MailStatus,
    PublicationChange,
    PublicationStatus,
    change_publication_method,
)
from panelfast.remote_config import AlarmRule, RemoteConfig
from panelfast.sampling import PointLookup, alarm_set

if TYPE_CHECKING:
    from panelfast.alarms import AlarmWatch
    from panelfast.mail import AlarmMailer, Delivery

#: Keeps the remote configuration's alarms' states, with the transitions to publish.
ToOutbox = Callable[[Sequence[AlarmEvent], Sequence[SavedAlarm]], Awaitable[None]]

__all__ = ["AlarmPublication", "LocalAlarms", "Switch", "leftover_mail"]

log = logging.getLogger(__name__)

#: The mailer's loop, as the supervisor names it.
MAIL_LOOP = "alarm emails"


@dataclass(frozen=True, slots=True)
class LocalAlarms:
    """The alarms of the local configuration (``[[email.alarms]]``), as an alarm set
    is built from (:class:`~panelfast.sampling.AlarmRules`, like a remote configuration)."""

    alarms: tuple[AlarmRule, ...]
    version: str = "local"


@dataclass(frozen=True, slots=True)
class _Email:
    """What email mode puts in force: its alarm set and its mailer (queue open)."""

    rules: LocalAlarms
    alarms: AlarmSet
    mailer: AlarmMailer


@dataclass(frozen=True, slots=True)
class Switch:
    """A switch of the publication method made ready (:meth:`AlarmPublication.prepare`)."""

    settings: Settings
    #: Email mode's alarm set and open mailer, when switching to email.
    email: _Email | None


def _email_settings(settings: Settings) -> EmailSettings:
    if settings.email is None:
        raise ConfigError(
            "(config)",
            [ConfigIssue("publication.method", "email publication needs an [email] section")],
        )
    return settings.email


class AlarmPublication:
    """The alarm set watched and its events' destination, switched with the method."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        watch: AlarmWatch,
        *,
        lookup: PointLookup,
        known: AbstractSet[tuple[str, str]],
        to_outbox: ToOutbox,
    ) -> None:
        self._clock = clock
        self._watch = watch
        self._lookup = lookup
        self._known = known
        self._to_outbox = to_outbox
        self.method: PublicationMethod = settings.publication.method
        # The remote configuration's alarm set in force, watched unless in email mode.
        self._remote: tuple[AlarmSet, RemoteConfig] | None = None
        if watch.alarms is not None and isinstance(watch.config, RemoteConfig):
            self._remote = (watch.alarms, watch.config)
        self._email: _Email | None = None
        # The alarms of email mode, checked now: a mistake stops the start, named by its path.
        self._pending_email = self.check(settings) if self.method == "email" else None
        self._settings = settings
        # What the mail queue was left with while email publication is off.
        self._left = leftover_mail(settings) if self._pending_email is None else None
        self._supervisor: Supervisor | None = None
        # Held while events are handed over: a switch waits for the one in progress.
        self._delivering = asyncio.Lock()
        self._switching = asyncio.Lock()

    # -- the alarm watch's side ---------------------------------------------

    @property
    def remote_alarms(self) -> AlarmSet | None:
        """The remote configuration's alarm set (a new one carries its states over)."""
        return self._remote[0] if self._remote is not None else None

    @property
    def remote(self) -> tuple[AlarmSet, RemoteConfig] | None:
        """The remote configuration's alarm set in force and its configuration."""
        return self._remote

    def reindex(self) -> None:
        """The device set changed (a live reload): the email alarms read their
        measurements at the new snapshot indices, keeping their states."""
        email = self._email
        if email is None:
            return
        alarms = alarm_set(email.rules, self._lookup)
        carry_states(email.alarms, email.rules, alarms, email.rules)
        self._email = replace(email, alarms=alarms)
        self._watch.replace(alarms, email.rules)

    def remote_live(self, alarms: AlarmSet, config: RemoteConfig) -> None:
        """A remote configuration went live: its alarms are watched, unless in email mode."""
        self._remote = (alarms, config)
        if self._email is None and self._pending_email is None:
            self._watch.replace(alarms, config)

    async def record(self, events: Sequence[AlarmEvent], states: Sequence[SavedAlarm]) -> None:
        """Keep the states of the set the watch just evaluated, and hand its ``events``
        to their destination, together."""
        source = self._watch.config  # what produced them: nothing awaited since
        email = self._email if self._email is not None and source is self._email.rules else None
        method = self.method
        async with self._delivering:
            if email is not None:
                await email.mailer.enqueue(events, email.rules.alarms, states)
            elif isinstance(source, RemoteConfig):
                # none: the watch logged the events; only the states are kept.
                await self._to_outbox(events if method == "cloud" else (), states)

    # -- lifecycle ------------------------------------------------------------

    async def start(self, supervisor: Supervisor) -> None:
        """Open the mailer in email mode (before the watch's first look)."""
        self._supervisor = supervisor
        if self._pending_email is not None:
            opened = await self._open(self._pending_email, self._settings)
            self._pending_email = None
            self._put_in_force(opened)

    async def close(self) -> None:
        """Stop sending, once the supervisor stopped the loops; queued emails stay queued."""
        async with self._switching:
            leaving, self._email = self._email, None
            if leaving is not None:
                await self._stop(leaving)

    # -- switching ------------------------------------------------------------

    def check(self, settings: Settings) -> tuple[LocalAlarms, AlarmSet]:
        """What email mode would watch, checked: each alarm's measurement exists in its
        device's model, and the password file is readable by its owner only."""
        email = _email_settings(settings)
        email.check_measurements(self._known)
        email.password()  # a file others can read is refused now, not at the first alarm
        rules = LocalAlarms(email.alarms)
        if not rules.alarms:
            log.warning("email publication of alarms is on, but [[email.alarms]] lists none")
        return rules, alarm_set(rules, self._lookup)

    async def prepare(self, settings: Settings) -> Switch:
        """Everything switching to ``settings.publication.method`` needs, made ready
        before the switch is stored: for email, the alarms checked and the mailer's
        queue open (a failure changes nothing). :meth:`switch` puts it in force;
        :meth:`abandon` drops it."""
        method = settings.publication.method
        wanted = method == "email" and self.method != "email"
        opened = await self._open(self.check(settings), settings) if wanted else None
        return Switch(settings, opened)

    async def prepare_change(
        self,
        settings: Settings,
        method: object,
        *,
        applied_version: str | None,
        cloud_on: bool,
        store: Callable[[PublicationMethod], object] | None = None,
    ) -> tuple[PublicationChange, Switch]:
        """The user's switch from ``settings`` to ``method``, checked whole and made
        ready (:meth:`prepare`), then kept by ``store`` (in a worker thread; its
        failure drops what was made ready, and is raised). :meth:`switch` puts it in
        force: until then the running settings stay as they are.

        The rule (:class:`~panelfast.exceptions.PublicationConflict`, see
        :mod:`panelfast.publication`) and the value are judged first, then the
        settings as ``panelfast set`` judges them (``applied_version``: the
        remote configuration in force, if any).
        """
        change = change_publication_method(settings.publication.method, method, cloud_on=cloud_on)
        changed = change_setting(
            settings,
            "publication.method",
            change.method,
            applied_version=applied_version,
            cloud_on=cloud_on,
        )
        prepared = await self.prepare(changed)
        if store is not None:
            try:
                await asyncio.to_thread(store, change.method)
            except BaseException:
                await self.abandon(prepared)
                raise
        return change, prepared

    async def abandon(self, prepared: Switch) -> None:
        if prepared.email is not None:
            await prepared.email.mailer.close()

    async def switch(self, prepared: Switch) -> None:
        """Put the prepared method in force (checked and stored already): the alarm
        set watched, the events' destination, the mailer started or stopped."""
        async with self._switching:
            settings, opened = prepared.settings, prepared.email
            method = settings.publication.method
            if method == self.method:
                self._settings = settings
                return
            # One step on the event loop: the method, the set watched, the destination.
            leaving, self._email = self._email, None
            self.method, self._settings = method, settings
            if opened is not None:
                self._put_in_force(opened)
            elif self._remote is not None:
                self._watch.replace(*self._remote)
            else:
                self._watch.replace(AlarmSet([]), LocalAlarms((), version="none"))
            if leaving is not None:
                await self._stop(leaving)
            where = {"cloud": "to the cloud", "email": "by email", "none": "none (logged only)"}
            log.info(
                "alarm publication: %s",
                where[method],
                extra={"event": "publication.switched", "method": method},
            )

    async def _open(self, checked: tuple[LocalAlarms, AlarmSet], settings: Settings) -> _Email:
        from panelfast.mail import AlarmMailer  # smtplib and the email package: email mode only

        rules, alarms = checked
        mailer = await asyncio.to_thread(AlarmMailer, settings, self._clock)
        restored = restore_states(alarms, rules, await asyncio.to_thread(mailer.alarm_states))
        if restored:
            log.info(
                "email alarm states restored: %s",
                ", ".join(f"{a.id} {'active' if a.active else 'pending'}" for a in restored),
            )
        return _Email(rules, alarms, mailer)

    def _put_in_force(self, email: _Email) -> None:
        assert self._supervisor is not None, "start() first"
        self._email = email
        self._watch.replace(email.alarms, email.rules)
        self._supervisor.start(MAIL_LOOP, email.mailer.run)

    async def _stop(self, email: _Email) -> None:
        """Stop the mailer left behind, once the events being handed over are stored."""
        async with self._delivering:
            pass
        if self._supervisor is not None:
            await self._supervisor.cancel(MAIL_LOOP)
        self._left = await email.mailer.close()
        if self._left.queued:
            log.warning(
                "email publication off with %d alarm email(s) queued: they wait for email "
                "publication to be enabled again",
                self._left.queued,
            )

    # -- what the user sees ---------------------------------------------------

    def status(self, *, cloud_on: bool) -> PublicationStatus:
        email = self._email.mailer.status() if self._email is not None else self._left
        return PublicationStatus(self.method, cloud_on, email)

    async def send_test_email(self) -> Delivery:
        """The test email to every recipient, now (works whatever the method)."""
        from panelfast.mail import send_test_email

        return await asyncio.to_thread(send_test_email, self._settings, self._clock)


def leftover_mail(settings: Settings) -> MailStatus | None:
    """What the alarm mail queue holds while no mailer runs; None if never used."""
    path = settings.storage.dir / "mail.sqlite"
    if not path.exists():
        return None
    from panelfast.mail import MailQueue

    queue = MailQueue(path)
    try:
        counts = queue.counts()
    finally:
        queue.close()
    return MailStatus(counts.queued, counts.sent, counts.dropped, False, None, None)
