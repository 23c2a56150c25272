"""``make bench-peers``: panelfast and the ThingsBoard IoT Gateway on the same Modbus job.

The job: D simulated devices × 1,000 FLOAT32 points (the project's simulator,
``panelfast simulate --model synthetic-1000``, in its own process), every
point read every second and delivered to the gateway's cloud: 1,000, 10,000
and 100,000 points/s (D = 1, 10, 100). Each gateway runs alone on the same
simulator process, one after the other, and is measured from outside with
psutil: after a warm-up, its CPU time over a ``WINDOW_S`` window (its process
and any children; the broker, the cloud and the simulator are not counted on
either side) and its peak RSS (``VmHWM``, start-up included).

Delivered values are counted where they arrive, not where they are sent: at
the MQTT broker for ThingsBoard (see :mod:`benches._peer_thingsboard`), in
the reference cloud's storage for panelfast (see
:mod:`benches._peer_panelfast`): values read in the window that arrived by
``GRACE_S`` after it (panelfast publishes every 10 s; ThingsBoard as it
reads). A gateway *kept up* if it delivered at least 99 % of the points ×
seconds of the window. CPU per delivered point is its CPU time over the
window divided by the values it delivered from it.

Results: ``benches/peers.json``, ``benches/peers.md`` (the table), and the
README's table between its ``peers`` markers. Not part of ``make test`` nor
``make bench``: it installs things (Debian's mosquitto if missing, the
ThingsBoard gateway in a git-ignored virtualenv) and takes about 10 minutes.
``python -m benches._peers 1k`` runs the named workloads only.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import psutil

from benches import _peer_panelfast, _peer_thingsboard

HERE = Path(__file__).resolve().parent
README = HERE.parent / "README.md"
POINTS = 1000
WORKLOADS = {"1k": 1, "10k": 10, "100k": 100}
WARM_S = 20
WINDOW_S = 60
GRACE_S = 15
KEPT_UP = 0.99
#: panelfast with its ceiling lifted samples every point into a ring of RING_SLOTS
#: samples (16 bytes each) per measurement: at 100,000 measurements that reserves
#: gigabytes (one attempt peaked at 16 GiB RSS), too much to take on a shared machine.
PANELFAST_MAX_POINTS = 10_000
RING_SLOTS = 3600
MARKERS = ("<!-- peers:begin -->", "<!-- peers:end -->")

Side = tuple[
    str,
    Callable[[Path, list[dict[str, Any]], int], AbstractContextManager[int]],
    Callable[[Path, int, int, float], int],
]


def panelfast_name() -> str:
    from panelfast import __version__

    return f"panelfast {__version__}"


@contextlib.contextmanager
def simulator(devices: int, points: int = POINTS) -> Iterator[list[dict[str, Any]]]:
    """The project's simulator in its own process: ``devices`` synthetic meters."""
    process = subprocess.Popen(
        [sys.executable, "-m", "panelfast", "simulate", "--model", f"synthetic-{points}",
         "--devices", str(devices), "--port", "0", "--json", "--seed", "1"],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        endpoints: list[dict[str, Any]] = json.loads(process.stdout.readline())
        yield endpoints
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def tree(pid: int) -> list[psutil.Process]:
    process = psutil.Process(pid)
    return [process, *process.children(recursive=True)]


def cpu_s(pid: int) -> float:
    return sum(p.cpu_times().user + p.cpu_times().system for p in tree(pid))


def peak_rss_mib(pid: int) -> float:
    total = 0
    for p in tree(pid):
        for line in Path(f"/proc/{p.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1])
    return total / 1024


def measure(side: Side, folder: Path, endpoints: list[dict[str, Any]]) -> dict[str, Any]:
    name, start, count = side
    with start(folder, endpoints, POINTS) as pid:
        time.sleep(WARM_S)
        # Whole seconds: the window holds exactly WINDOW_S sampling instants / polls.
        time.sleep(1 - time.time() % 1)
        t0, cpu0 = time.time(), cpu_s(pid)
        time.sleep(WINDOW_S)
        t1, cpu1 = time.time(), cpu_s(pid)
        rss = peak_rss_mib(pid)
        time.sleep(GRACE_S)
    start_ms = round(t0 * 1000)
    got = count(folder, start_ms, start_ms + 1000 * WINDOW_S, t1 + GRACE_S)
    expected = len(endpoints) * POINTS * WINDOW_S
    cpu = (cpu1 - cpu0) * WINDOW_S / (t1 - t0)  # the CPU time of exactly the counted window
    return {
        "gateway": name,
        "delivered_per_s": got / WINDOW_S,
        "expected_per_s": expected / WINDOW_S,
        "kept_up": got >= KEPT_UP * expected,
        "cpu_percent": 100 * cpu / WINDOW_S,
        "cpu_us_per_point": 1e6 * cpu / got if got else None,
        "peak_rss_mib": rss,
    }


def machine(load_before: tuple[float, ...]) -> dict[str, Any]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }


def table(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        "| points/s | gateway | delivered/s | kept up | CPU (% of a core) | CPU per point "
        "| peak RSS |",
        "|---|---|---|---|---|---|---|",
    ]
    for w in results["workloads"]:
        for r in w["rows"]:
            if "not_run" in r:
                lines.append(
                    f"| {w['points_per_s']:,} ({w['devices']} × {POINTS:,}) | {r['gateway']} "
                    f"| {r['not_run']} | | | | |"
                )
                continue
            per_point = f"{r['cpu_us_per_point']:.2f} µs" if r["cpu_us_per_point"] else "-"
            lines.append(
                f"| {w['points_per_s']:,} ({w['devices']} × {POINTS:,}) | {r['gateway']} "
                f"| {r['delivered_per_s']:,.0f} | {'yes' if r['kept_up'] else '**no**'} "
                f"| {r['cpu_percent']:.1f} | {per_point} | {r['peak_rss_mib']:.0f} MiB |"
            )
    lines.append("")
    lines.append(
        f"Measured {results['date']} on {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, "
        f"Python {m['python']}; load average {m['load_before'][0]} before, "
        f"{m['load_after'][0]} after (the machine is shared: other work ran meanwhile)."
    )
    return "\n".join(lines) + "\n"


def update_readme(text: str) -> None:
    readme = README.read_text()
    begin, end = MARKERS
    if begin not in readme or end not in readme:
        return
    head, rest = readme.split(begin, 1)
    _, tail = rest.split(end, 1)
    README.write_text(f"{head}{begin}\n{text}{end}{tail}")


def main(names: list[str]) -> int:
    load_before = os.getloadavg()
    _peer_thingsboard.ensure_installed()
    sides: list[Side] = [
        (_peer_thingsboard.NAME, _peer_thingsboard.thingsboard, _peer_thingsboard.delivered),
        (panelfast_name(), _peer_panelfast.panelfast, _peer_panelfast.delivered),
    ]
    workloads = []
    for label in names or list(WORKLOADS):
        devices = WORKLOADS[label]
        rows = []
        with simulator(devices) as endpoints:
            for side in sides:
                print(f"== {label} points/s: {side[0]}", flush=True)
                if side[1] is _peer_panelfast.panelfast and devices * POINTS > PANELFAST_MAX_POINTS:
                    gib = devices * POINTS * RING_SLOTS * 16 / 2**30
                    reason = (
                        f"not run: its sample rings for {devices * POINTS:,} measurements "
                        f"would reserve {gib:.1f} GiB ({RING_SLOTS:,} samples each)"
                    )
                    print(f"   {reason}", flush=True)
                    rows.append({"gateway": side[0], "not_run": reason})
                    continue
                folder = Path(tempfile.mkdtemp(prefix="bench-peers-", dir=HERE / ".peers"))
                try:
                    row = measure(side, folder / "run", endpoints)
                except BaseException:
                    print(f"   failed; its files are kept in {folder}", flush=True)
                    raise
                shutil.rmtree(folder)
                print(f"   {row}", flush=True)
                rows.append(row)
        workloads.append({"points_per_s": devices * POINTS, "devices": devices, "rows": rows})
    results = {
        "date": time.strftime("%Y-%m-%d"),
        "window_s": WINDOW_S,
        "machine": machine(load_before),
        "workloads": workloads,
    }
    (HERE / "peers.json").write_text(json.dumps(results, indent=2) + "\n")
    text = table(results)
    (HERE / "peers.md").write_text(text)
    if not names:
        update_readme(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
