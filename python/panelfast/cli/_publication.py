"""``panelfast publication [show]`` and ``panelfast publication method cloud|email|none``.

Through the running daemon's control API (which switches at once and audits);
without a daemon, from here: the rule is checked against the Connect the
gateway stored, the file is changed, the switch recorded in the audit log,
and the gateway takes it at its next start. See :mod:`panelfast.publication`.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from panelfast.cli._daemon import call, config_option, fail, holding_storage, load, not_running
from panelfast.cli._main import main
from panelfast.config import Settings
from panelfast.exceptions import ConfigError, PanelfastError, PublicationConflict

_METHODS = ("cloud", "email", "none")


@main.group(invoke_without_command=True)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="the gateway's configuration file (TOML): shows the publication",
)
@click.pass_context
def publication(ctx: click.Context, config_path: Path | None) -> None:
    """The publication method (cloud, email or none), the email setup and the alarm emails.

    Cloud services and email publication of alarms are mutually exclusive:
    Connect needs the method cloud, and the method leaves cloud only once
    disconnected.
    """
    if ctx.invoked_subcommand is not None:
        return
    if config_path is None:
        raise click.UsageError("--config is required (or a command: show, method)")
    _show(config_path)


@publication.command("show")
@config_option
def show(config_path: Path) -> None:
    """Show the publication method, the email setup (no secret) and the alarm emails."""
    _show(config_path)


def _show(config_path: Path) -> None:
    answer = call(config_path, "GET", "/v1/publication", text=True)
    if answer is not None:
        click.echo(answer.text(), nl=False)
        return
    from panelfast.alarm_publication import leftover_mail
    from panelfast.control import PublicationInfo, publication_text
    from panelfast.local_settings import cloud_services_on
    from panelfast.publication import EmailSetup

    settings = load(config_path)
    info = PublicationInfo(
        settings.publication.method,
        cloud_services_on(settings),
        EmailSetup.of(settings.email) if settings.email is not None else None,
        leftover_mail(settings),
    )
    not_running("as the configuration file and the stored state say:")
    click.echo(publication_text(info), nl=False)


@publication.command("method")
@click.argument("method", type=click.Choice(_METHODS))
@config_option
def method(method: str, config_path: Path) -> None:
    """Switch the publication method to METHOD: in the running gateway at once, and in
    the configuration file.

    Refused while cloud services are on (Disconnect first) for email or none.
    """
    answer = call(config_path, "PUT", "/v1/publication", {"method": method}, text=True)
    if answer is not None:
        click.echo(answer.text(), nl=False)
        return
    switch_here(config_path, load(config_path), method)


def switch_here(config_path: Path, settings: Settings, method: str) -> None:
    """Without a daemon: checked as the gateway would, written, audited (``panelfast
    set publication.method`` too)."""
    with holding_storage(settings):
        _switch(config_path, settings, method)


def _switch(config_path: Path, settings: Settings, method: str) -> None:
    from panelfast.local_settings import cloud_services_on, edit_config_file
    from panelfast.publication import change_publication_method

    detail = {"method": method}
    try:
        change = change_publication_method(
            settings.publication.method, method, cloud_on=cloud_services_on(settings)
        )
        if change.changed and change.method == "email":
            _check_email(settings)
        edit_config_file(config_path, "publication.method", method, cloud_on=None)
        outcome = "ok"
    except PublicationConflict as exc:
        outcome = f"PublicationConflict: {exc}"
        _audit(settings, detail, outcome)
        fail(f"{exc}\nhint: {exc.hint}")
    except ConfigError as exc:
        outcome = f"ConfigError: {exc}"
        _audit(settings, detail, outcome)
        fail(str(exc))
    _audit(settings, detail, outcome)
    not_running("the file is changed; the gateway takes it at its next start")
    click.echo(change.audit_text())


def _check_email(settings: Settings) -> None:
    """What the gateway checks when it starts in email mode, checked now."""
    from panelfast.models.loader import ModelLibrary

    if settings.email is None:
        return  # the file's own check names the missing [email] section
    try:
        library = ModelLibrary(settings.gateway.model_dirs)
        known = {(d.id, m.id) for d in settings.devices for m in library.get(d.model).measurements}
    except PanelfastError as exc:
        fail(str(exc))
    settings.email.check_measurements(known)
    settings.email.password()


def _audit(settings: Settings, detail: dict[str, str], outcome: str) -> None:
    from panelfast.clock import Clock
    from panelfast.control import AuditLog

    audit = AuditLog(settings.storage.dir / "audit.sqlite")
    try:
        audit.record(
            Clock().now_ms(), f"local:uid={os.getuid()}", "publication.method", detail, outcome
        )
    finally:
        audit.close()
