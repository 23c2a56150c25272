"""``panelfast remote-config``: check a document offline, show what is applied;
``panelfast set``: change a local setting in the configuration file.

Read-only by design (§6): nothing here changes the applied configuration;
only the cloud does, and ``panelfast set`` refuses what the cloud manages.
"""

from __future__ import annotations

from pathlib import Path

import click

from panelfast.cli._daemon import call, config_option, fail, load, not_running
from panelfast.cli._main import main
from panelfast.exceptions import (
    ConfigError,
    RemoteConfigReadOnly,
    RemoteConfigRejected,
    StateStoreError,
)
from panelfast.local_settings import edit_config_file
from panelfast.remote_config import ConfigStore, ReceivedVersion, validate_bytes
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
    topology_state = load(config_path).storage.dir / "topology.json"
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
    """Show the applied configuration, the last version received and the history."""
    answer = call(config_path, "GET", "/v1/remote-config", text=True)
    if answer is not None:
        click.echo(answer.text(), nl=False)
        return
    from panelfast.control import remote_config_text
    from panelfast.remote_config import RemoteConfigStatus

    settings = load(config_path)
    state = settings.storage.dir / "remote-config.sqlite"
    applied = received = None
    history: list[ReceivedVersion] = []
    if state.exists():  # else the gateway never stored one: nothing to create here
        try:
            with ConfigStore(state) as store:
                applied, received = store.applied(), store.last_received()
                history = store.history(10)
        except StateStoreError as exc:
            fail(str(exc))
    shown = RemoteConfigStatus(
        applied_version=applied.version if applied else None,
        received_version=received.version if received else None,
        valid=received.valid if received else None,
        errors=tuple((e.path, e.message) for e in received.errors) if received else (),
        measurements=len(applied.measurements) if applied else 0,
        alarms=len(applied.alarms) if applied else 0,
        publisher_period_s=applied.publisher_period_s if applied else None,
    )
    not_running("what it stored last:")
    click.echo(remote_config_text(shown, applied, history), nl=False)


@main.command("set")
@config_option
@click.argument("key")
@click.argument("value")
def set_setting(config_path: Path, key: str, value: str) -> None:
    """Set a local setting KEY to VALUE, in the running gateway and its configuration file.

    Local settings: cloud.request_timeout_s, publication.method (cloud, email or none),
    storage.quota_mb, time.mode, time.ntp_server. Outputs remote control is
    enabled with `panelfast outputs remote-control enable` (it asks).
    Sampling, alarms and the publication period are the cloud's (remote
    configuration): changing them here is refused.
    """
    answer = call(config_path, "PUT", f"/v1/settings/{key}", {"value": value})
    if answer is not None:
        click.echo(f"{config_path}: {key} = {answer.json()['value']!r}")
        return
    settings = load(config_path)
    if key == "publication.method":
        from panelfast.cli._publication import switch_here

        switch_here(config_path, settings, value)
        return
    try:
        state = settings.storage.dir / "remote-config.sqlite"
        applied = None
        if state.exists():
            with ConfigStore(state) as store:
                applied = store.applied()
        stored = edit_config_file(
            config_path, key, value, applied_version=applied.version if applied else None
        )
    except (RemoteConfigReadOnly, ConfigError, StateStoreError) as exc:
        raise click.ClickException(str(exc)) from None
    not_running("the file is changed; the gateway takes it at its next start")
    click.echo(f"{config_path}: {key} = {stored!r}")
