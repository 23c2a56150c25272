"""``panelfast topology show|publish``: the devices as the cloud sees them (§5)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import click

from panelfast.cli._daemon import call, config_option, holding_storage, load, not_running
from panelfast.cli._main import main
from panelfast.config import Settings
from panelfast.exceptions import CloudError, PanelfastError
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
    answer = call(config_path, "GET", "/v1/topology")
    if answer is not None:
        shown = answer.json()
        document = shown["document"]
        published = shown["published_version"], shown["published_at"], shown["must_be_published"]
    else:
        settings = load(config_path)
        current = _topology(settings)
        document = current.document()
        last = _store(settings).load()
        published = (
            (last.topology_version, last.published_at, _store(settings).needs_publish(current))
            if last
            else (None, None, True)
        )
    if as_json:
        click.echo(json.dumps(document, indent=2, ensure_ascii=False))
        return
    devices = document["devices"]
    measurements = sum(len(d["measurements"]) for d in devices)
    outputs = sum(len(d.get("outputs", [])) for d in devices)
    click.echo(f"{len(devices)} devices, {measurements} measurements, {outputs} outputs")
    version, at, must = published
    if version is None:
        click.echo("never published: run `panelfast topology publish`")
    elif must:
        click.echo(
            f"devices changed since version {version} was published ({at}): "
            "the topology must be published again"
        )
    else:
        click.echo(f"published as version {version} ({at})")


@topology.command("publish")
@config_option
def publish(config_path: Path) -> None:
    """Publish the topology to the cloud (the gateway must be connected)."""
    answer = call(config_path, "POST", "/v1/topology/publish")
    if answer is not None:
        click.echo(f"topology published: version {answer.json()['topology_version']}")
        return
    from panelfast.cloud import CloudSession
    from panelfast.topology_publication import publish_topology

    settings = load(config_path)
    current = _topology(settings)

    async def go() -> str:
        session = CloudSession(settings)
        try:
            return await publish_topology(session.hub, current, _store(settings))
        finally:
            await session.aclose()

    try:
        with holding_storage(settings):
            version = asyncio.run(go())
    except CloudError as exc:
        raise click.ClickException(f"{exc}" + (f"\nhint: {exc.hint}" if exc.hint else "")) from None
    not_running("the topology was published from here")
    click.echo(f"topology published: version {version}")
