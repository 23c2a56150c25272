"""Email publication of alarms (the publication method ``email``).

In email mode the gateway watches the alarms of its own configuration
(``[[email.alarms]]``) with the same Rust alarm engine, and emails each
transition to up to 10 recipients, over SMTP with STARTTLS or implicit TLS
(certificates always verified) and AUTH.

Delivery, and why it is this way:

* **Stored first.** :meth:`AlarmMailer.enqueue` commits the events to a
  SQLite queue (``mail.sqlite`` in the storage folder, ``synchronous=FULL``)
  before anything is sent: an event handed over survives a crash or a power cut.
* **In order, one email per event, no digest.** While the server is down the
  events wait; when it is back they are sent oldest first over one session.
  One email per event keeps each its own stable Message-ID and its own subject
  (an alarm and its clearing are two emails a reader can sort and search),
  and needs no grouping that would have to be fixed before its first attempt
  to be sent again unchanged. Alarms are few (at most 100, each with its
  delay and hysteresis), so a backlog stays small.
* **Retried, never lost.** A failure (no connection, a 4xx or 5xx answer)
  keeps the email queued and retries with the gateway's backoff (1 s doubling
  to 300 s, with jitter); :meth:`AlarmMailer.status` shows the last error with
  the server's code and text. A permanent refusal (5xx, e.g. a sender the
  server does not accept) also keeps it: it waits for the user to fix the
  setup rather than being thrown away.
* **Never sent twice across restarts**, with one window left: an email is
  marked sent in its own committed transaction right after the server
  answered 250 to its data, and only then is the next one sent. A crash (or
  a lost connection) after the server took the message and before that
  commit sends it again on restart. Such a duplicate carries the same
  Message-ID (``<alarm.{ts_ms}.{on|off}.{hash of the alarm id}@{serial}.panelfast>``),
  and the same Date and content, so a mail client or server that drops
  duplicate Message-IDs shows it once.
* **Bounded.** At most ``email.queue_limit`` events (default 10,000) wait;
  beyond that the oldest are dropped, counted in ``status().dropped`` (kept
  across restarts), logged as a warning, and the next email sent says how
  many earlier events were lost.
* **Some recipients refused:** the message went to the others, so it is not
  sent again; the refusal is shown as the last error.

The SMTP password lives in its own file (mode 0600, refused otherwise); it
is read when a session opens, sent only inside TLS, never logged and never
part of the settings, the topology or any dump.
"""

from panelfast.mail._compose import MailEvent, compose_alarm, compose_test, gateway_time
from panelfast.mail._mailer import AlarmMailer, MailFailure, MailStatus, send_test_email
from panelfast.mail._queue import MailQueue, QueueCounts, QueuedMail
from panelfast.mail._smtp import Delivery, SmtpAnswer, SmtpSession

__all__ = [
    "AlarmMailer",
    "Delivery",
    "MailEvent",
    "MailFailure",
    "MailQueue",
    "MailStatus",
    "QueueCounts",
    "QueuedMail",
    "SmtpAnswer",
    "SmtpSession",
    "compose_alarm",
    "compose_test",
    "gateway_time",
    "send_test_email",
]
