"""An alarm event as it is queued, and the email that says it (plain text and HTML).

The event is frozen at enqueue time with everything the email says (gateway,
device, the alarm's rule), so that an email sent again after a restart says
exactly what the first attempt said, under the same Message-ID, even if the
configuration changed in between.
"""

from __future__ import annotations

import hashlib
import html
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

from panelfast._native import AlarmEvent
from panelfast.remote_config import AlarmCondition, AlarmRule, Severity

__all__ = ["MailEvent", "compose_alarm", "compose_test", "gateway_time"]


@dataclass(frozen=True, slots=True)
class MailEvent:
    """A transition of one alarm, with what its email says about it."""

    gateway_name: str
    serial: str
    alarm: str
    device: str
    device_name: str
    measurement: str
    condition: AlarmCondition
    threshold: float
    hysteresis: float
    delay_s: int
    severity: Severity
    active: bool
    value: float
    #: When the reading that completed the transition was taken (the gateway's clock).
    ts_ms: int

    @classmethod
    def of(
        cls,
        event: AlarmEvent,
        rule: AlarmRule,
        *,
        gateway_name: str,
        serial: str,
        device_name: str = "",
    ) -> MailEvent:
        return cls(
            gateway_name=gateway_name,
            serial=serial,
            alarm=rule.id,
            device=rule.device,
            device_name=device_name,
            measurement=rule.measurement,
            condition=rule.condition,
            threshold=rule.threshold,
            hysteresis=rule.hysteresis,
            delay_s=rule.delay_s,
            severity=rule.severity,
            active=event.active,
            value=event.value,
            ts_ms=event.ts_ms,
        )

    @property
    def message_id(self) -> str:
        """The same for every attempt at this event: a client can drop a duplicate by it.

        An alarm's transitions alternate, so (alarm, instant, state) names one
        event; the alarm id is hashed since ids may hold dots that a
        Message-ID may not place as they are.
        """
        digest = hashlib.sha256(self.alarm.encode("utf-8")).hexdigest()[:16]
        state = "on" if self.active else "off"
        return f"<alarm.{self.ts_ms}.{state}.{digest}@{self.serial}.panelfast>"

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> MailEvent:
        fields: dict[str, Any] = json.loads(text)
        return cls(**fields)


def gateway_time(ts_ms: int) -> str:
    """An instant of the gateway's clock as read in an email: UTC, to the millisecond."""
    at = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    return at.strftime("%Y-%m-%d %H:%M:%S.") + f"{ts_ms % 1000:03d} UTC"


def _line(text: str) -> str:
    """Names are free text: whatever they hold, each stays on its one line."""
    return " ".join(text.split())


def _number(value: float) -> str:
    return f"{value:.6g}"


def _rows(event: MailEvent) -> list[tuple[str, str]]:
    device = f"{event.device_name} ({event.device})" if event.device_name else event.device
    condition = (
        f"{event.condition} {_number(event.threshold)} "
        f"(hysteresis {_number(event.hysteresis)}, delay {event.delay_s} s)"
    )
    rows = [
        ("Gateway", f"{event.gateway_name} (serial {event.serial})"),
        ("Device", device),
        ("Measurement", event.measurement),
        ("Alarm", f"{event.alarm} (severity {event.severity})"),
        ("Condition", condition),
        ("Value", _number(event.value)),
        ("State", "active" if event.active else "inactive (cleared)"),
        ("Time", f"{gateway_time(event.ts_ms)} (the gateway's synchronised clock)"),
    ]
    return [(key, _line(value)) for key, value in rows]


def _subject(event: MailEvent) -> str:
    what = f"{event.device} {event.measurement} = {_number(event.value)}"
    if event.active:
        head = f"ALARM ({event.severity}): {what}, {event.condition} {_number(event.threshold)}"
    else:
        head = f"Alarm cleared: {what}, no longer {event.condition} {_number(event.threshold)}"
    return f"{head} [{event.gateway_name} {event.serial}]"


def _html(title: str, rows: list[tuple[str, str]], notes: list[str]) -> str:
    cells = "".join(
        f'<tr><th style="text-align:left;padding-right:1em">{html.escape(k)}</th>'
        f"<td>{html.escape(v)}</td></tr>"
        for k, v in rows
    )
    paragraphs = "".join(f"<p>{html.escape(note)}</p>" for note in notes)
    return (
        '<!DOCTYPE html><html><body style="font-family:sans-serif">'
        f"<h2>{html.escape(title)}</h2><table>{cells}</table>{paragraphs}</body></html>"
    )


def _plain(title: str, rows: list[tuple[str, str]], notes: list[str]) -> str:
    width = max(len(k) for k, _ in rows) + 2
    lines = [title, "", *(f"{k + ':':<{width}}{v}" for k, v in rows)]
    for note in notes:
        lines += ["", note]
    return "\n".join(lines) + "\n"


def _message(
    sender: str, recipients: tuple[str, ...], subject: str, plain: str, rich: str
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Subject"] = _line(subject)
    # RFC 3834: no out-of-office answers to an automatic message.
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(plain)
    message.add_alternative(rich, subtype="html")
    return message


def compose_alarm(
    event: MailEvent,
    *,
    sender: str,
    recipients: tuple[str, ...],
    dropped_before: int = 0,
    queue_limit: int = 0,
) -> EmailMessage:
    """The email of one alarm event (multipart/alternative: plain text and HTML).

    ``dropped_before`` events older than this one were dropped at the queue's
    bound (``queue_limit``); the email says so, since its reader would not
    otherwise know.
    """
    state = "ACTIVE" if event.active else "cleared"
    title = _line(f"Alarm {event.alarm} {state} on {event.gateway_name}")
    notes = []
    if dropped_before:
        notes.append(
            f"{dropped_before} earlier alarm event(s) were dropped before this one: the "
            f"gateway keeps at most {queue_limit} events while the mail server cannot be reached."
        )
    message = _message(
        sender,
        recipients,
        _subject(event),
        _plain(title, _rows(event), notes),
        _html(title, _rows(event), notes),
    )
    # The event's own instant, not the sending's: a retried email is the same email.
    message["Date"] = format_datetime(datetime.fromtimestamp(event.ts_ms / 1000, tz=UTC))
    message["Message-ID"] = event.message_id
    message["X-Panelfast-Alarm"] = event.alarm
    return message


def compose_test(
    *,
    gateway_name: str,
    serial: str,
    sender: str,
    recipients: tuple[str, ...],
    now_ms: int,
) -> EmailMessage:
    """The "send test email" message: says which gateway sent it, and when."""
    title = _line(f"Test email from {gateway_name}")
    rows = [
        ("Gateway", _line(f"{gateway_name} (serial {serial})")),
        ("Recipients", ", ".join(recipients)),
        ("Time", f"{gateway_time(now_ms)} (the gateway's synchronised clock)"),
    ]
    notes = ["Alarms of this gateway will be sent to these recipients by email."]
    message = _message(
        sender,
        recipients,
        f"Test email from {gateway_name} {serial}",
        _plain(title, rows, notes),
        _html(title, rows, notes),
    )
    message["Date"] = format_datetime(datetime.fromtimestamp(now_ms / 1000, tz=UTC))
    message["Message-ID"] = make_msgid("test", domain=f"{serial}.panelfast")
    return message
