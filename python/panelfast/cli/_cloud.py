"""``panelfast connect|disconnect|status|identification|firewall``: the cloud connection."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from panelfast.cli._config import config_option, load_config
from panelfast.cli._main import main
from panelfast.cloud import (
    CloudSession,
    ConnectionStatus,
    Identity,
    RetryPolicy,
    firewall_rules,
)
from panelfast.cloud._state import StateStore
from panelfast.config import Settings
from panelfast.exceptions import ConfigError, PanelfastError

#: The name the command modules knew the loader by (cli._config has it now).
_settings = load_config


def _session(settings: Settings, retry: RetryPolicy | None = None) -> CloudSession:
    try:
        return CloudSession(settings, retry=retry)
    except PanelfastError as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@config_option
@click.option(
    "--attempts",
    default=3,
    show_default=True,
    type=click.IntRange(1, 10),
    help="tries of each request before showing the outcome (1 s doubling between)",
)
def connect(config_path: Path, attempts: int) -> None:
    """Connect to the cloud (kept across restarts) and show the outcome.

    Exits 0 once connected, 1 if the attempt failed (the gateway keeps trying).
    """

    async def go() -> ConnectionStatus:
        session = _session(load_config(config_path), RetryPolicy(max_attempts=attempts))
        try:
            status = await session.connect()
        finally:
            await session.aclose()
        click.echo(status.text())
        return status.connection

    if asyncio.run(go()) is not ConnectionStatus.CONNECTED:
        sys.exit(1)


@main.command()
@config_option
def disconnect(config_path: Path) -> None:
    """Disconnect from the cloud: tell it, then stop all cloud traffic."""

    async def go() -> None:
        status = await _session(load_config(config_path)).disconnect()
        click.echo(status.text())

    asyncio.run(go())


@main.command()
@config_option
def status(config_path: Path) -> None:
    """Show the Connection status, diagnostics with a hint, and time synchronisation."""
    click.echo(_session(load_config(config_path)).saved_status().text())


@main.command()
@config_option
def identification(config_path: Path) -> None:
    """Show the Panel Server Identification (the claim key masked)."""
    settings = load_config(config_path)
    state = StateStore(settings.storage.dir).load()
    try:
        identity = Identity.from_settings(settings.identity, device_id=state.device_id)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(identity.identification_text())


@main.command()
@config_option
def firewall(config_path: Path) -> None:
    """List every host and port the site's firewall must let the gateway reach."""
    settings = load_config(config_path)
    for rule in firewall_rules(settings, StateStore(settings.storage.dir).load()):
        click.echo(rule.text())
