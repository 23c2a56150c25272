"""What a person typing ``panelfast`` waits for, and what it costs the box.

cli_status_ms, cli_status_rss
    ``panelfast status --config F`` against a running ``panelfast run`` (the
    embedded system: the reference cloud and the simulated devices, the daemon
    connected to the cloud), run 20 times as a person runs it: the installed
    console script, a new process each time. Wall time from spawning it to
    reaping it, and its peak RSS from the kernel's accounting of the reaped
    child (GNU time's ``%M``), both taken from outside the command; medians of 20
    (after two runs not counted, so the files are in the page cache as they
    are on a box in use). Baselines: the targets, 100 ms and 25 MiB.

cli_version_ms
    ``panelfast --version``, measured the same way; target 60 ms.

The printed line gives the other figures (``--version``'s RSS, the spread).
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benches._gateway_support import gateway_process, wait_for
from benches._harness import Record, record

RUNS = 20
WARM_UP = 2
TARGET_STATUS_MS = 100.0
TARGET_STATUS_RSS_MIB = 25.0
TARGET_VERSION_MS = 60.0
TIME = "/usr/bin/time"  # GNU time (Debian's package `time`)


def console_script() -> str:
    """The ``panelfast`` command a person runs: the one installed beside this interpreter."""
    beside = Path(sys.executable).parent / "panelfast"
    found = str(beside) if beside.exists() else shutil.which("panelfast")
    if found is None:
        raise RuntimeError("no `panelfast` command installed (make dev installs it)")
    return found


def timed(argv: list[str], report: Path) -> tuple[float, float]:
    """Wall ms and peak RSS (MiB) of one run of ``argv``, both seen from outside.

    The RSS comes from GNU time, which forks the command from its own small
    image: a child forked straight from this process would count this
    process's pages in its peak (the kernel keeps the high-water mark across
    exec), which is not the command's cost.
    """
    start = time.perf_counter()
    done = subprocess.run(
        [TIME, "-o", str(report), "-f", "%M", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv[1:])} exited {done.returncode}: {done.stderr.decode()[-1000:]}"
        )
    return 1000 * wall, int(report.read_text().split()[-1]) / 1024


def medians(argv: list[str], report: Path) -> dict[str, float]:
    for _ in range(WARM_UP):
        timed(argv, report)
    runs = [timed(argv, report) for _ in range(RUNS)]
    walls, rss = [r[0] for r in runs], [r[1] for r in runs]
    return {
        "ms": statistics.median(walls),
        "ms_min": min(walls),
        "ms_max": max(walls),
        "rss": statistics.median(rss),
    }


def measure(folder: Path) -> dict[str, dict[str, float]]:
    from panelfast.control.wire import Wire
    from panelfast.embedded import embedded_system

    command = console_script()
    if not Path(TIME).exists():
        raise RuntimeError(f"{TIME} is missing: apt-get install time")
    with (
        embedded_system(folder) as system,
        gateway_process(system.config_path, folder / "gateway.log") as daemon,
    ):
        config = str(system.config_path)
        socket = system.settings.storage.dir / "control.sock"

        def answering() -> bool:
            if daemon.poll() is not None:
                raise RuntimeError(f"panelfast run exited; see {folder / 'gateway.log'}")
            if not socket.exists():
                return False
            try:
                return Wire(socket, timeout=5).request("GET", "/v1/status").ok
            except OSError:
                return False

        wait_for(answering, 60, "the daemon's control API answering", interval=0.1)
        report = folder / "time.out"
        timed([command, "connect", "--config", config], report)  # a daemon as it runs: connected
        status = medians([command, "status", "--config", config], report)
        version = medians([command, "--version"], report)
    return {"status": status, "version": version}


def run() -> list[Record]:
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as d:
        r = measure(Path(d))
    s, v = r["status"], r["version"]
    print(
        f"   (medians of {RUNS}: status {s['ms']:.0f} ms [{s['ms_min']:.0f}-{s['ms_max']:.0f}],"
        f" {s['rss']:.1f} MiB; --version {v['ms']:.0f} ms [{v['ms_min']:.0f}-{v['ms_max']:.0f}],"
        f" {v['rss']:.1f} MiB)"
    )
    return [
        record("cli_status_ms", "ms wall (median of 20)", s["ms"],
               f"target (<= {TARGET_STATUS_MS:.0f} ms)", TARGET_STATUS_MS, "lower"),
        record("cli_status_rss", "MiB peak RSS (median of 20)", s["rss"],
               f"target (<= {TARGET_STATUS_RSS_MIB:.0f} MiB)", TARGET_STATUS_RSS_MIB, "lower"),
        record("cli_version_ms", "ms wall (median of 20)", v["ms"],
               f"target (<= {TARGET_VERSION_MS:.0f} ms)", TARGET_VERSION_MS, "lower"),
    ]  # fmt: skip
