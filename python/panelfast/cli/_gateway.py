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

from panelfast.cli._config import config_option, load_config
from panelfast.cli._main import main
from panelfast.config import Settings
from panelfast.exceptions import PanelfastError
from panelfast.gateway import Gateway
from panelfast.outbox import Outbox


async def serve(settings: Settings) -> None:
    """Run a gateway until SIGTERM or Ctrl-C, then stop it cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with Gateway(settings):
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
    settings = load_config(config_path)
    logging.basicConfig(
        level=log_level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    # The cloud client's HTTP library logs every request at INFO: too chatty for a daemon.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        uvloop.run(serve(settings))
    except OSError as exc:  # its storage folder, most likely: not the user's to debug
        where = f"{exc.filename}: " if exc.filename else ""
        raise click.ClickException(f"{where}{exc.strerror or exc}") from None
    except PanelfastError as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@config_option
@click.option("--watch", is_flag=True, help="follow the delivery until the backlog is empty")
def backlog(config_path: Path, watch: bool) -> None:
    """Show what waits for the cloud (a progress bar with --watch)."""
    settings = load_config(config_path)
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
