"""``panelfast web set-password``: the password of the local web pages."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from panelfast.cli._daemon import config_option, fail, load
from panelfast.cli._main import main


@main.group()
def web() -> None:
    """The local web pages ([web] listen)."""


@web.command("set-password")
@config_option
@click.option(
    "--stdin",
    "from_stdin",
    is_flag=True,
    help="read the password from the first line of standard input (for scripts)",
)
def set_password(config_path: Path, from_stdin: bool) -> None:
    """Set the password of the web pages' user ([web] user, "admin" by default).

    Kept hashed (argon2id) in the storage folder, mode 0600. A running
    gateway takes it at once, and everyone logged in with the old one is
    logged out.
    """
    # Only the password module: argon2, not the web stack.
    from panelfast.web._password import MIN_LENGTH, PasswordFile, WebPasswordError

    settings = load(config_path)
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt(
            f"New password for {settings.web.user!r} (at least {MIN_LENGTH} characters)",
            hide_input=True,
            confirmation_prompt="Repeat it",
        )
    try:
        PasswordFile(settings.storage.dir).set(password)
    except WebPasswordError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot write the password in {settings.storage.dir}: {exc.strerror}")
    click.echo(f"web password set for {settings.web.user!r}")
