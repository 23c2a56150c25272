"""Email publication of alarms against a real SMTP server on loopback (aiosmtpd):
STARTTLS and implicit TLS with a test CA, AUTH, events from the real alarm engine."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from mail_support import (
    PASSWORD,
    RECIPIENTS,
    SENDER,
    Mailbox,
    SmtpCA,
    SmtpServer,
    alarm,
    flapping_readings,
    free_port,
    write_config,
    write_password,
)
from panelfast._backoff import Backoff
from panelfast._native import AlarmEvent, AlarmSet
from panelfast.clock import Clock
from panelfast.config import Settings, load_settings
from panelfast.mail import AlarmMailer, MailEvent, compose_alarm
from panelfast.remote_config import AlarmRule


@pytest.fixture
def ca(tmp_path: Path) -> SmtpCA:
    return SmtpCA(tmp_path)


def engine(rules: Sequence[AlarmRule]) -> AlarmSet:
    """The Rust alarm engine watching ``rules``, rule ``i`` reading input ``i``."""
    return AlarmSet(
        [
            (r.id, i, r.condition, r.threshold, r.hysteresis, r.delay_s * 1000)
            for i, r in enumerate(rules)
        ]
    )


def evaluate(alarms: AlarmSet, readings: Sequence[tuple[float, int]]) -> list[AlarmEvent]:
    """Feed one input's readings to the engine; every transition it reports."""
    events: list[AlarmEvent] = []
    for value, read_ms in readings:
        events += alarms.evaluate(
            np.array([value]), np.array([True]), np.array([read_ms], dtype=np.int64)
        )
    return events


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[AlarmMailer]:
    # Short pauses between retries: the tests bring the server back within seconds.
    mailer = AlarmMailer(settings, Clock(), backoff=Backoff(initial_s=0.05, max_s=0.5))
    task = asyncio.create_task(mailer.run())
    try:
        yield mailer
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await mailer.close()


async def until(condition: object, what: str, within_s: float = 60.0) -> None:
    assert callable(condition)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {within_s} s waiting for {what}")
        await asyncio.sleep(0.05)


def alarm_config(tmp_path: Path, server: SmtpServer, **extra: object) -> Settings:
    security = "tls" if server.security == "tls" else "starttls"
    path = write_config(
        tmp_path,
        port=server.port,
        security=security,
        ca_bundle=server.ca.ca_pem,
        alarms=[alarm("hot", threshold=250.0)],
        **extra,  # type: ignore[arg-type]
    )
    return load_settings(path)


@pytest.mark.parametrize("security", ["starttls", "tls"])
async def test_an_alarm_reaches_every_recipient_once_with_what_happened(
    tmp_path: Path, ca: SmtpCA, security: str
) -> None:
    mailbox = Mailbox()
    with SmtpServer(ca, mailbox, security) as server:  # type: ignore[arg-type]
        settings = alarm_config(tmp_path, server)
        assert settings.email is not None
        rules = settings.email.alarms
        events = evaluate(engine(rules), [(251.5, 1_767_225_600_250), (240.0, 1_767_225_660_000)])
        assert [e.active for e in events] == [True, False]
        async with running(settings) as mailer:
            await mailer.enqueue(events, rules)
            await until(lambda: len(mailbox.messages()) == 2, "both emails")
            await until(lambda: mailer.status().queued == 0, "the queue emptied")
            status = mailer.status()
            assert (status.sent, status.queued, status.dropped) == (2, 0, 0)
            assert not status.failing
            assert status.last_error is None

    raised, cleared = mailbox.messages()
    for received in (raised, cleared):
        assert sorted(received.recipients) == sorted(RECIPIENTS)
        assert received.message["From"] == SENDER
        assert received.message["Auto-Submitted"] == "auto-generated"
        assert received.message.get_content_type() == "multipart/alternative"
    subject = str(raised.message["Subject"])
    for fact in ("ALARM", "high", "mb-1", "VoltageAN", "251.5", "over 250", "PS-0042-7A19"):
        assert fact in subject
    assert "Alarm cleared" in str(cleared.message["Subject"])
    plain = raised.message.get_body(("plain",))
    rich = raised.message.get_body(("html",))
    assert plain is not None
    assert rich is not None
    text, page = plain.get_content(), rich.get_content()
    for fact in (
        "Plant 3 Panel Server (serial PS-0042-7A19)",
        "Main incomer (mb-1)",
        "VoltageAN",
        "over 250 (hysteresis 0, delay 0 s)",
        "251.5",
        "active",
        "2026-01-01 00:00:00.250 UTC",
    ):
        assert fact in text
        assert fact in page
    assert "<table>" in page
    assert "inactive (cleared)" in cleared.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    # The Message-ID names the event: the same on any attempt.
    expected = MailEvent.of(
        events[0], rules[0], gateway_name="Plant 3 Panel Server", serial="PS-0042-7A19"
    ).message_id
    assert raised.message_id == expected
    assert raised.message_id != cleared.message_id
    assert str(raised.message["Date"]) == "Thu, 01 Jan 2026 00:00:00 +0000"


async def test_events_wait_for_a_server_that_is_down_then_go_in_order_once(
    tmp_path: Path, ca: SmtpCA
) -> None:
    mailbox = Mailbox()
    server = SmtpServer(ca, mailbox, port=free_port())  # not started: down
    settings = alarm_config(tmp_path, server)
    assert settings.email is not None
    rules = settings.email.alarms
    events = evaluate(engine(rules), flapping_readings(8, 1_767_225_600_000))
    assert len(events) == 8
    try:
        async with running(settings) as mailer:
            for event in events:  # they keep coming while the server is down
                await mailer.enqueue([event], rules)
            await until(lambda: mailer.status().failing, "the failure shown")
            status = mailer.status()
            assert status.queued == 8
            assert status.last_error is not None
            assert status.last_error.stage == "connect"
            assert f"127.0.0.1:{server.port}" in status.last_error.message
            server.start()
            await until(lambda: mailer.status().queued == 0, "the backlog sent")
            assert not mailer.status().failing
            assert mailer.status().sent == 8
    finally:
        server.stop()  # after the mailer closed its session
    received = mailbox.messages()
    assert [r.message["X-Panelfast-Alarm"] for r in received] == ["hot"] * 8
    expected = [
        MailEvent.of(e, rules[0], gateway_name="Plant 3 Panel Server", serial="PS-0042-7A19")
        for e in events
    ]
    assert [r.message_id for r in received] == [e.message_id for e in expected]


async def test_a_wrong_password_shows_the_servers_answer_and_loses_nothing(
    tmp_path: Path, ca: SmtpCA
) -> None:
    mailbox = Mailbox()
    with SmtpServer(ca, mailbox) as server:
        password = write_password(tmp_path / "smtp-password", "not the password")
        settings = alarm_config(tmp_path, server, password_file=password)
        assert settings.email is not None
        rules = settings.email.alarms
        events = evaluate(engine(rules), flapping_readings(2, 1_767_225_600_000))
        async with running(settings) as mailer:
            await mailer.enqueue(events, rules)
            await until(lambda: mailer.status().failing, "the login refused")
            error = mailer.status().last_error
            assert error is not None
            assert (error.stage, error.code) == ("login", 535)
            assert error.text == "5.7.8 Authentication credentials invalid"
            assert "535 5.7.8 Authentication credentials invalid" in error.message
            assert "not the password" not in error.message
            assert mailer.status().queued == 2
            # Fixed (the file is read at each session): the waiting emails go.
            write_password(tmp_path / "smtp-password", PASSWORD)
            await until(lambda: mailer.status().queued == 0, "sent after the fix")
    assert len(mailbox.messages()) == 2


async def test_a_server_without_starttls_is_refused_never_sent_in_the_clear(
    tmp_path: Path, ca: SmtpCA
) -> None:
    mailbox = Mailbox()
    with SmtpServer(ca, mailbox, "plain") as server:
        settings = alarm_config(tmp_path, server)
        assert settings.email is not None
        events = evaluate(engine(settings.email.alarms), flapping_readings(1, 1_767_225_600_000))
        async with running(settings) as mailer:
            await mailer.enqueue(events, settings.email.alarms)
            await until(lambda: mailer.status().failing, "the refusal")
            error = mailer.status().last_error
            assert error is not None
            assert error.stage == "starttls"
            assert "does not offer STARTTLS" in error.message
            assert mailer.status().queued == 1
    assert mailbox.messages() == []


async def test_an_unverified_certificate_is_refused(tmp_path: Path, ca: SmtpCA) -> None:
    mailbox = Mailbox()
    with SmtpServer(ca, mailbox) as server:
        other = SmtpCA(tmp_path / "other")  # a CA that did not sign the server's certificate
        settings = alarm_config(tmp_path, server, email={"ca_bundle": str(other.ca_pem)})
        assert settings.email is not None
        events = evaluate(engine(settings.email.alarms), flapping_readings(1, 1_767_225_600_000))
        async with running(settings) as mailer:
            await mailer.enqueue(events, settings.email.alarms)
            await until(lambda: mailer.status().failing, "the refusal")
            error = mailer.status().last_error
            assert error is not None
            assert "was not verified" in error.message
    assert mailbox.messages() == []


async def test_the_queue_bound_drops_the_oldest_counted_and_said(
    tmp_path: Path, ca: SmtpCA
) -> None:
    mailbox = Mailbox()
    server = SmtpServer(ca, mailbox, port=free_port())
    settings = alarm_config(tmp_path, server, email={"queue_limit": 10})
    assert settings.email is not None
    rules = settings.email.alarms
    events = evaluate(engine(rules), flapping_readings(15, 1_767_225_600_000))
    try:
        async with running(settings) as mailer:
            await mailer.enqueue(events, rules)
            status = mailer.status()
            assert (status.queued, status.dropped) == (10, 5)
            server.start()
            await until(lambda: mailer.status().queued == 0, "the backlog sent")
            assert mailer.status().dropped == 5
    finally:
        server.stop()
    received = mailbox.messages()
    assert len(received) == 10
    first = received[0].message.get_body(("plain",))
    assert first is not None
    assert "5 earlier alarm event(s) were dropped" in first.get_content()
    assert "at most 10 events" in first.get_content()
    # The ten newest, in order.
    expected = [
        MailEvent.of(e, rules[0], gateway_name="Plant 3 Panel Server", serial="PS-0042-7A19")
        for e in events[5:]
    ]
    assert [r.message_id for r in received] == [e.message_id for e in expected]


async def test_a_refused_recipient_is_shown_and_the_others_are_not_sent_it_twice(
    tmp_path: Path, ca: SmtpCA
) -> None:
    mailbox = Mailbox()
    mailbox.refuse_recipients = {RECIPIENTS[1]}
    with SmtpServer(ca, mailbox) as server:
        settings = alarm_config(tmp_path, server)
        assert settings.email is not None
        rules = settings.email.alarms
        first, second = evaluate(engine(rules), flapping_readings(2, 1_767_225_600_000))
        async with running(settings) as mailer:
            await mailer.enqueue([first], rules)
            await until(lambda: mailer.status().sent == 1, "sent to the others")
            error = mailer.status().last_error
            assert error is not None
            assert (error.stage, error.code) == ("rcpt to", 550)
            assert RECIPIENTS[1] in error.message
            assert "550 5.1.1 no such mailbox here" in error.message
            assert not mailer.status().failing
            # The same event handed over again is recognised, not sent again.
            await mailer.enqueue([first, second], rules)
            await until(lambda: mailer.status().sent == 2, "the next one")
            await until(lambda: mailer.status().queued == 0, "the queue emptied")
    received = mailbox.messages()
    assert len(received) == 2
    assert sorted(received[0].recipients) == sorted([RECIPIENTS[0], RECIPIENTS[2]])


def test_a_line_break_in_a_name_cannot_add_a_header() -> None:
    event = MailEvent(
        gateway_name="Plant 3\r\nBcc: someone@example.org",
        serial="PS-0042-7A19",
        alarm="hot",
        device="mb-1",
        device_name="Main\nincomer",
        measurement="VoltageAN",
        condition="over",
        threshold=250.0,
        hysteresis=0.0,
        delay_s=0,
        severity="high",
        active=True,
        value=251.0,
        ts_ms=1_767_225_600_000,
    )
    message = compose_alarm(event, sender=SENDER, recipients=RECIPIENTS)
    raw = message.as_bytes()
    assert b"\nBcc:" not in raw
    assert message["Bcc"] is None
    assert "Plant 3 Bcc: someone@example.org" in str(message["Subject"])
