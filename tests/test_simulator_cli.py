"""`panelfast simulate`: one command serves devices until SIGTERM or Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from pymodbus.client import ModbusTcpClient

from panelfast.config import write_secret
from panelfast.models.loader import ModelLibrary
from waiting import PATIENCE_S


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "panelfast", "simulate", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_simulate_prints_endpoints_serves_and_stops_on_sigterm() -> None:
    proc = start("--model", "PM5560:3", "--model", "IO-C", "--port", "0",
                 "--unit-ids-per-port", "2", "--seed", "5", "--json")  # fmt: skip
    try:
        assert proc.stdout is not None
        rows = json.loads(proc.stdout.readline())
        assert [(r["id"], r["model"], r["unit_id"]) for r in rows] == [
            ("pm5560-1", "PM5560", 1),
            ("pm5560-2", "PM5560", 2),
            ("pm5560-3", "PM5560", 1),
            ("io-c-4", "IO-C", 2),
        ]
        assert rows[0]["port"] == rows[1]["port"] != rows[2]["port"] == rows[3]["port"]
        client = ModbusTcpClient(rows[3]["host"], port=rows[3]["port"], timeout=10, retries=0)
        assert client.connect()
        with client:
            volts = client.read_holding_registers(3027, count=2, device_id=1)
            name = client.read_holding_registers(29, count=2, device_id=2)
        assert 220 < client.convert_from_registers(volts.registers, client.DATATYPE.FLOAT32) < 240  # type: ignore[operator]
        assert name.registers == [ord("I") << 8 | ord("O"), ord("-") << 8 | ord("C")]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=PATIENCE_S)
    assert proc.returncode == 0, err
    assert "simulator stopped" in err


def test_simulate_plain_output_and_ctrl_c() -> None:
    proc = start("--model", "iEM3255", "--devices", "2", "--port", "0")
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline(), proc.stdout.readline()]
        assert all(line.startswith("modbus-tcp://127.0.0.1:") for line in lines)
        assert all(line.rstrip().endswith("unit 1  iEM3255") for line in lines)
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=PATIENCE_S)
    assert proc.returncode == 0, err


def test_simulate_unknown_model_is_a_clear_error() -> None:
    proc = start("--model", "PM9999")
    _, err = proc.communicate(timeout=PATIENCE_S)
    assert proc.returncode == 1
    known = ", ".join(ModelLibrary().names())
    assert f"PM9999: model: no model of that name (known: {known})" in err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_simulate_serves_the_devices_of_a_gateway_configuration(tmp_path: Path) -> None:
    port = free_port()
    write_secret(tmp_path / "claim.key", "ab" * 32)  # checked as every command checks it
    config = tmp_path / "panelfast.toml"
    config.write_text(
        f"""
[identity]
serial = "PS-0042-7A19"
mac = "aa:bb:cc:dd:ee:ff"
claim_key_file = "claim.key"

[cloud]
bootstrap_url = "https://127.0.0.1:8443"

[[devices]]
id = "mb-1"
name = "Main incomer"
model = "PM5560"
connection = {{ type = "tcp", host = "127.0.0.1", port = {port}, unit_id = 1 }}

[[devices]]
id = "io-1"
name = "IO module"
model = "IO-C"
connection = {{ type = "tcp", host = "127.0.0.1", port = {port}, unit_id = 7 }}

[[devices]]
id = "lighting"
name = "Lighting"
model = "iEM3255"
connection = {{ type = "rtu", port = "/dev/ttyUSB0", unit_id = 3 }}
""",
        encoding="utf-8",
    )
    proc = start("--config", str(config), "--json")
    try:
        assert proc.stdout is not None
        rows = json.loads(proc.stdout.readline())
        assert [(r["id"], r["port"], r["unit_id"]) for r in rows] == [
            ("mb-1", port, 1),
            ("io-1", port, 7),
        ]
        client = ModbusTcpClient("127.0.0.1", port=port, timeout=10, retries=0)
        assert client.connect()
        with client:
            name = client.read_holding_registers(29, count=2, device_id=7)
        assert name.registers == [ord("I") << 8 | ord("O"), ord("-") << 8 | ord("C")]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=PATIENCE_S)
    assert proc.returncode == 0, err
    assert "lighting: on a serial line" in err
