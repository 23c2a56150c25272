"""The Modbus acquisition path, against a pymodbus asyncio client doing the same reads.

acquire_100k_points
    100 devices × 1,000 FLOAT32 points each second over loopback (100,000
    points/s, 17 reads of 124 registers per device): the gateway process's CPU
    share of one core, its peak RSS, and the points it delivered per second.
    Ours: :class:`panelfast.acquisition.Acquisition`, a snapshot each second.
    Baseline: pymodbus's ``AsyncModbusTcpClient`` on uvloop, one client per
    device, the same reads each second, decoded with ``convert_from_registers``
    (as pymodbus users write it) into a numpy array. Each side runs alone in
    its own process, so CPU and RSS are that process's.

requests_per_s_one_connection
    Reads of 124 registers back to back on one connection: ours from the
    engine's own cycle timing (529 reads per cycle over the whole register
    space), pymodbus awaiting the same reads one after the other.

Both talk to ``examples/modbus_bench_server.rs``, a single-threaded
tokio-modbus server in its own process, so the server is never what limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from benches._harness import Record, record

ROOT = Path(__file__).resolve().parent.parent
SERVER = ROOT / "target" / "release" / "examples" / "modbus_bench_server"
DEVICES = 100
POINTS = 1000
READ = 124  # registers per read: 62 whole FLOAT32 values
SECONDS = 5
BASELINE = "pymodbus AsyncModbusTcpClient (uvloop)"


@contextlib.contextmanager
def bench_server(listeners: int) -> Iterator[list[int]]:
    """The tokio-modbus server, built if needed; yields its ports."""
    subprocess.run(
        ["cargo", "build", "--release", "--quiet", "--example", "modbus_bench_server"],
        cwd=ROOT,
        check=True,
    )
    server = subprocess.Popen(
        [str(SERVER), str(listeners)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        ports: list[int] = json.loads(server.stdout.readline())
        yield ports
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=10)


def child(mode: str, ports: list[int]) -> dict[str, float]:
    """Run one side of a benchmark in a fresh process; its JSON result."""
    done = subprocess.run(
        [sys.executable, "-m", "benches.acquire", mode, json.dumps(ports)],
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"benchmark side {mode!r} failed:\n{done.stderr[-2000:]}")
    result: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return result


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sleep_to_next_second(after: float = 0.0) -> None:
    now = time.time()
    time.sleep(1 - now % 1 + after)


# --- ours -------------------------------------------------------------------


def bench_devices(ports: list[int], points: int, period_ms: int) -> list[tuple[Any, Any]]:
    """The commissioned devices and their model, as both sides load them."""
    from panelfast.config import DeviceSettings
    from panelfast.models import DeviceModel, MeasurementDef

    model = DeviceModel(
        name="bench",
        vendor="bench",
        measurements=tuple(
            MeasurementDef(
                id=f"p{k}",
                name=f"p{k}",
                unit="W",
                kind="instantaneous",
                function=3,
                address=2 * k,
                type="FLOAT32",
            )
            for k in range(points)
        ),
        max_registers_per_read=READ,
        max_gap=0,
    )
    return [
        (
            DeviceSettings.model_validate(
                {
                    "id": f"d{i}",
                    "name": f"d{i}",
                    "model": "bench",
                    "connection": {
                        "type": "tcp",
                        "host": "127.0.0.1",
                        "port": port,
                        "period_ms": period_ms,
                        "timeout_ms": 2000,
                    },
                }
            ),
            model,
        )
        for i, port in enumerate(ports)
    ]


def acquisition(ports: list[int], points: int, period_ms: int) -> Any:
    from panelfast.acquisition import Acquisition

    return Acquisition(bench_devices(ports, points, period_ms))


def ours_acquire(ports: list[int]) -> dict[str, float]:
    acq = acquisition(ports, POINTS, 1000)
    acq.start()
    deadline = time.monotonic() + 10
    while not all(d.cycles >= 1 for d in acq.diagnostics()):
        assert time.monotonic() < deadline, "devices did not answer"
        time.sleep(0.05)
    seen = acq.snapshot().read_at_ms
    start, cpu = time.perf_counter(), cpu_seconds()
    delivered = 0
    for _ in range(SECONDS):
        # Mid-period, as a sampler would: every device was read at the tick.
        sleep_to_next_second(after=0.5)
        snapshot = acq.snapshot()
        delivered += int(np.count_nonzero(snapshot.valid & (snapshot.read_at_ms > seen)))
        seen = snapshot.read_at_ms
    wall = time.perf_counter() - start
    result = {
        "cpu": (cpu_seconds() - cpu) / wall,
        "rss": peak_rss_mib(),
        "rate": delivered / SECONDS,
    }
    acq.stop()
    return result


def ours_requests(ports: list[int]) -> dict[str, float]:
    # The whole register space in 124-register reads: a cycle is 529 reads back to back.
    acq = acquisition(ports[:1], 32_767, 1000)
    acq.start()
    rates = []
    deadline = time.monotonic() + 20
    while len(rates) < 5 and time.monotonic() < deadline:
        sleep_to_next_second(after=0.9)
        d = acq.diagnostics()[0]
        if d.cycles and d.errors == 0:
            rates.append(d.reads_per_cycle / (d.last_cycle_duration_ms / 1000))
    acq.stop()
    assert rates, "the engine never completed an error-free cycle"
    return {"rate": statistics.median(rates)}


# --- baseline: pymodbus ------------------------------------------------------


def baseline_acquire(ports: list[int]) -> dict[str, float]:
    import uvloop

    return uvloop.run(_baseline_acquire(ports))


async def _baseline_acquire(ports: list[int]) -> dict[str, float]:
    from pymodbus.client import AsyncModbusTcpClient

    # The same configuration and model objects as ours: only acquisition differs.
    devices = bench_devices(ports, POINTS, 1000)
    clients = [
        AsyncModbusTcpClient(s.connection.host, port=s.connection.port, timeout=2)
        for s, _ in devices
    ]
    await asyncio.gather(*(c.connect() for c in clients))
    values = np.full(len(ports) * POINTS, np.nan)
    read_at = np.zeros(len(ports) * POINTS, dtype=np.int64)
    float32 = AsyncModbusTcpClient.DATATYPE.FLOAT32

    async def poll(device: int, client: AsyncModbusTcpClient) -> None:
        registers: list[int] = []
        for start in range(0, 2 * POINTS, READ):
            count = min(READ, 2 * POINTS - start)
            answer = await client.read_holding_registers(start, count=count, device_id=1)
            registers += answer.registers
        now = int(time.time() * 1000)
        base = device * POINTS
        for k in range(POINTS):
            value = client.convert_from_registers(registers[2 * k : 2 * k + 2], float32)
            assert isinstance(value, float)
            values[base + k] = value
        read_at[base : base + POINTS] = now

    async def cycle() -> None:
        await asyncio.gather(*(poll(i, c) for i, c in enumerate(clients)))

    await cycle()  # warm up: connections, caches
    seen = read_at.copy()
    start, cpu = time.perf_counter(), cpu_seconds()
    delivered = 0
    for _ in range(SECONDS):
        await asyncio.sleep(1 - time.time() % 1)
        await cycle()
        delivered += int(np.count_nonzero(~np.isnan(values) & (read_at > seen)))
        seen = read_at.copy()
    wall = time.perf_counter() - start
    for c in clients:
        c.close()
    return {"cpu": (cpu_seconds() - cpu) / wall, "rss": peak_rss_mib(), "rate": delivered / SECONDS}


def baseline_requests(ports: list[int]) -> dict[str, float]:
    import uvloop

    return uvloop.run(_baseline_requests(ports[0]))


async def _baseline_requests(port: int) -> dict[str, float]:
    from pymodbus.client import AsyncModbusTcpClient

    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2)
    await client.connect()
    starts = range(0, 65_534 - READ, READ)
    rates = []
    for _ in range(5):
        began = time.perf_counter()
        for start in starts:
            await client.read_holding_registers(start, count=READ, device_id=1)
        rates.append(len(starts) / (time.perf_counter() - began))
    client.close()
    return {"rate": statistics.median(rates)}


# --- the records -------------------------------------------------------------

MODES = {
    "ours-acquire": ours_acquire,
    "baseline-acquire": baseline_acquire,
    "ours-requests": ours_requests,
    "baseline-requests": baseline_requests,
}


def run() -> list[Record]:
    with bench_server(DEVICES) as ports:
        ours = child("ours-acquire", ports)
        theirs = child("baseline-acquire", ports)
        ours_rps = child("ours-requests", ports)
        theirs_rps = child("baseline-requests", ports)
    return [
        record("acquire_100k_points_cpu", "% of one core", 100 * ours["cpu"],
               BASELINE, 100 * theirs["cpu"], "lower"),
        record("acquire_100k_points_rss", "MiB peak RSS", ours["rss"],
               BASELINE, theirs["rss"], "lower"),
        record("acquire_100k_points_delivered", "points/s", ours["rate"],
               BASELINE, theirs["rate"], "higher"),
        record("requests_per_s_one_connection", "requests/s", ours_rps["rate"],
               BASELINE, theirs_rps["rate"], "higher"),
    ]  # fmt: skip


if __name__ == "__main__":
    mode, ports = sys.argv[1], json.loads(sys.argv[2])
    print(json.dumps(MODES[mode](ports)))
