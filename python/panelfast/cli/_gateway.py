"""``panelfast run`` (the daemon) and ``panelfast backlog`` (what waits for the cloud)."""

from __future__ import annotations

import time
import urllib.parse
from pathlib import Path

import click
import uvloop
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from panelfast.cli._cloud import _settings, config_option
from panelfast.cli._main import main
from panelfast.config import Settings
from panelfast.daemon import serve
from panelfast.exceptions import ConfigError
from panelfast.logs import LogFormat, configure_logging
from panelfast.outbox import Outbox


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
    """Run the gateway: acquisition, sampling, alarms, buffering and publication."""
    settings = _settings(config_path)
    logs = settings.logging
    file = log_file or logs.file
    try:
        redactor = configure_logging(
            level=log_level,
            log_format=log_format or logs.format,
            file=file,
            max_bytes=logs.max_mb * 1_000_000,
            backups=logs.backups,
        )
    except OSError as exc:
        raise click.ClickException(
            f"cannot log to {file}: {exc.strerror} (--log-file, or [logging] file)"
        ) from None
    secrets = _secrets(settings)
    redactor.watch(lambda: secrets)
    try:
        uvloop.run(serve(settings, redactor=redactor, source=str(config_path)))
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _secrets(settings: Settings) -> tuple[str | None, ...]:
    """What the log must never show, from the configuration."""
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
