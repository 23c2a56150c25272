"""``panelfast outputs``: the outputs of IO modules, their remote control and history.

With a daemon running, each command is a request to its control API
(``/v1/outputs...``): the change is made by the running gateway, at once,
and recorded in its audit log with who asked. With none running, the command
says so plainly and works on the gateway's command store
(``commands.sqlite``) while holding the storage directory, as every command
does then; ``switch`` then polls and writes the one device itself.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from panelfast.cli._daemon import call, config_option, fail, holding_storage, load, not_running
from panelfast.cli._main import main

if TYPE_CHECKING:
    from panelfast.clock import Clock
    from panelfast.commands import CommandStore, OutputInfo, SwitchResult


def _store(config_path: Path) -> CommandStore:
    from panelfast.commands import STORE_FILE, CommandStore
    from panelfast.exceptions import StateStoreError

    settings = load(config_path)
    try:
        return CommandStore(settings.storage.dir / STORE_FILE)
    except StateStoreError as exc:
        raise click.ClickException(str(exc)) from None


@contextmanager
def _stored(config_path: Path, *, change: bool = False) -> Iterator[CommandStore]:
    """The command store, without a daemon; a change is made holding the storage directory."""
    if not change:
        store = _store(config_path)
        try:
            yield store
        finally:
            store.close()
        return
    with holding_storage(load(config_path)):
        store = _store(config_path)
        try:
            yield store
        finally:
            store.close()


def _who() -> str:
    """Who acts, in the history, when no daemon can name the caller."""
    return f"cli:uid={os.getuid()}"


def _clock(config_path: Path) -> Clock:
    """The gateway's clock: the system clock plus the offset its last synchronisation measured."""
    from panelfast.clock import Clock
    from panelfast.cloud import StateStore, SyncStatus

    settings = load(config_path)
    synced = SyncStatus.from_json(StateStore(settings.storage.dir).load().time)
    offset = synced.offset_s if synced is not None and settings.time.mode != "manual" else 0.0
    return Clock(offset)


@main.group(invoke_without_command=True)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="the gateway's configuration file (TOML); alone: the same as `outputs list`",
)
@click.pass_context
def outputs(ctx: click.Context, config_path: Path | None) -> None:
    """Outputs of IO modules: their states, switching, remote control by the cloud, history."""
    if ctx.invoked_subcommand is not None:
        return
    if config_path is None:
        raise click.UsageError("Missing option '--config'.")
    ctx.invoke(list_outputs, config_path=config_path)


@outputs.command("list")
@config_option
def list_outputs(config_path: Path) -> None:
    """Each output: its state, mode, and its last change (when, by whom)."""
    answer = call(config_path, "GET", "/v1/outputs", text=True)
    if answer is not None:
        click.echo(answer.text(), nl=False)
        return
    from panelfast.commands import _text

    found = _configured_outputs(config_path)
    not_running("the outputs' last known states, from its state files:")
    click.echo(_text.outputs_text(found), nl=False)


def _configured_outputs(config_path: Path) -> list[OutputInfo]:
    """The outputs the configuration has, each in its last known state (no daemon)."""
    from panelfast.commands import OutputInfo
    from panelfast.models.loader import ModelLibrary

    settings = load(config_path)
    library = ModelLibrary(settings.gateway.model_dirs)
    with _stored(config_path) as store:
        known = store.known_states()
    found = []
    for device in settings.devices:
        for o in library.get(device.model).outputs:
            last = known.get(f"{device.id}/{o.id}")
            found.append(
                OutputInfo(
                    device.id,
                    o.id,
                    o.name,
                    o.mode,
                    None if last is None else ("on" if last.state else "off"),
                    None if last is None else last.ts_ms,
                    None if last is None else last.source,
                )
            )
    return found


@outputs.command("switch")
@config_option
@click.argument("output", metavar="DEVICE/OUTPUT")
@click.argument("action", type=click.Choice(["on", "off", "toggle"]))
def switch(config_path: Path, output: str, action: str) -> None:
    """Switch an output from here; done once its state is read back.

    Switching from the gateway itself does not need outputs remote control
    (that guards what the cloud and its schedules do); it is recorded in the
    history with who did it.
    """
    device, _, output_id = output.partition("/")
    if not device or not output_id:
        fail(f"{output!r}: name the output as DEVICE/OUTPUT, e.g. io-1/Q1")
    route = f"/v1/outputs/{urllib.parse.quote(device, safe='')}/{urllib.parse.quote(output_id)}"
    answer = call(config_path, "POST", route, {"action": action}, text=True)
    if answer is not None:
        click.echo(answer.text(), nl=False)
        return
    result = _switch_here(config_path, device, output_id, action)
    not_running("switched from here (the state goes to the cloud from the gateway's next start)")
    if result.status != "done":
        fail(f"{output} {action}: {result.reason}")
    click.echo(f"{output}: {result.readback} (read back)")


def _switch_here(config_path: Path, device_id: str, output_id: str, action: str) -> SwitchResult:
    """No daemon: poll the one device, write, read back, record (holding the storage)."""
    import asyncio
    import time

    from panelfast.acquisition import Acquisition
    from panelfast.commands import OutputControl, OutputRef
    from panelfast.models.loader import ModelLibrary

    settings = load(config_path)
    device = next((d for d in settings.devices if d.id == device_id), None)
    if device is None:
        fail(f"no device {device_id!r} in {config_path}")
    model = ModelLibrary(settings.gateway.model_dirs).get(device.model)
    if output_id not in {o.id for o in model.outputs}:
        names = ", ".join(o.id for o in model.outputs) or "none"
        fail(f"{device_id} ({device.model}) has no output {output_id!r} (outputs: {names})")
    ref = OutputRef(device_id, output_id)
    clock = _clock(config_path)

    async def go(store: CommandStore) -> SwitchResult:
        acquisition = Acquisition([(device, model)], clock=clock)
        acquisition.start()
        try:
            control = OutputControl(acquisition, [(device, model)], store, clock)
            k = acquisition.index(device_id, output_id)
            # Its state first (a toggle needs it), as long as a read-back may take.
            deadline = time.monotonic() + (2 * device.connection.period_ms) / 1000 + 5
            while time.monotonic() < deadline:
                if acquisition.snapshot().valid[k]:
                    break
                await asyncio.sleep(0.05)
            return await control.switch_locally(ref, action, _who())  # type: ignore[arg-type]
        finally:
            await asyncio.to_thread(acquisition.stop)

    with _stored(config_path, change=True) as store:
        return asyncio.run(go(store))


@outputs.group("remote-control")
def remote_control() -> None:
    """Whether the cloud (and its schedules) may switch outputs; off by default."""


def _remote_without_daemon(config_path: Path, enable: bool | None) -> None:
    from panelfast.commands import _text, disable_remote_control, enable_remote_control

    with _stored(config_path, change=enable is not None) as store:
        from panelfast.commands import remote_control_status

        if enable is None:
            status = remote_control_status(store)
        elif enable:
            status = enable_remote_control(store, _clock(config_path), confirmed=True, who=_who())
        else:
            status = disable_remote_control(store, _clock(config_path), who=_who())
    if enable is not None:
        not_running("changed in its state files; it applies from the gateway's next start")
    click.echo(_text.remote_control_text(status), nl=False)


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
    from panelfast.commands import RISK

    if not confirmed:
        if not sys.stdin.isatty():
            # Nobody to ask: a script must say it understood, in so many words.
            fail(
                f"outputs remote control stays disabled (not confirmed). It needs your "
                f"confirmation of this: {RISK}. Run it in a terminal to be asked, or pass "
                f"--yes-i-understand."
            )
        click.echo(f"{RISK}.")
        if not click.confirm("Enable outputs remote control for these loads?", default=False):
            fail("outputs remote control stays disabled (not confirmed)")
    body = {"enabled": True, "confirmation": RISK}
    answer = call(config_path, "POST", "/v1/outputs/remote-control", body, text=True)
    if answer is not None:
        click.echo(answer.text(), nl=False)
        return
    _remote_without_daemon(config_path, True)


@remote_control.command("disable")
@config_option
def disable(config_path: Path) -> None:
    """Stop the cloud from switching outputs; schedules stop acting."""
    body = {"enabled": False}
    answer = call(config_path, "POST", "/v1/outputs/remote-control", body, text=True)
    if answer is not None:
        click.echo(answer.text(), nl=False)
        return
    _remote_without_daemon(config_path, False)


@remote_control.command("status")
@config_option
def status(config_path: Path) -> None:
    """Show whether outputs remote control is enabled, and whether schedules are active."""
    answer = call(config_path, "GET", "/v1/outputs/remote-control", text=True)
    if answer is not None:
        click.echo(answer.text(), nl=False)
        return
    _remote_without_daemon(config_path, None)


@outputs.command("history")
@config_option
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="one JSON object per line")
def history(config_path: Path, limit: int, as_json: bool) -> None:
    """Every command, schedule entry and switch, newest first: source, result, read-back."""
    route = f"/v1/outputs/history?limit={limit}"
    answer = call(config_path, "GET", route, text=not as_json)
    if answer is not None:
        if as_json:
            for entry in answer.json():
                click.echo(json.dumps(entry))
        else:
            click.echo(answer.text(), nl=False)
        return
    from panelfast.commands import _text

    with _stored(config_path) as store:
        entries = store.history(limit)
    if as_json:
        for e in entries:
            click.echo(json.dumps(e.to_json()))
    else:
        click.echo(_text.history_text(entries), nl=False)


@outputs.command("schedules")
@config_option
def schedules(config_path: Path) -> None:
    """The schedules the cloud sent: their entries, next run, and whether they act."""
    answer = call(config_path, "GET", "/v1/schedules", text=True)
    if answer is not None:
        click.echo(answer.text(), nl=False)
        return
    from panelfast.commands import _text, stored_schedules

    with _stored(config_path) as store:
        stored = stored_schedules(store, _clock(config_path))
    not_running("the schedules in its state files:")
    click.echo(_text.schedules_text(stored), nl=False)
