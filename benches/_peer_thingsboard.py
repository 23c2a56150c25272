"""The ThingsBoard IoT Gateway side of ``make bench-peers``.

Installed from PyPI into its own virtualenv (``benches/.peers/tb-venv``,
git-ignored; pinned, with the pymodbus its Modbus connector pins, so it does
not install anything itself at start-up), configured as its documentation
shows for a Modbus TCP master: one slave per simulated device, one
``32float`` time series per point, polled every second, reported as
received (its default). It sends its telemetry over MQTT to a local broker
(Debian's mosquitto, started here on a free port) that stands for the
ThingsBoard platform, with ``_thingsboard_platform.py`` answering the one
request the gateway waits for (its session limits: none). ``mosquitto_sub``
records every telemetry message with its arrival time; a value counts as
delivered if its reading time is in the window and it arrived at the broker
by the end of the grace period.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PEERS = HERE / ".peers"
VENV = PEERS / "tb-venv"
VERSION = "3.8.5"
#: What its Modbus connector requires (it pip-installs them at start-up otherwise).
REQUIREMENTS = (
    f"thingsboard-gateway=={VERSION}",
    "pymodbus==3.9.2",
    "pyserial",
    "pyserial-asyncio",
)
NAME = f"ThingsBoard IoT Gateway {VERSION}"
TELEMETRY = "v1/gateway/telemetry"
MOSQUITTO = ("/usr/sbin/mosquitto", "/usr/bin/mosquitto_sub")


def ensure_installed() -> None:
    """Debian's mosquitto and the gateway's virtualenv, each installed once."""
    if not all(Path(p).exists() for p in MOSQUITTO):
        print("   installing Debian's mosquitto and mosquitto-clients", flush=True)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "install", "-y", "-qq", "mosquitto", "mosquitto-clients"],
                       check=True, env=env, stdout=subprocess.DEVNULL)  # fmt: skip
    marker = VENV / "requirements.txt"
    if marker.exists() and marker.read_text() == "\n".join(REQUIREMENTS):
        return
    print(f"   installing {NAME} into {VENV.relative_to(HERE.parent)}", flush=True)
    shutil.rmtree(VENV, ignore_errors=True)
    # The system's interpreter, not this virtualenv's: nothing of panelfast's leaks in.
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(VENV)], check=True)
    pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, *REQUIREMENTS], check=True)
    marker.write_text("\n".join(REQUIREMENTS))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _package_config(name: str) -> Any:
    site = next((VENV / "lib").glob("python3*/site-packages"))
    return json.loads((site / "thingsboard_gateway" / "config" / name).read_text())


def write_config(folder: Path, broker_port: int, endpoints: list[dict[str, Any]],
                 points: int) -> Path:  # fmt: skip
    """The gateway's configuration folder: its main file, the Modbus connector, quiet logs."""
    config = folder / "config"
    config.mkdir(parents=True)
    (folder / "logs").mkdir()
    main = _package_config("tb_gateway.json")
    tb = main["thingsboard"]
    tb.update(host="127.0.0.1", port=broker_port, remoteConfiguration=False, remoteShell=False)
    tb["statistics"]["enable"] = False
    tb["security"] = {"type": "accessToken", "accessToken": "bench"}
    for key in ("rateLimits", "dpRateLimits", "messagesRateLimits", "deviceMessagesRateLimits",
                "deviceRateLimits", "deviceDpRateLimits"):  # fmt: skip
        tb[key] = "0:0"  # no client-side throttle: the platform sets none either
    main["connectors"] = [{"type": "modbus", "name": "Modbus", "configuration": "modbus.json"}]
    (config / "tb_gateway.json").write_text(json.dumps(main, indent=2))
    # Warnings only, as panelfast runs (--log-level warning): logging is not what is measured.
    logs = _package_config("logs.json")
    for logger in logs["loggers"].values():
        logger["level"] = "WARNING"
    (config / "logs.json").write_text(json.dumps(logs, indent=2))
    slaves = [
        {
            "host": e["host"], "port": e["port"], "type": "tcp", "method": "socket",
            "unitId": e["unit_id"], "deviceName": e["id"], "deviceType": "meter",
            "timeout": 1, "byteOrder": "BIG", "wordOrder": "BIG", "retries": 3,
            "retryOnEmpty": True, "retryOnInvalid": True, "pollPeriod": 1000,
            "connectAttemptTimeMs": 5000, "connectAttemptCount": 5,
            "waitAfterFailedAttemptsMs": 300000,
            "attributes": [], "attributeUpdates": [], "rpc": [],
            "timeseries": [
                {"tag": f"P{k:05d}", "type": "32float", "functionCode": 3,
                 "objectsCount": 2, "address": 2 * k}
                for k in range(points)
            ],
        }
        for e in endpoints
    ]  # fmt: skip
    modbus = {"logLevel": "WARNING", "master": {"slaves": slaves}}
    (config / "modbus.json").write_text(json.dumps(modbus))
    return config


@contextlib.contextmanager
def thingsboard(folder: Path, endpoints: list[dict[str, Any]], points: int) -> Iterator[int]:
    """Broker, platform stand-in, recorder and gateway running; yields the gateway's pid.

    The recorder writes ``telemetry.txt`` (arrival time, payload per line)."""
    folder.mkdir(parents=True)
    port = free_port()
    (folder / "mosquitto.conf").write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_queued_messages 100000\n"
    )
    config = write_config(folder, port, endpoints, points)
    with contextlib.ExitStack() as stack:
        log = stack.enter_context((folder / "processes.log").open("ab"))

        def start(argv: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
            process = subprocess.Popen(argv, stderr=log, **kwargs)
            stack.callback(_stop, process)
            return process

        start([MOSQUITTO[0], "-c", str(folder / "mosquitto.conf")])
        python = str(VENV / "bin" / "python")
        platform = start([python, str(HERE / "_thingsboard_platform.py"), str(port)],
                         stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert platform.stdout is not None
        if platform.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the broker or the platform stand-in did not start: {folder}")
        recording = stack.enter_context((folder / "telemetry.txt").open("wb"))
        start([MOSQUITTO[1], "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-t", TELEMETRY,
               "-F", "%U %p"], stdout=recording)  # fmt: skip
        gateway = start([str(VENV / "bin" / "thingsboard-gateway")], cwd=folder,
                        env={**os.environ, "TB_GW_CONFIG_DIR": str(config)},
                        stdout=log)  # fmt: skip

        # Not waiting for its first telemetry: at 100,000 points/s none comes for minutes
        # (it reads, and its memory grows); the warm-up is the same for both gateways.
        time.sleep(2)
        if gateway.poll() is not None:
            raise RuntimeError(f"{NAME} exited; see {folder}/logs and processes.log")
        yield gateway.pid


def delivered(folder: Path, t0_ms: int, t1_ms: int, deadline_s: float) -> int:
    """Values read in [t0, t1) that reached the broker by ``deadline_s`` (Unix seconds)."""
    count = 0
    with (folder / "telemetry.txt").open("rb") as recorded:
        for line in recorded:
            arrived, _, payload = line.partition(b" ")
            if float(arrived) > deadline_s:
                break
            for readings in json.loads(payload).values():
                for reading in readings:
                    if t0_ms <= reading["ts"] < t1_ms:
                        count += len(reading["values"])
    return count
