"""``panelfast run`` (the daemon), ``panelfast reload`` (its configuration file read
again, live) and ``panelfast backlog`` (what waits for the cloud)."""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING

import click

from panelfast.cli._daemon import (
    call,
    config_option,
    daemon,
    fail,
    holding_storage,
    load,
    not_running,
)
from panelfast.cli._main import main

if TYPE_CHECKING:
    from panelfast.config import Settings
    from panelfast.logs import LogFormat


@main.command()
@config_option
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    help="text: human lines; json: one JSON object per line  [default: [logging] format, text]",
)
@click.option(
    "--log-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="log to this file, rotated by size, instead of standard error  [default: [logging] file]",
)
def run(
    config_path: Path, log_level: str, log_format: LogFormat | None, log_file: Path | None
) -> None:
    """Run the gateway: acquisition, sampling, alarms, buffering, publication, control API."""
    import uvloop

    from panelfast.clock import Clock
    from panelfast.control import AlreadyRunning, StorageLock
    from panelfast.daemon import serve
    from panelfast.exceptions import ConfigError
    from panelfast.logs import configure_logging

    settings = load(config_path)
    clock = Clock()  # the gateway's, from its start: its log lines are stamped by it
    logs = settings.logging
    file = log_file or logs.file
    try:
        redactor = configure_logging(
            level=log_level,
            log_format=log_format or logs.format,
            file=file,
            max_bytes=logs.max_mb * 1_000_000,
            backups=logs.backups,
            clock=clock,
        )
    except OSError as exc:
        fail(f"cannot log to {file}: {exc.strerror} (--log-file, or [logging] file)")
    secrets = _secrets(settings)
    redactor.watch(lambda: secrets)
    try:
        with StorageLock(settings.storage.dir):
            uvloop.run(
                serve(
                    settings,
                    config_path=config_path.resolve(),
                    redactor=redactor,
                    clock=clock,
                    log_file=file,
                )
            )
    except (AlreadyRunning, ConfigError) as exc:
        fail(str(exc))


@main.command()
@config_option
def reload(config_path: Path) -> None:
    """Put the configuration file in force in the running gateway, without a restart.

    Devices added, removed or changed take effect at one sampling instant,
    nothing lost; a file with an error, or a change of what cannot change
    live (identity, storage folder...), is refused naming the key, and the
    gateway goes on as it was. (SIGHUP to panelfast run does the same.)
    """
    body = {"config": str(config_path.resolve())}
    answer = call(config_path, "POST", "/v1/reload", body, text=True)
    if answer is None:
        load(config_path)  # a file the CLI cannot even read says why, naming the key
        fail("gateway not running: nothing to reload (panelfast run reads the file as it starts)")
    click.echo(answer.text(), nl=False)


def _secrets(settings: Settings) -> tuple[str | None, ...]:
    """What the log must never show, from the configuration."""
    from panelfast.exceptions import ConfigError

    proxy = settings.cloud.proxy
    try:
        claim_key: str | None = settings.identity.claim_key().get_secret_value()
    except ConfigError:
        claim_key = None  # unreadable now: then it cannot be logged either
    password = proxy.password if proxy is not None else None
    # The URL holds it percent-encoded; a message could quote either form.
    return (claim_key, password, urllib.parse.unquote(password) if password else None)


@main.command()
@config_option
@click.option("--watch", is_flag=True, help="follow the delivery until the backlog is empty")
def backlog(config_path: Path, watch: bool) -> None:
    """Show what waits for the cloud (a progress bar with --watch)."""
    answer = call(config_path, "GET", "/v1/backlog", text=True)
    if answer is None:
        _backlog_from_outbox(config_path)
        return
    click.echo(answer.text(), nl=False)
    if watch:
        _watch(config_path)


def _watch(config_path: Path) -> None:
    """Follow the daemon's status events until no sample waits: one line, redrawn."""
    wire = daemon(config_path)
    assert wire is not None
    start = 0
    width = 30
    for event, data in wire.events():
        if event != "status":
            continue
        backlog = data["backlog"]
        left = backlog["samples_left"]
        start = max(start, left)  # new samples keep arriving: the total grows with them
        done = start - left
        filled = width * done // start if start else width
        eta = backlog["eta_s"]
        remaining = f"  about {eta:,.0f} s left" if eta else ""
        bar = "#" * filled + "-" * (width - filled)
        click.echo(f"\rdelivering [{bar}] {done:,}/{start:,} samples{remaining}   ", nl=False)
        if left == 0:
            click.echo()
            return


def _backlog_from_outbox(config_path: Path) -> None:
    from panelfast.control._text import backlog_rows, rows_text
    from panelfast.outbox import Outbox
    from panelfast.publisher import Backlog

    settings = load(config_path)
    with holding_storage(settings):
        outbox = Outbox(
            settings.storage.dir / "outbox.sqlite",
            quota_bytes=settings.storage.quota_mb * 1_000_000,
        )
        try:
            stats = outbox.stats()
        finally:
            outbox.close()
    not_running("what its outbox holds:")
    nothing_moves = Backlog(
        samples_left=stats.pending_samples,
        batches_left=stats.chunks,
        events_left=stats.pending_events,
        rate_samples_per_s=0.0,
        eta_s=None,
        dropped_samples=stats.dropped_samples,
        refused_batches=stats.refused_batches,
        last_acked=stats.last_acked,
    )
    disk = f"{stats.bytes_used / 1e6:.1f} MB of {stats.quota_bytes / 1e6:.0f} MB"
    click.echo(rows_text([*backlog_rows(nothing_moves), ("Outbox on disk", disk)]), nl=False)
