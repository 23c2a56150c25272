"""Independent Modbus peers for the acquisition tests: pymodbus servers and encoders.

Register images are built with pymodbus's own ``convert_to_registers`` (big
and little word order) and :mod:`struct` for the byte-swapped orders, so the
engine's decoding is checked against code it shares nothing with.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import AsyncIterator, Sequence
from typing import Any

from pymodbus.client import ModbusTcpClient
from pymodbus.framer import FramerType
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

STRUCT = {
    "INT16": "h", "UINT16": "H", "INT32": "i", "UINT32": "I",
    "INT64": "q", "UINT64": "Q", "FLOAT32": "f", "FLOAT64": "d",
}  # fmt: skip
PYMODBUS_TYPE = {
    "INT16": ModbusTcpClient.DATATYPE.INT16,
    "UINT16": ModbusTcpClient.DATATYPE.UINT16,
    "INT32": ModbusTcpClient.DATATYPE.INT32,
    "UINT32": ModbusTcpClient.DATATYPE.UINT32,
    "INT64": ModbusTcpClient.DATATYPE.INT64,
    "UINT64": ModbusTcpClient.DATATYPE.UINT64,
    "FLOAT32": ModbusTcpClient.DATATYPE.FLOAT32,
    "FLOAT64": ModbusTcpClient.DATATYPE.FLOAT64,
}


def encode(value: float, data_type: str, order: str) -> list[int]:
    """Registers holding ``value`` as a device with this word order sends them."""
    if order in ("ABCD", "CDAB"):
        word_order = "big" if order == "ABCD" else "little"
        return ModbusTcpClient.convert_to_registers(value, PYMODBUS_TYPE[data_type], word_order)
    raw = struct.pack(">" + STRUCT[data_type], value)
    words = [raw[k : k + 2] for k in range(0, len(raw), 2)]
    if order == "DCBA":
        words.reverse()
    return [int.from_bytes(w[::-1], "big") for w in words]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def sim_device(
    unit_id: int,
    holding: Sequence[int] = (),
    inputs: Sequence[int] = (),
    coils: Sequence[bool] = (),
    discrete: Sequence[bool] = (),
    missing: Sequence[int] = (),
) -> SimDevice:
    """A device whose tables start at wire address 0; holding registers at
    ``missing`` addresses do not exist (reads over them get exception 0x02)."""
    hr: list[SimData] = []
    at = 0
    for gap in [*sorted(missing), len(holding)]:
        if gap > at:
            hr.append(SimData(at, values=list(holding[at:gap]), datatype=DataType.REGISTERS))
        if gap < len(holding):
            hr.append(SimData(gap, count=1, datatype=DataType.INVALID))
        at = gap + 1

    def table(values: Sequence[int] | Sequence[bool], datatype: DataType) -> list[SimData]:
        zero = False if datatype == DataType.BITS else 0
        return [SimData(0, values=list(values) or [zero], datatype=datatype)]

    return SimDevice(
        unit_id,
        simdata=(
            table(coils, DataType.BITS),
            table(discrete, DataType.BITS),
            hr or table([], DataType.REGISTERS),
            table(inputs, DataType.REGISTERS),
        ),
    )


@contextlib.asynccontextmanager
async def tcp_server(
    devices: list[SimDevice], framer: FramerType = FramerType.SOCKET, **options: Any
) -> AsyncIterator[int]:
    """Serve ``devices`` on 127.0.0.1; yields the port."""
    port = free_port()
    server = ModbusTcpServer(devices, address=("127.0.0.1", port), framer=framer, **options)
    await server.serve_forever(background=True)  # returns once it listens
    try:
        yield port
    finally:
        await server.shutdown()
