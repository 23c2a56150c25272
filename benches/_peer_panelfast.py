"""The panelfast side of ``make bench-peers``.

The daemon (``panelfast run``, through :mod:`benches._peer_daemon`, which
lifts the product's 500 samples/min ceiling so it can be asked for every
point every second) reads the simulated devices and publishes to the
reference cloud (its own process, HTTPS on loopback) every 10 s. The cloud's
remote configuration samples every point of every device each second. A
value counts as delivered if its sampling instant is in the window, it is
not nil (a nil says the device could not be read in time), and the batch that
carried it was stored by the cloud by the end of the grace period.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benches._gateway_support import SERIAL, BenchSystem, bench_system, gateway_process, wait_for

ROOT = Path(__file__).resolve().parent.parent
PUBLISH_S = 10


def config(system: BenchSystem) -> dict[str, Any]:
    points = [m.id for m in system.model.measurements]
    return {
        "version": "peers-1",
        "measurements": [
            {"device": d, "measurement": p, "period_s": 1} for d in system.devices for p in points
        ],
        "alarms": [],
        "publisher": {"period_s": PUBLISH_S},
    }


@contextlib.contextmanager
def panelfast(folder: Path, endpoints: list[dict[str, Any]], points: int) -> Iterator[int]:
    """The cloud, the configuration, the daemon running under it; yields the daemon's pid."""
    where = [(e["host"], e["port"], e["unit_id"]) for e in endpoints]
    with bench_system(
        folder, devices=len(endpoints), points=points, simulate=False, endpoints=where
    ) as system:
        # What the user does once, before the daemon runs: connect, publish the topology.
        for command in (["connect"], ["topology", "publish"]):
            subprocess.run(
                [sys.executable, "-m", "panelfast", *command, "--config", str(system.config_path)],
                check=True,
                stdout=subprocess.DEVNULL,
            )
        system.operator.set_config(SERIAL, config(system))
        log = folder / "gateway.log"
        with gateway_process(system.config_path, log, module="benches._peer_daemon") as daemon:

            def applied() -> bool:
                if daemon.poll() is not None:
                    raise RuntimeError(f"panelfast run exited; see {log}")
                return any(r["status"] == "applied" for r in system.operator.reports(SERIAL))

            wait_for(applied, 300, "the configuration of every point applied")
            yield daemon.pid


def delivered(folder: Path, t0_ms: int, t1_ms: int, deadline_s: float) -> int:
    """Values sampled in [t0, t1), not nil, stored by the cloud by ``deadline_s``."""
    db = sqlite3.connect(f"file:{folder / 'cloud' / 'cloud.db'}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT s.t0, s.dt, s.vals FROM series s JOIN batches b "
            "ON s.device_id = b.device_id AND s.seq = b.seq "
            "WHERE b.received_at <= ? AND s.t0 < ? AND s.t0 + (s.n - 1) * s.dt >= ?",
            (deadline_s, t1_ms, t0_ms),
        )
        count = 0
        for t0, dt, vals in rows:
            for j, value in enumerate(json.loads(vals)):
                if value is not None and t0_ms <= t0 + j * dt < t1_ms:
                    count += 1
        return count
    finally:
        db.close()
