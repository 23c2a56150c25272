"""``panelfast connect|disconnect|status|identification|firewall|devices|audit``.

Each is a request to the running gateway's control API. Without a running
gateway, Connect and Disconnect act from here (and the gateway follows at its
next start), and the others show what the gateway saved last.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from panelfast.cli._daemon import call, config_option, fail, holding_storage, load, not_running
from panelfast.cli._main import main

#: ``panelfast status`` when no gateway runs (as LSB init scripts say "not running").
NOT_RUNNING_EXIT = 3


def _print_cloud_status(text: str) -> bool:
    """Print a CloudStatus text; True if it says Connected."""
    click.echo(text, nl=False)
    return any(
        line.split(":", 1)[-1].strip() == "Connected"
        for line in text.splitlines()
        if line.startswith("Connection status:")
    )


@main.command()
@config_option
@click.option(
    "--attempts",
    default=3,
    show_default=True,
    type=click.IntRange(1, 10),
    help="without a running gateway: tries of each request (1 s doubling between)",
)
def connect(config_path: Path, attempts: int) -> None:
    """Connect to the cloud (kept across restarts) and show the outcome.

    Exits 0 once connected, 1 if the attempt failed (the gateway keeps trying).
    """
    answer = call(config_path, "POST", "/v1/connect", text=True)
    if answer is not None:
        sys.exit(0 if _print_cloud_status(answer.text()) else 1)
    import asyncio

    from panelfast.cloud import CloudSession, ConnectionStatus, RetryPolicy
    from panelfast.exceptions import PublicationConflict
    from panelfast.publication import ensure_cloud_services_allowed

    settings = load(config_path)
    try:
        ensure_cloud_services_allowed(settings.publication.method)
    except PublicationConflict as exc:
        fail(f"{exc}\nhint: {exc.hint}")

    async def go() -> bool:
        session = CloudSession(settings, retry=RetryPolicy(max_attempts=attempts))
        try:
            status = await session.connect()
        finally:
            await session.aclose()
        click.echo(status.text())
        return status.connection is ConnectionStatus.CONNECTED

    with holding_storage(settings):
        connected = asyncio.run(go())
    not_running("connected from here; the gateway stays connected from its next start")
    sys.exit(0 if connected else 1)


@main.command()
@config_option
def disconnect(config_path: Path) -> None:
    """Disconnect from the cloud: tell it, then stop all cloud traffic."""
    answer = call(config_path, "POST", "/v1/disconnect", text=True)
    if answer is not None:
        click.echo(answer.text(), nl=False)
        return
    import asyncio

    from panelfast.cloud import CloudSession

    settings = load(config_path)

    async def go() -> str:
        return (await CloudSession(settings).disconnect()).text()

    with holding_storage(settings):
        click.echo(asyncio.run(go()))
    not_running("disconnected from here; the gateway starts disconnected")


@main.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="the whole status, as the API gives it")
def status(config_path: Path, as_json: bool) -> None:
    """Connection status and diagnostics, time, remote configuration, topology, backlog.

    Exits 3 when the gateway is not running (it then shows what it saved last).
    """
    answer = call(config_path, "GET", "/v1/status", text=not as_json)
    if answer is not None:
        click.echo(answer.text(), nl=not answer.text().endswith("\n"))
        return
    from panelfast.cloud import CloudSession

    saved = CloudSession(load(config_path)).saved_status()
    click.echo("Gateway:                not running (the last state it saved follows)")
    click.echo(json.dumps({"cloud": str(saved.connection)}) if as_json else saved.text())
    sys.exit(NOT_RUNNING_EXIT)


@main.command()
@config_option
def identification(config_path: Path) -> None:
    """Show the Panel Server Identification (the claim key masked)."""
    answer = call(config_path, "GET", "/v1/identification", text=True)
    if answer is not None:
        click.echo(answer.text(), nl=False)
        return
    from panelfast.cloud import Identity, StateStore
    from panelfast.exceptions import ConfigError

    settings = load(config_path)
    state = StateStore(settings.storage.dir).load()
    try:
        identity = Identity.from_settings(settings.identity, device_id=state.device_id)
    except ConfigError as exc:
        fail(str(exc))
    click.echo(identity.identification_text())


@main.command()
@config_option
def firewall(config_path: Path) -> None:
    """List every host and port the site's firewall must let the gateway reach."""
    answer = call(config_path, "GET", "/v1/firewall", text=True)
    if answer is not None:
        click.echo(answer.text(), nl=False)
        return
    from panelfast.cloud import StateStore, firewall_rules

    settings = load(config_path)
    for rule in firewall_rules(settings, StateStore(settings.storage.dir).load()):
        click.echo(rule.text())


@main.command()
@config_option
def devices(config_path: Path) -> None:
    """Each device's state (ok, degraded, offline), last error and round trips."""
    answer = call(config_path, "GET", "/v1/devices", text=True)
    if answer is None:
        fail("gateway not running: device diagnostics exist only while it polls", 3)
    click.echo(answer.text(), nl=False)


@main.command()
@config_option
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
def audit(config_path: Path, limit: int) -> None:
    """The most recent changes made to the gateway: when, who, what, outcome."""
    answer = call(config_path, "GET", f"/v1/audit?limit={limit}")
    if answer is None:
        fail("gateway not running", 3)
    from datetime import UTC, datetime

    for entry in answer.json():
        when = datetime.fromtimestamp(entry["ts_ms"] / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
        detail = json.dumps(entry["detail"], ensure_ascii=False) if entry["detail"] else ""
        click.echo(f"{when}Z  {entry['who']:<18} {entry['action']:<18} {entry['outcome']} {detail}")
