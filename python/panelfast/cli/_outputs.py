"""``panelfast outputs``: outputs remote control and the history of what was switched.

These commands work on the gateway's command store (``commands.sqlite`` in the
storage folder). Without a running gateway, a change is made holding the
storage directory, as every command does then. A running gateway reads the
store each time it needs to know whether remote control is enabled, so a
change counts at once; the control API will carry these commands (routes to
come with the gateway's wiring of the commands).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from panelfast.cli._daemon import config_option, daemon, holding_storage, load, not_running
from panelfast.cli._main import main

if TYPE_CHECKING:
    from panelfast.clock import Clock
    from panelfast.commands import CommandStore, RemoteControlStatus


def _store(config_path: Path) -> CommandStore:
    from panelfast.commands import STORE_FILE, CommandStore
    from panelfast.exceptions import StateStoreError

    settings = load(config_path)
    try:
        return CommandStore(settings.storage.dir / STORE_FILE)
    except StateStoreError as exc:
        raise click.ClickException(str(exc)) from None


@contextmanager
def _changing(config_path: Path) -> Iterator[None]:
    """Hold the storage directory unless a gateway runs (it then sees the change at once)."""
    if daemon(config_path) is not None:
        yield
        return
    with holding_storage(load(config_path)):
        yield
    not_running("changed in its state files; it applies from the gateway's next start")


def _clock(config_path: Path) -> Clock:
    """The gateway's clock: the system clock plus the offset its last synchronisation measured."""
    from panelfast.clock import Clock
    from panelfast.cloud import StateStore, SyncStatus

    settings = load(config_path)
    synced = SyncStatus.from_json(StateStore(settings.storage.dir).load().time)
    offset = synced.offset_s if synced is not None and settings.time.mode != "manual" else 0.0
    return Clock(offset)


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _show(status: RemoteControlStatus) -> None:
    click.echo(f"Outputs remote control: {'enabled' if status.enabled else 'disabled'}")
    click.echo(f"Changed: {_when(status.changed_at_ms)}")
    scheduling = "active" if status.scheduling_active else "inactive"
    click.echo(f"Control scheduling: {scheduling} ({status.schedules} schedules stored)")


@main.group()
def outputs() -> None:
    """Outputs of IO modules: remote control by the cloud, and their history."""


@outputs.group("remote-control")
def remote_control() -> None:
    """Whether the cloud (and its schedules) may switch outputs; off by default."""


@remote_control.command("enable")
@config_option
@click.option(
    "--yes-i-understand",
    "confirmed",
    is_flag=True,
    help="confirm the risk without being asked (for scripts)",
)
def enable(config_path: Path, confirmed: bool) -> None:
    """Allow the cloud and its schedules to switch outputs (asks you to confirm the risk)."""
    from panelfast.commands import RISK, enable_remote_control
    from panelfast.exceptions import RemoteControlNotConfirmed

    if not confirmed:  # asked before the storage directory is held
        click.echo(f"{RISK}.")
        confirmed = click.confirm("Enable outputs remote control for these loads?", default=False)
    with _changing(config_path):
        store = _store(config_path)
        try:
            status = enable_remote_control(store, _clock(config_path), confirmed=confirmed)
        except RemoteControlNotConfirmed:
            raise click.ClickException(
                "outputs remote control stays disabled (not confirmed)"
            ) from None
        finally:
            store.close()
    _show(status)


@remote_control.command("disable")
@config_option
def disable(config_path: Path) -> None:
    """Stop the cloud from switching outputs; schedules stop acting."""
    from panelfast.commands import disable_remote_control

    with _changing(config_path):
        store = _store(config_path)
        try:
            _show(disable_remote_control(store, _clock(config_path)))
        finally:
            store.close()


@remote_control.command("status")
@config_option
def status(config_path: Path) -> None:
    """Show whether outputs remote control is enabled, and whether schedules are active."""
    from panelfast.commands import remote_control_status

    store = _store(config_path)
    try:
        _show(remote_control_status(store))
    finally:
        store.close()


@outputs.command("history")
@config_option
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="one JSON object per line")
def history(config_path: Path, limit: int, as_json: bool) -> None:
    """What was switched or asked, newest first: source, result, state read back."""
    store = _store(config_path)
    try:
        entries = store.history(limit)
    finally:
        store.close()
    if as_json:
        for entry in entries:
            click.echo(json.dumps(entry.to_json()))
        return
    if not entries:
        click.echo("no command or output change recorded yet")
        return
    for e in entries:
        what = " ".join(part for part in (e.kind, e.target, e.action) if part)
        result = e.status + (f" ({e.reason})" if e.reason else "")
        readback = f"  read back: {e.readback}" if e.readback else ""
        ident = f" [{e.command_id}]" if e.command_id else ""
        click.echo(f"{_when(e.ts_ms)}  {e.source:<8} {what}{ident}: {result}{readback}")
