"""``panelfast modbus read`` against a pymodbus server, run as users run it."""

from __future__ import annotations

import asyncio
import sys

from modbus_peers import encode, free_port, sim_device, tcp_server
from waiting import PATIENCE_S


async def panelfast(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "panelfast", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), PATIENCE_S)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_read_prints_decoded_values() -> None:
    holding = encode(230.5, "FLOAT32", "CDAB") + encode(-7.25, "FLOAT32", "CDAB")
    async with tcp_server([sim_device(3, holding)]) as port:
        code, out, err = await panelfast(
            "modbus", "read", f"127.0.0.1:{port}", "--unit", "3", "--address", "0",
            "--type", "FLOAT32", "--order", "CDAB", "--count", "2", "--raw",
            "--timeout-ms", "5000",  # the peer answers from this test's loop
        )  # fmt: skip
    assert code == 0, err
    lines = out.splitlines()
    assert lines[:2] == ["    0  230.5", "    2  -7.25"]
    assert lines[2] == "raw 3@0: " + " ".join(f"{r:#06x}" for r in holding)
    assert lines[3].startswith("round trip ")


async def test_read_reports_why_there_is_no_value() -> None:
    async with tcp_server([sim_device(1, [1, 2, 3])]) as port:
        code, out, err = await panelfast(
            "modbus", "read", f"127.0.0.1:{port}", "--address", "10", "--timeout-ms", "5000"
        )  # fmt: skip
    assert code == 1
    assert "   10  not available" in out
    assert "exception 0x02 IllegalDataAddress" in err
    code, _, err = await panelfast(
        "modbus", "read", f"127.0.0.1:{free_port()}", "--address", "0", "--timeout-ms", "200"
    )
    assert code == 1
    assert "cannot connect" in err
    code, _, err = await panelfast("modbus", "read", "host:99999", "--address", "0")
    assert code == 2
    assert "not host[:port]" in err
