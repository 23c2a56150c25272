"""``panelfast run`` (the daemon) and ``panelfast backlog`` (what waits for the cloud)."""

from __future__ import annotations

import asyncio
import logging
import signal
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

log = logging.getLogger("panelfast")

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


async def serve(settings: Settings, config_path: Path) -> None:
    """Run a gateway and its control API until SIGTERM or Ctrl-C, then stop cleanly."""
    from panelfast.clock import ClockFormatter
    from panelfast.cloud import CloudSession
    from panelfast.control._app import ControlApp
    from panelfast.control._audit import AuditLog
    from panelfast.control._server import ControlServer, socket_path
    from panelfast.gateway import Gateway

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    storage = settings.storage.dir
    session = CloudSession(settings)
    # The log's times are the gateway's clock, as its events' are.
    for handler in logging.getLogger().handlers:
        handler.setFormatter(ClockFormatter(LOG_FORMAT, session.clock))
    async with Gateway(settings, session=session) as gateway:
        audit = AuditLog(storage / "audit.sqlite")
        control = ControlApp(gateway, config_path=config_path, audit=audit)
        server = ControlServer(
            control.app,
            socket_path(storage, settings.control.socket),
            group=settings.control.group,
        )
        try:
            await server.start()
            await stop.wait()
            log.info("stopping (signal received)")
        finally:
            await server.stop()
            audit.close()


@main.command()
@config_option
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
def run(config_path: Path, log_level: str) -> None:
    """Run the gateway: acquisition, sampling, alarms, buffering, publication, control API."""
    import uvloop

    from panelfast.control._lock import AlreadyRunning, StorageLock

    settings = load(config_path)
    logging.basicConfig(level=log_level.upper(), format=LOG_FORMAT)
    # The cloud client's HTTP library logs every request at INFO: too chatty for a daemon.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        with StorageLock(settings.storage.dir):
            uvloop.run(serve(settings, config_path.resolve()))
    except AlreadyRunning as exc:
        fail(str(exc))


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
    """Follow the daemon's status events until no sample waits."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    wire = daemon(config_path)
    assert wire is not None
    start = None
    with Progress(
        TextColumn("delivering"),
        BarColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f} samples"),
        TimeRemainingColumn(),
    ) as progress:
        task = progress.add_task("backlog", total=None)
        for event, data in wire.events():
            if event != "status":
                continue
            left = data["backlog"]["samples_left"]
            # New samples keep arriving: the total grows with them.
            if start is None or left > start:
                start = left
                progress.update(task, total=start)
            progress.update(task, completed=start - left)
            if left == 0:
                return


def _backlog_from_outbox(config_path: Path) -> None:
    from panelfast.outbox import Outbox

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
    click.echo(
        f"samples waiting: {stats.pending_samples}   alarm events waiting: {stats.pending_events}\n"
        f"last batch acknowledged: {stats.last_acked}   next: {stats.next_seq}\n"
        f"dropped (disk quota): {stats.dropped_samples}   refused by the cloud: "
        f"{stats.refused_batches}\n"
        f"outbox: {stats.bytes_used / 1e6:.1f} MB of {stats.quota_bytes / 1e6:.0f} MB"
    )
