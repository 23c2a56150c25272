"""``panelfast modbus read``: read a device's registers now, for commissioning.

It polls the device once through the same engine the gateway uses, so what
it prints (values, or why there are none) is what the gateway will see.
"""

from __future__ import annotations

import re
import time
from typing import Any

import click

from panelfast._native import Field, ModbusEngine, ModbusPoint
from panelfast.cli._main import main
from panelfast.exceptions import PanelfastError
from panelfast.models import WordOrder
from panelfast.register_types import TYPES, DataType, register_count


@main.group()
def modbus() -> None:
    """Talk to Modbus devices directly (TCP, RTU over TCP, serial RTU)."""


def _connection(target: str, transport: str | None, serial: dict[str, Any]) -> dict[str, Any]:
    """Engine arguments for TARGET: ``host[:port]`` or a serial port path."""
    if transport is None:
        transport = "rtu" if target.startswith("/") else "tcp"
    if transport == "rtu":
        return {"transport": "rtu", "serial_port": target, **serial}
    host, _, port = target.rpartition(":") if ":" in target else (target, "", "502")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise click.BadParameter(f"{target!r} is not host[:port]", param_hint="TARGET")
    return {"transport": transport, "host": host, "port": int(port)}


#: What each read function reads, one and many.
_TABLES = {
    1: ("coil", "coils"),
    2: ("discrete input", "discrete inputs"),
    3: ("holding register", "holding registers"),
    4: ("input register", "input registers"),
}
#: How the engine names a failed read: ``read <function>@<start>+<count>: <why>``.
_ENGINE_READ = re.compile(r"read (\d+)@(\d+)\+(\d+): (.*)", re.DOTALL)
_NEXT_ATTEMPT = re.compile(r"; next attempt in \d+ ms$")


def _failure(target: str, unit_id: int, message: str) -> str:
    """The engine's ``read 3@3027+2: transport error: ...`` in words, naming the device."""
    device = f"{target} (unit {unit_id})"
    read = _ENGINE_READ.fullmatch(message)
    if read is None:
        return f"{device}: {message}"
    function, start, count = (int(read.group(k)) for k in (1, 2, 3))
    one, many = _TABLES.get(function, ("register", "registers"))
    why = read.group(4).removeprefix("transport error: ")  # what follows says which
    why = _NEXT_ATTEMPT.sub("", why)  # the engine's own retry: this read ends here
    return (
        f"reading {count} {one if count == 1 else many} at address {start} "
        f"from {device} failed: {why}"
    )


@modbus.command()
@click.argument("target")
@click.option(
    "--transport",
    type=click.Choice(["tcp", "rtu-over-tcp", "rtu"]),
    help="Default: rtu when TARGET is a path (/dev/ttyUSB0), tcp otherwise.",
)
@click.option("--unit", "unit_id", default=1, show_default=True, help="Unit id (slave id).")
@click.option(
    "--function",
    type=click.Choice(["1", "2", "3", "4"]),
    default="3",
    show_default=True,
    help="1 coils, 2 discrete inputs, 3 holding registers, 4 input registers.",
)
@click.option("--address", type=int, required=True, help="Zero-based address, as on the wire.")
@click.option("--type", "data_type", type=click.Choice(TYPES), default="UINT16", show_default=True)
@click.option(
    "--order",
    type=click.Choice(["ABCD", "CDAB", "BADC", "DCBA"]),
    default="ABCD",
    show_default=True,
)
@click.option("--count", default=1, show_default=True, help="Consecutive values to read.")
@click.option("--length", default=8, show_default=True, help="ASCII: registers per value.")
@click.option("--scale", default=1.0, show_default=True)
@click.option("--timeout-ms", default=1000, show_default=True)
@click.option("--baud", "baud_rate", default=19200, show_default=True)
@click.option("--parity", type=click.Choice(["none", "even", "odd"]), default="even")
@click.option("--stop-bits", type=click.Choice(["1", "2"]), default="1")
@click.option("--data-bits", type=click.Choice(["7", "8"]), default="8")
@click.option("--raw", is_flag=True, help="Also print the registers as read, in hex.")
def read(
    target: str,
    transport: str | None,
    unit_id: int,
    function: str,
    address: int,
    data_type: DataType,
    order: WordOrder,
    count: int,
    length: int,
    scale: float,
    timeout_ms: int,
    baud_rate: int,
    parity: str,
    stop_bits: str,
    data_bits: str,
    raw: bool,
) -> None:
    """Read COUNT values from TARGET (host[:port] or a serial port) and print them."""
    serial = {
        "baud_rate": baud_rate,
        "parity": parity,
        "stop_bits": int(stop_bits),
        "data_bits": int(data_bits),
    }
    code = int(function)
    width = 1 if code in (1, 2) else register_count(data_type, length)
    addresses = [address + k * width for k in range(count)]
    engine = ModbusEngine()
    try:
        # BITMAP reads the whole register; no sentinel: show the raw value.
        points = [
            ModbusPoint(code, Field(a, data_type, order, scale, 0.0, False, 0, 16, length))
            for a in addresses
        ]
        engine.add_device(
            "device",
            points=points,
            unit_id=unit_id,
            timeout_ms=timeout_ms,
            period_ms=100,  # the first cycle starts on the next 100 ms tick
            retries=0,
            **_connection(target, transport, serial),
        )
        engine.start()
        deadline = time.monotonic() + 2 + 8 * timeout_ms / 1000
        while engine.diagnostics()[0].cycles < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        values, integers, valid, _ = engine.snapshot()
        texts = engine.texts()
        diagnostics = engine.diagnostics()[0]
        blocks = engine.raw_blocks("device")
    except (PanelfastError, ValueError, OverflowError) as e:
        raise click.ClickException(str(e)) from e
    finally:
        engine.stop()
    for k, at in enumerate(addresses):
        if k in texts:
            shown = repr(texts[k])
        elif not valid[k]:
            shown = "not available"
        elif integers[k] != -(2**63):
            shown = str(int(integers[k]))
        else:
            shown = repr(float(values[k]))
        click.echo(f"{at:>5}  {shown}")
    if raw:
        for function_code, start, _, registers in blocks:
            words = "no data" if registers is None else " ".join(f"{r:#06x}" for r in registers)
            click.echo(f"raw {function_code}@{start}: {words}")
    error = diagnostics.last_error
    if error is not None:
        raise click.ClickException(_failure(target, unit_id, error.message))
    click.echo(f"round trip {diagnostics.rtt_last_ms:.1f} ms")
