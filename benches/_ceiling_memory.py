"""Where the daemon's memory goes at the product ceiling: a diagnostic, not a benchmark.

``python -m benches._ceiling_memory [seconds]`` sets up the ceiling of
:mod:`benches.gateway` (10 devices × 500 FLOAT32 points served by the
simulator in its own process, the reference cloud, 5,000 measurements and
100 alarms) and then runs, in a child process that holds nothing else, what
``panelfast run`` runs (:func:`panelfast.daemon.serve`), printing:

- RSS after each group of imports the daemon makes, in the order it makes
  them, and the number of modules loaded;
- RSS and Python-heap size (tracemalloc) every few seconds once it serves,
  through applying the ceiling configuration to the steady state;
- the 20 largest Python allocation sites at the end (tracemalloc, by line),
  the largest top-level packages by the allocations their import left, and
  the resident memory by mapping (the native side: malloc arenas, thread
  stacks, shared libraries), which tracemalloc does not see.

tracemalloc costs time and some memory of its own (it is started after the
import phase, whose figures are plain RSS); the RSS figures are the
process's own, from ``/proc/self/status``.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
import tempfile
import time
from pathlib import Path

SECONDS = 60
#: What ``panelfast run`` imports, in its order; each step's RSS is printed.
IMPORTS = (
    "click",
    "panelfast",
    "panelfast.cli._main",
    "panelfast.cli._gateway",
    "uvloop",
    "panelfast.config",
    "numpy",
    "pydantic",
    "panelfast.gateway",
    "panelfast.control._app",
    "panelfast.control._server",
)


def status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def rss() -> str:
    return f"RSS {status_kib('VmRSS') / 1024:6.1f} MiB (peak {status_kib('VmHWM') / 1024:6.1f})"


def package(filename: str) -> str:
    """The top-level package a source file belongs to (or the file, outside packages)."""
    if "site-packages/" in filename:
        return filename.split("site-packages/")[-1].split("/")[0]
    if "/panelfast/" in filename:
        return "panelfast"
    if "/lib/python3" in filename:
        return "stdlib"
    return filename


def mappings() -> list[tuple[str, int]]:
    """Resident KiB per mapped file, [heap], [stack] or anonymous (malloc arenas,
    thread stacks, the Rust core's allocations), largest first."""
    resident: dict[str, int] = {}
    name = "?"
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if fields and "-" in fields[0] and len(fields) >= 5:
            name = fields[5] if len(fields) > 5 else "anonymous"
        elif fields and fields[0] == "Rss:":
            resident[name] = resident.get(name, 0) + int(fields[1])
    return sorted(resident.items(), key=lambda kv: -kv[1])


def child(config_path: Path, seconds: int) -> None:
    print(f"start                              {rss()}", flush=True)
    for name in IMPORTS:
        importlib.import_module(name)
        print(f"import {name:<27} {rss()}  modules {len(sys.modules)}", flush=True)
    import tracemalloc

    import uvloop

    from panelfast.config import load_settings
    from panelfast.daemon import serve

    tracemalloc.start(1)
    settings = load_settings(config_path)
    print(f"settings loaded                    {rss()}", flush=True)

    resolved = config_path.resolve()

    async def watch() -> None:
        start = time.monotonic()
        task = asyncio.create_task(serve(settings, config_path=resolved))
        while time.monotonic() - start < seconds:
            await asyncio.sleep(5)
            heap, _ = tracemalloc.get_traced_memory()
            print(
                f"serving {time.monotonic() - start:4.0f} s                     {rss()}"
                f"  Python heap {heap / 2**20:5.1f} MiB",
                flush=True,
            )
        snapshot = tracemalloc.take_snapshot()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        print("\nlargest Python allocation sites (tracemalloc, steady state):")
        for stat in snapshot.statistics("lineno")[:20]:
            frame = stat.traceback[0]
            print(f"  {stat.size / 1024:8.0f} KiB {stat.count:7d} blocks  {frame}")
        by_package: dict[str, int] = {}
        for stat in snapshot.statistics("filename"):
            key = package(stat.traceback[0].filename)
            by_package[key] = by_package.get(key, 0) + stat.size
        print("\nPython heap by package (tracemalloc, steady state):")
        for key, size in sorted(by_package.items(), key=lambda kv: -kv[1])[:12]:
            print(f"  {size / 1024:8.0f} KiB  {key}")
        print("\nresident memory by mapping (/proc/self/smaps, steady state):")
        for name, kib in mappings()[:12]:
            print(f"  {kib / 1024:8.1f} MiB  {name}")

    uvloop.run(watch())


def main(seconds: int) -> None:
    import subprocess

    from benches._gateway_support import SERIAL, bench_system
    from benches._peers import simulator
    from benches.gateway import DEVICES, POINTS, ceiling_config

    with tempfile.TemporaryDirectory(prefix="bench-memory-") as d:
        folder = Path(d)
        with simulator(DEVICES, points=POINTS) as endpoints:
            where = [(e["host"], e["port"], e["unit_id"]) for e in endpoints]
            with bench_system(
                folder, devices=DEVICES, points=POINTS, simulate=False, endpoints=where
            ) as system:
                for command in (["connect"], ["topology", "publish"]):
                    subprocess.run(
                        [sys.executable, "-m", "panelfast", *command,
                         "--config", str(system.config_path)],
                        check=True, stdout=subprocess.DEVNULL,
                    )  # fmt: skip
                points = [m.id for m in system.model.measurements]
                system.operator.set_config(SERIAL, ceiling_config(system.devices, points))
                subprocess.run(
                    [sys.executable, "-m", "benches._ceiling_memory", "--child",
                     str(system.config_path), str(seconds)],
                    check=True,
                )  # fmt: skip
                applied = [r for r in system.operator.reports(SERIAL) if r["status"] == "applied"]
                print(f"\nthe ceiling configuration was {'applied' if applied else 'NOT applied'}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(Path(sys.argv[2]), int(sys.argv[3]))
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else SECONDS)
