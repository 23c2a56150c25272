"""A gateway's world at the product ceiling, for the gateway-level benchmarks.

The reference cloud runs as its own process (``panelfast refcloud serve``), so
its ingestion never shares a process, or a GIL, with what is measured. The
devices are the simulator's synthetic meters (FLOAT32 points in consecutive
registers), served by the Rust core on its own threads in the benchmark's
process. The gateway is configured as a user would: a TOML file naming its
devices and a folder holding the synthetic model as a model file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from panelfast.config import Settings, load_settings, write_secret
from panelfast.models import DeviceModel
from panelfast.refcloud.client import OperatorClient, RefCloudProcess
from panelfast.simulator import SimulatedDevice, Simulator, synthetic_model

SERIAL = "PS-0042-BE6C"


@dataclass(frozen=True, slots=True)
class BenchSystem:
    folder: Path
    cloud: RefCloudProcess
    simulator: Simulator | None
    config_path: Path
    settings: Settings
    devices: tuple[str, ...]
    model: DeviceModel

    @property
    def operator(self) -> OperatorClient:
        return self.cloud.operator


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + " }"
    return json.dumps(str(v))  # a JSON string is a valid TOML basic string


def _toml(document: dict[str, Any]) -> str:
    out = []
    for key, body in document.items():
        if isinstance(body, list) and body and isinstance(body[0], dict):
            for item in body:
                out.append(f"[[{key}]]")
                out += [f"{k} = {_toml_value(v)}" for k, v in item.items()]
                out.append("")
        elif isinstance(body, dict):
            out.append(f"[{key}]")
            out += [f"{k} = {_toml_value(v)}" for k, v in body.items()]
            out.append("")
        else:
            out.insert(0, f"{key} = {_toml_value(body)}")
    return "\n".join(out)


def model_file(model: DeviceModel) -> str:
    """The synthetic model as the model file a user would drop in a model folder."""
    head = {"name": model.name, "vendor": model.vendor, "description": model.description}
    lines = [f"{k} = {_toml_value(v)}" for k, v in head.items()]
    lines.append("measurements = [")
    for m in model.measurements:
        entry = {
            "id": m.id,
            "name": m.name,
            "unit": m.unit,
            "kind": m.kind,
            "function": m.function,
            "address": m.address,
            "type": m.type,
            "quantity": m.quantity,
        }
        lines.append(f"  {_toml_value(entry)},")
    lines.append("]")
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def bench_system(
    folder: Path,
    *,
    devices: int = 10,
    points: int = 500,
    simulate: bool = True,
    poll_period_ms: int = 1000,
    endpoints: Sequence[tuple[str, int, int]] = (),
) -> Iterator[BenchSystem]:
    """The reference cloud (a process), the simulated meters, and a gateway's configuration.

    ``endpoints`` (host, port, unit id per device), with ``simulate=False``: the
    devices are served elsewhere (another process's simulator)."""
    folder.mkdir(parents=True, exist_ok=True)
    model = synthetic_model(points)
    models = folder / "models"
    models.mkdir(exist_ok=True)
    (models / "synthetic.toml").write_text(model_file(model), encoding="utf-8")
    ids = tuple(f"m{i:02d}" for i in range(devices))
    with contextlib.ExitStack() as stack:
        cloud = stack.enter_context(RefCloudProcess(folder / "cloud", timeout=60))
        write_secret(folder / "claim.key", cloud.operator.enrol(SERIAL))
        sim: Simulator | None = None
        if simulate:
            sim = stack.enter_context(
                Simulator([SimulatedDevice(id=i, model=model) for i in ids], seed=6)
            )
        connections = {}
        for k, i in enumerate(ids):
            if sim is not None:
                e = sim.endpoint(i)
                host, port, unit = e.host, e.port, e.unit_id
            elif endpoints:
                host, port, unit = endpoints[k]
            else:  # no device answers: only the outbox and the cloud matter
                host, port, unit = "127.0.0.1", 9, 1
            connections[i] = {
                "type": "tcp",
                "host": host,
                "port": port,
                "unit_id": unit,
                "period_ms": poll_period_ms,
                "timeout_ms": 1000,
            }
        document: dict[str, Any] = {
            "identity": {
                "serial": SERIAL,
                "model": "advanced",
                "firmware": "1.0.0",
                "mac": "aa:bb:cc:00:be:6c",
                "name": "Benchmark gateway",
                "claim_key_file": str(folder / "claim.key"),
            },
            "cloud": {
                "bootstrap_url": cloud.operator.bootstrap_url,
                "ca_bundle": str(cloud.operator.ca_path),
            },
            "time": {"mode": "manual"},
            "storage": {"dir": str(folder / "gateway")},
            "gateway": {"model_dirs": [str(models)]},
            "devices": [
                {"id": i, "name": f"Meter {i}", "model": model.name, "connection": connections[i]}
                for i in ids
            ],
        }
        config_path = folder / "panelfast.toml"
        config_path.write_text(_toml(document), encoding="utf-8")
        yield BenchSystem(
            folder=folder,
            cloud=cloud,
            simulator=sim,
            config_path=config_path,
            settings=load_settings(config_path),
            devices=ids,
            model=model,
        )


def connect_and_publish_topology(settings: Settings) -> None:
    """What the user does once: connect, publish the topology (kept across restarts)."""
    from panelfast.gateway import Gateway

    async def go() -> None:
        async with Gateway(settings) as gateway:
            await gateway.connect()
            await gateway.publish_topology()

    asyncio.run(go())


@contextlib.contextmanager
def gateway_process(
    config_path: Path, log_path: Path, *, module: str = "panelfast"
) -> Iterator[subprocess.Popen[bytes]]:
    """``panelfast run`` as a subprocess (``python -m module run``); stopped by SIGTERM
    (killed if it hangs)."""
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", module, "run", "--config", str(config_path),
             "--log-level", "warning"],
            stdout=log,
            stderr=log,
        )  # fmt: skip
    try:
        yield process
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_for(condition: Any, timeout: float, what: str, interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"benchmark: {what} did not happen within {timeout:.0f} s")
        time.sleep(interval)
