"""A device removed from the configuration file (issue 9.8): the daemon still starts.

The stored applied configuration names ``mb-1``, which the file no longer
lists. ``panelfast run`` starts and keeps that configuration in force for the
devices it still has: mb-2 is sampled as before, mb-1's measurements are nil
and its alarm keeps its state; the status says what is no longer configured
and that the topology must be published again; a new configuration naming
mb-1 is rejected with a report that says why.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from panelfast.config import load_settings
from panelfast.embedded import embedded_system
from panelfast.gateway import Gateway
from reliability_support import (
    MEASUREMENTS,
    GatewayProcess,
    commission,
    config_document,
    wait_until,
)

V_HIGH: dict[str, Any] = {
    "id": "v-high",
    "device": "mb-1",
    "measurement": "VoltageAN",
    "condition": "over",
    "threshold": 100.0,
    "hysteresis": 1.0,
    "delay_s": 0,
}


def without_device(config_path: Path, device_id: str) -> None:
    """Edit the configuration file as a person would: delete the device's table."""
    text = config_path.read_text(encoding="utf-8")
    head, *tables = text.split("[[devices]]\n")
    kept = [t for t in tables if not t.startswith(f'id = "{device_id}"\n')]
    assert len(kept) == len(tables) - 1, "the device was in the file"
    config_path.write_text(head + "".join("[[devices]]\n" + t for t in kept), encoding="utf-8")


def topology_show(config_path: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "panelfast", "topology", "show", "--config", str(config_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def status_cli(config_path: Path) -> str:
    """``panelfast status``, answered by the running daemon."""
    result = subprocess.run(
        [sys.executable, "-m", "panelfast", "status", "--config", str(config_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_removed_device_leaves_the_rest_of_the_configuration_in_force(tmp_path: Path) -> None:
    gateway: GatewayProcess | None = None
    with embedded_system(tmp_path, poll_period_ms=200) as system:
        cloud, serial = system.cloud, system.serial
        asyncio.run(commission(system))
        document = config_document(MEASUREMENTS, publisher_period_s=1)
        document["alarms"] = [V_HIGH]
        served = cloud.set_config(serial, document)
        config_path = system.config_path
        gateway = GatewayProcess(config_path, tmp_path / "gateway.log")

        def events() -> list[tuple[str, str]]:
            return [(e["alarm"], e["state"]) for e in cloud.alarm_events(serial)]

        try:
            gateway.start()
            wait_until(lambda: events() == [("v-high", "active")], 30, "v-high announced")
            gateway.stop()

            without_device(config_path, "mb-1")
            restarted = time.time() * 1000
            gateway.start()

            def sampled_since_restart() -> list[tuple[str, int, object]]:
                return [
                    (name, t, v)
                    for name, points in cloud.samples(serial).items()
                    for t, v in points
                    if t > restarted + 1_000
                ]

            wait_until(lambda: len(sampled_since_restart()) >= 3 * 4, 30, "sampled again")
            assert gateway.alive, gateway.tail()
            for name, t, value in sampled_since_restart():
                if name.startswith("mb-1/"):
                    assert value is None, f"{name} at {t}: mb-1 is no longer configured"
                else:
                    assert value is not None, f"{name} at {t}: mb-2 is sampled as before"
            assert "must be published again" in topology_show(config_path)
            rows = dict(
                (label, value.strip())
                for label, _, value in (
                    line.partition(":") for line in status_cli(config_path).splitlines()
                )
            )
            assert rows["Not configured"] == "mb-1: sampled as nil; publish the topology again"
            assert rows["Topology"].endswith("devices changed: publish it again")
            assert "no longer configured (mb-1)" in gateway.tail(200)

            # A new configuration naming mb-1 is rejected, and the report says why.
            cloud.set_config(serial, document)
            wait_until(lambda: len(cloud.reports(serial)) == 2, 30, "the new one judged")
            gateway.stop()
        except BaseException:
            print(f"gateway log:\n{gateway.tail(60)}")
            raise
        finally:
            gateway.close()
        report = cloud.reports(serial)[-1]
        assert events() == [("v-high", "active")], "mb-1's alarm kept its state"

    assert report["status"] == "rejected"
    assert report["errors"][0] == {
        "path": "measurements[0].device",
        "message": "device 'mb-1' is no longer configured on the gateway: "
        "its topology must be published again",
    }

    async def status() -> None:
        async with Gateway(load_settings(config_path)) as gateway:
            shown = gateway.status()
            assert shown.not_configured == ("mb-1",)
            assert shown.topology_must_be_published
            assert shown.remote_config.applied_version == served["version"]
            assert shown.active_alarms == ("v-high",), "restored, and unreadable: kept"

    asyncio.run(status())
