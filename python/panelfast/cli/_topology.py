"""``panelfast topology show|publish``: the devices as the cloud sees them (§5)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import click

from panelfast.cli._cloud import _session
from panelfast.cli._config import config_option, load_config
from panelfast.cli._main import main
from panelfast.config import Settings
from panelfast.exceptions import CloudError, PanelfastError
from panelfast.gateway import publish_topology
from panelfast.models.loader import ModelLibrary
from panelfast.topology import PublishedTopologyStore, Topology, build_topology


def _topology(settings: Settings) -> Topology:
    try:
        library = ModelLibrary(settings.gateway.model_dirs)
        models = {d.model: library.get(d.model) for d in settings.devices}
        return build_topology(settings.identity, settings.devices, models)
    except PanelfastError as exc:
        raise click.ClickException(str(exc)) from None


def _store(settings: Settings) -> PublishedTopologyStore:
    return PublishedTopologyStore(settings.storage.dir / "topology.json")


@main.group()
def topology() -> None:
    """The topology: the gateway's devices, their measurements and outputs."""


@topology.command("show")
@config_option
@click.option("--json", "as_json", is_flag=True, help="print the document itself")
def show(config_path: Path, as_json: bool) -> None:
    """Show the topology, and whether it must be published again."""
    settings = load_config(config_path)
    current = _topology(settings)
    if as_json:
        click.echo(json.dumps(current.document(), indent=2, ensure_ascii=False))
        return
    published = _store(settings).load()
    click.echo(
        f"{len(current.document()['devices'])} devices, {len(current.measurements)} "
        f"measurements, {len(current.outputs)} outputs, {current.size} bytes"
        f"{' (sent through the upload service)' if current.needs_upload else ''}"
    )
    if published is None:
        click.echo("never published: run `panelfast topology publish`")
    elif _store(settings).needs_publish(current):
        click.echo(
            f"devices changed since version {published.topology_version} was published "
            f"({published.published_at}): the topology must be published again"
        )
    else:
        click.echo(f"published as version {published.topology_version} ({published.published_at})")


@topology.command("publish")
@config_option
def publish(config_path: Path) -> None:
    """Publish the topology to the cloud (the gateway must be connected)."""
    settings = load_config(config_path)
    current = _topology(settings)
    session = _session(settings)

    async def go() -> str:
        try:
            return await publish_topology(session.hub, current, _store(settings))
        finally:
            await session.aclose()

    try:
        version = asyncio.run(go())
    except CloudError as exc:
        raise click.ClickException(f"{exc}" + (f"\nhint: {exc.hint}" if exc.hint else "")) from None
    click.echo(f"topology published: version {version}")
