"""``panelfast email test``: check the mail setup of email publication by sending a test email.

Through the running daemon when one runs (the gateway sends it, with the
settings it runs with, and the audit log records it); else from here.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from panelfast.cli._daemon import call, config_option, load
from panelfast.cli._main import main
from panelfast.control.wire import Answer


@main.group()
def email() -> None:
    """Email publication of alarms (the [email] section)."""


@email.command("test")
@config_option
def test_email(config_path: Path) -> None:
    """Send a test email to every recipient and show the SMTP server's answer.

    Works whatever the publication method, so the setup can be checked before
    switching to email. Exits 1 when the email was not sent to every recipient,
    showing the step that failed and the server's exact answer.
    """
    sent = _through_daemon(config_path)
    if sent is None:
        sent = _from_here(config_path)
    taken = len(sent["recipients"]) - len(sent["refused"])
    click.echo(f"test email sent by {sent['server']} to {taken} recipient(s)")
    answer = sent["answer"]
    click.echo(f"server answer: {answer['code']} {answer['text']}")
    for refused in sent["refused"]:
        click.echo(f"refused {refused['address']}: {refused['code']} {refused['text']}", err=True)
    if sent["refused"]:
        sys.exit(1)


def _not_sent(message: str, code: int | None, text: str | None) -> NoReturn:
    click.echo(f"test email not sent: {message}", err=True)
    if code is not None:
        click.echo(f"server answer: {code} {text}", err=True)
    sys.exit(1)


def _through_daemon(config_path: Path) -> dict[str, Any] | None:
    """The daemon's answer (TestEmailSent as JSON); None when no daemon runs."""

    def not_sent(answer: Answer) -> None:
        if answer.status == 502:  # the SMTP server's answer, as the local path shows it
            error = answer.json()
            _not_sent(error["message"], error.get("code"), error.get("text"))

    answer = call(config_path, "POST", "/v1/email/test", refused=not_sent)
    if answer is None:
        return None
    sent: dict[str, Any] = answer.json()
    return sent


def _from_here(config_path: Path) -> dict[str, Any]:
    # Imported here: the other commands do not need smtplib and the email package.
    from panelfast.clock import Clock
    from panelfast.exceptions import ConfigError, MailError
    from panelfast.mail import send_test_email

    settings = load(config_path)
    try:
        delivery = send_test_email(settings, Clock())
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    except MailError as exc:
        _not_sent(str(exc), exc.code, exc.text)
    assert settings.email is not None  # send_test_email refused a file without it
    return {
        "server": f"{settings.email.host}:{settings.email.smtp_port}",
        "answer": {"code": delivery.answer.code, "text": delivery.answer.text},
        "recipients": list(delivery.recipients),
        "refused": [{"address": a, "code": r.code, "text": r.text} for a, r in delivery.refused],
    }
