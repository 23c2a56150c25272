"""``panelfast email test``: check the mail setup of email publication by sending a test email."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from panelfast.cli._daemon import config_option, load
from panelfast.cli._main import main
from panelfast.exceptions import ConfigError, MailError


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
    # Imported here: the other commands do not need smtplib and the email package.
    from panelfast.clock import Clock
    from panelfast.mail import send_test_email

    settings = load(config_path)
    try:
        delivery = send_test_email(settings, Clock())
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    except MailError as exc:
        click.echo(f"test email not sent: {exc}", err=True)
        if exc.code is not None:
            click.echo(f"server answer: {exc.code} {exc.text}", err=True)
        sys.exit(1)
    assert settings.email is not None  # send_test_email refused a file without it
    where = f"{settings.email.host}:{settings.email.smtp_port}"
    taken = len(delivery.recipients) - len(delivery.refused)
    click.echo(f"test email sent by {where} to {taken} recipient(s)")
    click.echo(f"server answer: {delivery.answer}")
    for address, answer in delivery.refused:
        click.echo(f"refused {address}: {answer}", err=True)
    if delivery.refused:
        sys.exit(1)
