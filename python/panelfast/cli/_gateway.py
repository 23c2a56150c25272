"""``panelfast run`` (the daemon) and ``panelfast backlog`` (what waits for the cloud)."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from pathlib import Path

import click
import uvloop
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from panelfast.cli._cloud import _settings, config_option
from panelfast.cli._main import main
from panelfast.clock import ClockFormatter
from panelfast.cloud import CloudSession
from panelfast.config import Settings
from panelfast.gateway import Gateway
from panelfast.outbox import Outbox

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


async def serve(settings: Settings) -> None:
    """Run a gateway until SIGTERM or Ctrl-C, then stop it cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    session = CloudSession(settings)
    # The log's times are the gateway's clock, as its events' are.
    for handler in logging.getLogger().handlers:
        handler.setFormatter(ClockFormatter(LOG_FORMAT, session.clock))
    async with Gateway(settings, session=session):
        await stop.wait()
        logging.getLogger("panelfast").info("stopping (signal received)")


@main.command()
@config_option
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
def run(config_path: Path, log_level: str) -> None:
    """Run the gateway: acquisition, sampling, alarms, buffering and publication."""
    settings = _settings(config_path)
    logging.basicConfig(level=log_level.upper(), format=LOG_FORMAT)
    # The cloud client's HTTP library logs every request at INFO: too chatty for a daemon.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    uvloop.run(serve(settings))


@main.command()
@config_option
@click.option("--watch", is_flag=True, help="follow the delivery until the backlog is empty")
def backlog(config_path: Path, watch: bool) -> None:
    """Show what waits for the cloud (a progress bar with --watch)."""
    settings = _settings(config_path)
    outbox = Outbox(
        settings.storage.dir / "outbox.sqlite", quota_bytes=settings.storage.quota_mb * 1_000_000
    )
    stats = outbox.stats()
    click.echo(
        f"samples waiting: {stats.pending_samples}   alarm events waiting: {stats.pending_events}\n"
        f"last batch acknowledged: {stats.last_acked}   next: {stats.next_seq}\n"
        f"dropped (disk quota): {stats.dropped_samples}   refused by the cloud: "
        f"{stats.refused_batches}\n"
        f"outbox: {stats.bytes_used / 1e6:.1f} MB of {stats.quota_bytes / 1e6:.0f} MB"
    )
    if not watch or stats.pending_samples == 0:
        return
    start = stats.pending_samples
    with Progress(
        TextColumn("delivering"),
        BarColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f} samples"),
        TimeRemainingColumn(),
    ) as progress:
        task = progress.add_task("backlog", total=start)
        while (left := outbox.stats().pending_samples) > 0:
            # New samples keep arriving: the total grows with them.
            if left > start:
                start = left
                progress.update(task, total=start)
            progress.update(task, completed=start - left)
            time.sleep(1)
        progress.update(task, completed=start)
