"""``panelfast simulate``: serve simulated devices over Modbus TCP until stopped."""

from __future__ import annotations

import json
import re
import signal
import threading
from dataclasses import replace
from pathlib import Path
from types import FrameType

import click

from panelfast.cli._config import load_config
from panelfast.cli._main import main
from panelfast.exceptions import PanelfastError
from panelfast.models import DeviceModel
from panelfast.models.loader import ModelLibrary
from panelfast.simulator import (
    Endpoint,
    Faults,
    SimulatedDevice,
    Simulator,
    Transport,
    devices_for_settings,
    fleet,
    synthetic_model,
)


def _parse_models(
    library: ModelLibrary, specs: tuple[str, ...], default_count: int
) -> list[tuple[DeviceModel, int]]:
    out: list[tuple[DeviceModel, int]] = []
    for spec in specs or ("PM5560",):
        name, _, count = spec.partition(":")
        try:
            n = int(count) if count else default_count
        except ValueError:
            raise click.BadParameter(
                f"{spec!r}: use NAME or NAME:COUNT", param_hint="--model"
            ) from None
        if n < 1:
            raise click.BadParameter(
                f"{spec!r}: the count must be at least 1", param_hint="--model"
            )
        synthetic = re.fullmatch(r"synthetic-(\d+)", name)
        model = synthetic_model(int(synthetic[1])) if synthetic else library.get(name)
        out.append((model, n))
    return out


def build_devices(
    fleets: list[tuple[DeviceModel, int]],
    *,
    port: int,
    unit_ids_per_port: int,
    faults: Faults,
    dead: int,
    transport: Transport = "tcp",
    serial_port: str = "",
    baud_rate: int = 19200,
) -> list[SimulatedDevice]:
    """Number devices across fleets; group them on ports (or one RTU bus) as asked."""
    total = sum(n for _, n in fleets)
    if transport == "rtu":
        if not serial_port:
            raise click.UsageError("--transport rtu needs --serial-port")
        if total > 247:
            raise click.UsageError("an RTU bus holds at most 247 devices (unit ids 1..247)")
        unit_ids_per_port = 247
    devices: list[SimulatedDevice] = []
    for model, count in fleets:
        devices += fleet(
            model,
            count,
            unit_ids_per_port=unit_ids_per_port,
            base_port=port,
            first=len(devices),
            endpoint_prefix="fleet",
            transport=transport,
            serial_port=serial_port,
            baud_rate=baud_rate,
            faults=faults,
        )
    # The last ``dead`` devices of the whole layout do not answer.
    return [
        replace(d, faults=faults._replace(dead=k >= total - dead)) for k, d in enumerate(devices)
    ]


@main.command()
@click.option(
    "--model",
    "models",
    multiple=True,
    metavar="NAME[:COUNT]",
    help="Device model to simulate (repeatable); COUNT defaults to --devices. Default: PM5560. "
    "synthetic-N: N FLOAT32 points in registers 0, 2, 4... (benchmarks).",
)
@click.option("--devices", "count", type=click.IntRange(1, 100_000), default=1, show_default=True)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=5020,
    show_default=True,
    help="First TCP port; each further port is the next one. 0: free ports.",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--unit-ids-per-port",
    type=click.IntRange(0, 255),
    default=0,
    show_default=True,
    help="Put this many devices behind each port as unit ids 1..N (0: one device per port).",
)
@click.option(
    "--transport",
    type=click.Choice(["tcp", "rtu-over-tcp", "rtu"]),
    default="tcp",
    show_default=True,
    help="Modbus TCP, RTU frames over TCP, or RTU on --serial-port.",
)
@click.option(
    "--serial-port",
    default="",
    help="rtu: the serial line to serve, e.g. one end of "
    "`socat pty,raw,echo=0,link=/tmp/sim pty,raw,echo=0,link=/tmp/gw`.",
)
@click.option("--baud-rate", type=int, default=19200, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same values.")
@click.option("--tick-ms", type=click.IntRange(1, 60_000), default=100, show_default=True)
@click.option(
    "--latency-ms",
    type=click.IntRange(0, 60_000),
    default=0,
    help="Extra delay before every answer (slow devices).",
)
@click.option(
    "--busy-fraction",
    type=click.FloatRange(0, 1),
    default=0.0,
    help="Share of requests answered 'busy' (exception 0x06).",
)
@click.option("--dead", type=click.IntRange(0), default=0, help="The last N devices never answer.")
@click.option(
    "--models-dir",
    "model_dirs",
    multiple=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Extra folder of device model files (repeatable).",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Serve the devices of this gateway configuration file (TCP ones) instead of --model.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the endpoints as one JSON line.")
def simulate(
    models: tuple[str, ...],
    count: int,
    port: int,
    host: str,
    unit_ids_per_port: int,
    transport: Transport,
    serial_port: str,
    baud_rate: int,
    seed: int,
    tick_ms: int,
    latency_ms: int,
    busy_fraction: float,
    dead: int,
    model_dirs: tuple[Path, ...],
    config_file: Path | None,
    as_json: bool,
) -> None:
    """Serve simulated meters and IO modules over Modbus until Ctrl-C or SIGTERM.

    Values are realistic, consistent and reproducible (same --seed, same
    values). Examples:

    \b
      panelfast simulate --model PM5560 --devices 100 --port 5020
      panelfast simulate --model PM5560:250 --model IO-C:4 --unit-ids-per-port 254
      panelfast simulate --config panelfast.toml
      panelfast simulate --model synthetic-1000 --devices 100 --port 6000
    """
    try:
        if config_file is not None:
            settings = load_config(config_file)
            library = ModelLibrary((*settings.gateway.model_dirs, *model_dirs))
            devices, serial = devices_for_settings(settings, library)
            faults = Faults(latency_ms=latency_ms, busy_fraction=busy_fraction)
            devices = [
                replace(d, faults=faults._replace(dead=k >= len(devices) - dead))
                for k, d in enumerate(devices)
            ]
            for device_id in serial:
                click.echo(f"{device_id}: on a serial line, not served from --config", err=True)
            if not devices:
                raise click.ClickException(f"{config_file}: no Modbus TCP device to serve")
        else:
            library = ModelLibrary(model_dirs)
            fleets = _parse_models(library, models, count)
            devices = build_devices(
                fleets,
                port=port,
                unit_ids_per_port=unit_ids_per_port,
                faults=Faults(latency_ms=latency_ms, busy_fraction=busy_fraction),
                dead=dead,
                transport=transport,
                serial_port=serial_port,
                baud_rate=baud_rate,
            )
        sim = Simulator(devices, seed=seed, host=host, tick_ms=tick_ms)
        endpoints = sim.start()
    except PanelfastError as exc:
        raise click.ClickException(str(exc)) from None

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        if as_json:
            rows = [
                {"id": d.id, "model": d.model.name, **endpoints[d.id]._asdict()} for d in devices
            ]
            click.echo(json.dumps(rows), nl=True)
        else:
            _print_endpoints(devices, endpoints)
        click.echo(f"serving {len(devices)} devices; Ctrl-C to stop", err=True)
        # Wake up now and then: a signal handler runs only between bytecodes.
        while not stop.wait(0.5):
            pass
    finally:
        sim.stop()
    click.echo("simulator stopped", err=True)


def _print_endpoints(devices: list[SimulatedDevice], endpoints: dict[str, Endpoint]) -> None:
    by_place: dict[tuple[str, int, Transport], list[SimulatedDevice]] = {}
    for d in devices:
        e = endpoints[d.id]
        by_place.setdefault((e.host, e.port, e.transport), []).append(d)
    for (host, port, transport), group in by_place.items():
        units = [d.unit_id for d in group]
        names = sorted({d.model.name for d in group})
        unit_text = f"unit {units[0]}" if len(units) == 1 else f"units {min(units)}..{max(units)}"
        place = f"rtu:{host}" if transport == "rtu" else f"modbus-{transport}://{host}:{port}"
        click.echo(f"{place}  {unit_text}  {', '.join(names)}")
