"""The alarm mailer: the service the gateway feeds with alarm events in email mode.

``enqueue(events, rules)`` stores them durably (returns once committed);
``run()`` sends them, in order, one email per event, retrying with the
gateway's backoff while the server cannot be reached; ``status()`` says how
many wait, how many went, and the last error with the server's answer.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence

from panelfast._backoff import Backoff
from panelfast._native import AlarmEvent
from panelfast.clock import Clock
from panelfast.config import EmailSettings, Settings
from panelfast.exceptions import ConfigError, ConfigIssue, MailError
from panelfast.mail._compose import MailEvent, compose_alarm, compose_test
from panelfast.mail._queue import MailQueue, QueuedMail
from panelfast.mail._smtp import Delivery, SmtpSession
from panelfast.outbox import SavedAlarm
from panelfast.publication import MailFailure, MailStatus
from panelfast.remote_config import AlarmRule

__all__ = ["AlarmMailer", "MailFailure", "MailStatus", "send_test_email"]

log = logging.getLogger(__name__)

#: Events read from the queue at a time (sent over one SMTP session).
BATCH = 50


def _settings(settings: Settings) -> EmailSettings:
    if settings.email is None:
        raise ConfigError(
            "(config)", [ConfigIssue("email", "email publication needs an [email] section")]
        )
    return settings.email


class AlarmMailer:
    """Emails alarm events: stored first, sent in order, never lost, never sent twice.

    Create it, run :meth:`run` as a task, feed it with :meth:`enqueue`; on
    shutdown cancel the task, then :meth:`close`.
    """

    def __init__(self, settings: Settings, clock: Clock, *, backoff: Backoff | None = None) -> None:
        self.email = _settings(settings)
        self._gateway = (settings.identity.name, settings.identity.serial)
        self._device_names = {d.id: d.name for d in settings.devices}
        self._clock = clock
        # A password file others can read is refused now, not at the first alarm.
        self.email.password()
        self._backoff = backoff or Backoff()
        self._queue = MailQueue(settings.storage.dir / "mail.sqlite")
        self._wake = asyncio.Event()
        self._wake.set()  # what a previous run left queued goes first
        # Held by a session in progress: close() waits for it.
        self._sending = threading.Lock()
        # Taken by status() and close(): a status asked for (from any thread) as the
        # mailer closes is the one it was left in, not a read of a closed queue.
        self._open = threading.Lock()
        self._final: MailStatus | None = None
        self._closed = False
        self._failing = False
        self._last_error: MailFailure | None = None
        self._last_sent_ms: int | None = None

    async def enqueue(
        self,
        events: Sequence[AlarmEvent],
        rules: Sequence[AlarmRule],
        states: Sequence[SavedAlarm] | None = None,
    ) -> None:
        """Store ``events`` (``rules[event.index]`` is each one's alarm) and the alarms'
        ``states`` they led to, in one transaction; durable on return."""
        name, serial = self._gateway
        items = [
            MailEvent.of(
                e,
                rules[e.index],
                gateway_name=name,
                serial=serial,
                device_name=self._device_names.get(rules[e.index].device, ""),
            )
            for e in events
        ]
        if items or states is not None:
            await asyncio.to_thread(self._queue.add, items, self.email.queue_limit, states)
        if items:
            self._wake.set()

    def alarm_states(self) -> dict[str, SavedAlarm]:
        """The email alarms' states stored last (with their events), by alarm id."""
        return self._queue.alarm_states()

    async def run(self) -> None:
        """Send what is queued, now and whenever more comes; retry with backoff on failure."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await asyncio.to_thread(self._deliver)
            except MailError as exc:
                delay = self._backoff.failed()
                log.warning("alarm emails wait (%s); next try in %.0f s", exc, delay)
            except Exception as exc:
                # A bug must not stop alarm emails for good: they stay queued,
                # the failure is shown, and sending is tried again.
                delay = self._backoff.failed()
                log.exception("alarm emails wait (unexpected error); next try in %.0f s", delay)
                self._failed(MailError("internal", f"{type(exc).__name__}: {exc}"))
            else:
                self._backoff.succeeded()
                continue
            await asyncio.sleep(delay)
            self._wake.set()

    def status(self) -> MailStatus:
        with self._open:
            if self._final is not None:
                return self._final
            counts = self._queue.counts()
        return MailStatus(
            queued=counts.queued,
            sent=counts.sent,
            dropped=counts.dropped,
            failing=self._failing,
            last_error=self._last_error,
            last_sent_ms=self._last_sent_ms,
        )

    async def close(self) -> MailStatus:
        """Close the queue, after the email being sent (if any) is done; returns the
        status it was left in (what still waits for the next mailer on this queue)."""
        self._closed = True
        return await asyncio.to_thread(self._close_when_idle)

    def _close_when_idle(self) -> MailStatus:
        with self._sending:
            final = self.status()
            with self._open:
                self._final = final
                self._queue.close()
        return final

    # --- in a worker thread -------------------------------------------------

    def _deliver(self) -> None:
        """Send everything queued over one session; raises MailError when one fails."""
        with self._sending:
            if self._closed:
                return
            batch = self._queue.pending(BATCH)
            if not batch:
                return
            head = batch[0].seq  # the email being sent when a failure comes
            try:
                with self._session() as session:
                    while batch and not self._closed:
                        for item in batch:
                            if self._closed:
                                return
                            head = item.seq
                            self._send(session, item)
                        batch = self._queue.pending(BATCH)
            except MailError as exc:
                self._queue.attempted(head)
                self._failed(exc)
                raise

    def _session(self) -> SmtpSession:
        try:
            password = self.email.password()
        except ConfigError as exc:
            raise MailError("login", str(exc), transient=False) from None
        return SmtpSession(self.email, password)

    def _send(self, session: SmtpSession, item: QueuedMail) -> None:
        message = compose_alarm(
            item.event,
            sender=self.email.from_address,
            recipients=self.email.recipients,
            dropped_before=item.dropped_before,
            queue_limit=self.email.queue_limit,
        )
        delivery = session.send(message)
        # Marked at once: a crash from here on cannot send it again.
        now_ms = self._clock.now_ms()
        self._queue.sent(item.seq, now_ms)
        self._last_sent_ms = now_ms
        self._failing = False
        log.info(
            "alarm email %s sent to %d recipient(s): %s",
            item.event.message_id,
            len(delivery.recipients) - len(delivery.refused),
            delivery.answer,
        )
        if delivery.refused:
            self._refused(delivery)

    def _refused(self, delivery: Delivery) -> None:
        listed = "; ".join(f"{address}: {answer}" for address, answer in delivery.refused)
        _, answer = delivery.refused[0]
        self._last_error = MailFailure(
            "rcpt to",
            f"the server refused {len(delivery.refused)} recipient(s), sent to the others: "
            f"{listed}",
            answer.code,
            answer.text,
            self._clock.now_ms(),
        )
        log.warning("alarm email not sent to %s", listed)

    def _failed(self, exc: MailError) -> None:
        self._failing = True
        self._last_error = MailFailure(
            exc.stage, str(exc), exc.code, exc.text, self._clock.now_ms()
        )


def send_test_email(settings: Settings, clock: Clock) -> Delivery:
    """Send the test email to every recipient now; returns the server's answer.

    Raises :class:`~panelfast.exceptions.MailError` with the step that failed
    and the server's exact answer, or :class:`~panelfast.exceptions.ConfigError`
    for a missing [email] section or a password file others can read. Works
    whatever the publication method, so the mail setup can be checked first.
    """
    email = _settings(settings)
    password = email.password()
    message = compose_test(
        gateway_name=settings.identity.name,
        serial=settings.identity.serial,
        sender=email.from_address,
        recipients=email.recipients,
        now_ms=clock.now_ms(),
    )
    with SmtpSession(email, password) as session:
        return session.send(message)
