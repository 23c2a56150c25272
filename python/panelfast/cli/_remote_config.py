"""``panelfast remote-config``: check a document offline, show what is applied;
``panelfast set``: change a local setting in the configuration file.

Read-only by design (§6): nothing here changes the applied configuration;
only the cloud does, and ``panelfast set`` refuses what the cloud manages.
"""

from __future__ import annotations

from pathlib import Path

import click

from panelfast.cli._config import config_option, load_config
from panelfast.cli._main import main
from panelfast.config import Settings
from panelfast.exceptions import (
    ConfigError,
    RemoteConfigReadOnly,
    RemoteConfigRejected,
    StateStoreError,
)
from panelfast.local_settings import edit_config_file
from panelfast.remote_config import ConfigStore, validate_bytes
from panelfast.topology import PublishedTopologyStore


@main.group("remote-config")
def remote_config() -> None:
    """The remote configuration the cloud imposes (read-only on the gateway)."""


@remote_config.command("check")
@click.argument("document", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@config_option
def check(document: Path, config_path: Path) -> None:
    """Validate DOCUMENT as the gateway would, listing every error by path.

    It is checked against the topology the gateway last published.
    """
    settings = load_config(config_path)
    topology_state = _topology_state(settings)
    try:
        published = PublishedTopologyStore(topology_state).load()
        if published is None:
            raise click.ClickException(
                f"no topology published yet ({topology_state}): "
                "run `panelfast topology publish` first"
            )
        config = validate_bytes(document.read_bytes(), published.measurements)
    except StateStoreError as exc:
        raise click.ClickException(str(exc)) from None
    except RemoteConfigRejected as rejection:
        click.echo(f"{document}: rejected, {len(rejection.errors)} error(s)")
        for error in rejection.errors:
            click.echo(f"  {error.path}: {error.message}")
        raise SystemExit(1) from None
    rate = config.samples_per_minute
    shown = f"{float(rate):g}" if rate.denominator != 1 else str(rate.numerator)
    click.echo(
        f"{document}: valid, version {config.version!r}: {len(config.measurements)} "
        f"measurements ({shown} samples per minute), {len(config.alarms)} alarms, "
        f"published every {config.publisher_period_s} s"
    )


@remote_config.command("status")
@config_option
def status(config_path: Path) -> None:
    """Show the applied configuration and the last version received."""
    state = _config_state(load_config(config_path))
    applied = received = None
    if state.exists():  # else the gateway never stored one: nothing to create here
        try:
            with ConfigStore(state) as store:
                applied = store.applied()
                received = store.last_received()
        except StateStoreError as exc:
            raise click.ClickException(str(exc)) from None
    if applied is None:
        click.echo("applied: none (sampling waits for a valid remote configuration)")
    else:
        click.echo(
            f"applied: version {applied.version!r}, {len(applied.measurements)} measurements, "
            f"{len(applied.alarms)} alarms, published every {applied.publisher_period_s} s"
        )
    if received is None:
        click.echo("received: none")
        return
    state_word = "valid" if received.valid else "INVALID"
    click.echo(f"received: version {received.version!r} {received.status} ({state_word})")
    for error in received.errors:
        click.echo(f"  {error.path}: {error.message}")


def _config_state(settings: Settings) -> Path:
    """Where the gateway keeps the remote configuration it applied and received."""
    return settings.storage.dir / "remote-config.sqlite"


def _topology_state(settings: Settings) -> Path:
    """Where the gateway keeps the topology it last published."""
    return settings.storage.dir / "topology.json"


@main.command("set")
@config_option
@click.argument("key")
@click.argument("value")
def set_setting(config_path: Path, key: str, value: str) -> None:
    """Set a local setting KEY to VALUE in the configuration file.

    Local settings: cloud.alarm_publication, cloud.request_timeout_s,
    gateway.outputs_remote_control, storage.quota_mb, time.mode, time.ntp_server.
    Sampling, alarms and the publication period are the cloud's (remote
    configuration): changing them here is refused. Restart the gateway
    (``panelfast run``) for the change to take effect.
    """
    settings = load_config(config_path)
    try:
        state = _config_state(settings)
        applied = None
        if state.exists():
            with ConfigStore(state) as store:
                applied = store.applied()
        stored = edit_config_file(
            config_path, key, value, applied_version=applied.version if applied else None
        )
    except (RemoteConfigReadOnly, ConfigError, StateStoreError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{config_path}: {key} = {stored!r}")
