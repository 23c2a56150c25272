"""Alarm states survive restarts (issue 9.3): ``panelfast run`` killed with SIGKILL.

Spec §8: each transition is one event. An alarm active before a kill is not
announced again after it; a pending delay goes on from where it was; an alarm
whose measurement cannot be read after the restart keeps its state. The
states live in the outbox's SQLite file, written in the same transaction as
the events of their transitions.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

from panelfast.embedded import embedded_system
from panelfast.simulator import Faults
from reliability_support import (
    MEASUREMENTS,
    GatewayProcess,
    commission,
    config_document,
    wait_until,
)

#: Over its threshold all the time (the simulator's voltages are about 230 V).
V_HIGH: dict[str, Any] = {
    "id": "v-high",
    "device": "mb-1",
    "measurement": "VoltageAN",
    "condition": "over",
    "threshold": 100.0,
    "hysteresis": 1.0,
    "delay_s": 0,
}
#: The same excursion, announced only after 10 s of it.
DELAY_S = 10
V_SLOW = {**V_HIGH, "id": "v-slow", "delay_s": DELAY_S}


def saved_states(outbox: Path) -> dict[str, tuple[bool, int | None]]:
    """The alarm states the gateway's outbox file holds (WAL: safe while it writes)."""
    db = sqlite3.connect(outbox, timeout=10)
    try:
        rows = db.execute("SELECT id, active, since_ms FROM alarm_state").fetchall()
    finally:
        db.close()
    return {r[0]: (bool(r[1]), r[2]) for r in rows}


def test_alarm_states_survive_sigkill_and_unreadable_measurements(tmp_path: Path) -> None:
    gateway: GatewayProcess | None = None
    with embedded_system(tmp_path, poll_period_ms=200) as system:
        cloud, serial, sim = system.cloud, system.serial, system.simulator
        asyncio.run(commission(system))
        document = config_document(MEASUREMENTS, period_s=1, publisher_period_s=1)
        document["alarms"] = [V_HIGH, V_SLOW]
        cloud.set_config(serial, document)
        outbox = system.settings.storage.dir / "outbox.sqlite"
        gateway = GatewayProcess(system.config_path, tmp_path / "gateway.log")

        def events() -> list[tuple[str, str]]:
            return [(e["alarm"], e["state"]) for e in cloud.alarm_events(serial)]

        def samples_after(t_ms: float) -> int:
            return sum(1 for _, t in cloud.sample_counts(serial) if t > t_ms)

        try:
            # 1. v-high goes active; v-slow's delay starts running.
            gateway.start()
            wait_until(lambda: events() == [("v-high", "active")], 30, "v-high announced")
            wait_until(
                lambda: saved_states(outbox).get("v-slow", (False, None))[1] is not None,
                10,
                "v-slow's pending delay saved",
            )
            since = saved_states(outbox)["v-slow"][1]
            assert since is not None
            assert saved_states(outbox)["v-high"] == (True, None)
            # Killed in the middle of v-slow's delay.
            wait_until(lambda: time.time() * 1000 > since + 5_000, 10, "half the delay")
            gateway.kill()

            # 2. After the restart: v-high is not announced again, and v-slow goes
            #    active when its delay, counted from before the kill, is over.
            restarted = time.time() * 1000
            gateway.start()
            wait_until(lambda: ("v-slow", "active") in events(), 30, "v-slow announced")
            (slow,) = [e for e in cloud.alarm_events(serial) if e["alarm"] == "v-slow"]
            assert since + DELAY_S * 1000 <= slow["ts"] < restarted + DELAY_S * 1000, (
                "the delay went on from where it was"
            )
            gateway.kill()

            # 3. Restarted with the measurement unreadable: both alarms stay active.
            sim.set_faults("mb-1", Faults(unavailable=("VoltageAN",)))
            restarted = time.time() * 1000
            gateway.start()
            wait_until(lambda: samples_after(restarted + 3_000) > 0, 30, "sampling again")
            voltages = [v for t, v in cloud.samples(serial)["mb-1/VoltageAN"] if t > restarted]
            assert voltages
            assert all(v is None for v in voltages), "VoltageAN was unreadable"
            assert saved_states(outbox) == {"v-high": (True, None), "v-slow": (True, None)}
            # ...and readable again, still over: nothing to announce either.
            sim.set_faults("mb-1", Faults())
            readable = time.time() * 1000
            wait_until(
                lambda: any(
                    v is not None
                    for t, v in cloud.samples(serial)["mb-1/VoltageAN"]
                    if t > readable + 1_000
                ),
                30,
                "VoltageAN read again",
            )
            gateway.stop()
        except BaseException:
            print(f"gateway log:\n{gateway.tail(60)}")
            raise
        finally:
            gateway.close()

        assert events() == [("v-high", "active"), ("v-slow", "active")], "each transition once"
        assert saved_states(outbox) == {"v-high": (True, None), "v-slow": (True, None)}
