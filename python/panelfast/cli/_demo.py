"""``panelfast demo``: the gateway's main job on its embedded default.

Starts, on this machine, the reference cloud and the device simulator (a
PM5560 main incomer, an iEM3255 lighting feeder and an IO module), and a
gateway configured for them; then does what a commissioning engineer and the
cloud do: Connect, publish the topology, and the cloud sends a remote
configuration (short periods, so that something happens within seconds).
Samples and alarms are then seen arriving at the cloud.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import click
import uvloop

from panelfast.cli._main import main

if TYPE_CHECKING:
    # The reference cloud (FastAPI, uvicorn, cryptography) is imported only when
    # the demo runs: every other command, `panelfast run` first, does without it.
    from panelfast.embedded import EmbeddedSystem
    from panelfast.gateway import Gateway

#: What the cloud asks for: every second for the main incomer, every 5 s for the rest.
DEMO_CONFIG: dict[str, Any] = {
    "measurements": [
        *(
            {"device": "mb-1", "measurement": m, "period_s": 1}
            for m in (
                "VoltageAN",
                "CurrentA",
                "ActivePower",
                "PowerFactor",
                "Frequency",
                "ActiveEnergyDelivered",
            )
        ),
        *(
            {"device": "mb-2", "measurement": m, "period_s": 5}
            for m in ("VoltageL1N", "ActivePower", "ActiveEnergyImport")
        ),
        *(
            {"device": "io-1", "measurement": m, "period_s": 5}
            for m in ("InputI1", "PulsesI1", "OutputQ1")
        ),
    ],
    "alarms": [
        {
            "id": "main-overcurrent",
            "device": "mb-1",
            "measurement": "CurrentA",
            "condition": "over",
            "threshold": 73.0,
            "hysteresis": 0.5,
            "delay_s": 2,
            "severity": "high",
        },
        {
            "id": "lighting-low-voltage",
            "device": "mb-2",
            "measurement": "VoltageL1N",
            "condition": "under",
            "threshold": 207.0,
            "hysteresis": 3.0,
            "delay_s": 10,
        },
    ],
    "publisher": {"period_s": 5},
}


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}" if n == 1 else f"{n} {thing}s"


def _show(system: EmbeddedSystem, started: float) -> None:
    samples = system.cloud.samples(system.serial)
    events = system.cloud.alarm_events(system.serial)
    total = sum(len(v) for v in samples.values())
    click.echo(
        f"\n[{time.monotonic() - started:5.0f} s] the cloud holds {_count(total, 'sample')} "
        f"of {_count(len(samples), 'measurement')} and {_count(len(events), 'alarm event')}"
    )
    for name, points in sorted(samples.items()):
        t, value = points[-1]
        shown = "nil" if value is None else str(value) if isinstance(value, int) else f"{value:.6g}"
        click.echo(
            f"   {name:<30} {_count(len(points), 'sample'):>12}, last {shown} at "
            f"{time.strftime('%H:%M:%S', time.gmtime(t / 1000))}Z"
        )
    for e in events[-3:]:
        click.echo(f"   alarm {e['alarm']}: {e['state']} (value {e['value']:.6g})")


async def _run(system: EmbeddedSystem, seconds: float, kept: Path | None) -> None:
    from panelfast.control import StorageLock
    from panelfast.daemon import control_api
    from panelfast.gateway import Gateway

    # Ctrl-C and SIGTERM end the demo the same way: summary, Disconnect, clean up.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    started = time.monotonic()
    # Run as `panelfast run` does: the gateway and its control API, so that the
    # CLI works against it from another shell while the demo runs.
    with StorageLock(system.settings.storage.dir):
        async with (
            Gateway(system.settings) as gateway,
            control_api(gateway, system.settings, system.config_path),
        ):
            await _main_job(system, gateway, stop, started, seconds)
    if kept is None:
        click.echo(
            "\nDisconnect: cloud traffic stopped. The demo's temporary folder (the cloud's "
            "and the gateway's state) is removed now; keep it with --dir."
        )
    else:
        click.echo(
            "\nDisconnect: cloud traffic stopped; every sample taken and not yet sent is kept "
            f"in the outbox, {system.settings.storage.dir / 'outbox.sqlite'}."
        )


async def _main_job(
    system: EmbeddedSystem, gateway: Gateway, stop: asyncio.Event, started: float, seconds: float
) -> None:
    """What an installer and the cloud do, then samples and alarms arriving at the cloud."""
    status = await gateway.connect()
    diagnostic = status.diagnostic.value if status.diagnostic else ""
    click.echo(f"Connect: {status.connection.value} — {diagnostic}")
    version = await gateway.publish_topology()
    click.echo(f"Topology published: {len(system.settings.devices)} devices (version {version})")
    system.cloud.set_config(system.serial, {"version": "1", **DEMO_CONFIG})
    click.echo(
        "The cloud sent remote configuration 1: 12 measurements, 2 alarms, publication every 5 s"
    )
    click.echo(f"While it runs, from another shell: panelfast status --config {system.config_path}")
    deadline = started + seconds if seconds > 0 else float("inf")
    while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), min(10.0, left))
        if stop.is_set() or time.monotonic() >= deadline:
            break
        if gateway.status().remote_config.applied_version is None:
            click.echo("waiting for the remote configuration...")
            continue
        _show(system, started)
    if stop.is_set():
        click.echo("\nstopped")
    _show(system, started)
    await gateway.disconnect()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@main.command()
@click.option(
    "--seconds", default=60.0, show_default=True, help="how long to run (0: until Ctrl-C)"
)
@click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    help="keep the cloud's and the gateway's state there (default: a temporary folder)",
)
def demo(seconds: float, folder: Path | None) -> None:
    """Run the gateway's main job on its embedded default: a reference cloud and
    simulated devices on this machine, with nothing else installed."""
    # SIGTERM is Ctrl-C here: whenever it comes, what was started is stopped
    # and the temporary folder removed (while the gateway runs, _run takes both).
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        _demo(seconds, folder)
    except KeyboardInterrupt:
        click.echo("\nstopped")


def _demo(seconds: float, folder: Path | None) -> None:
    from panelfast.embedded import embedded_system

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory(prefix="panelfast-demo-") as tmp:
        where = folder or Path(tmp)
        with embedded_system(where) as system:
            click.echo(f"Reference cloud: {system.cloud.bootstrap_url} (CA {system.cloud.ca_path})")
            for device in system.settings.devices:
                c = device.connection
                click.echo(
                    f"Simulated {device.model:<8} {device.id}: Modbus TCP "
                    f"{getattr(c, 'host', '')}:{getattr(c, 'port', '')}"
                )
            click.echo(f"Gateway configuration: {system.config_path}")
            try:
                uvloop.run(_run(system, seconds, folder))
            finally:
                signal.signal(signal.SIGTERM, _interrupt)  # the loop left the default
