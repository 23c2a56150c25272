"""A factory reset (issue 9.4): the storage folder emptied, the gateway connected again.

It bootstraps and continues after the cloud's ``data_seq`` (§3); it has no
record of a published topology, so it publishes the topology by itself
before it judges a configuration against it, and the configuration the cloud
holds for it is applied again, not rejected for naming devices "not in the
last published topology".
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

from panelfast.embedded import embedded_system
from reliability_support import (
    MEASUREMENTS,
    GatewayProcess,
    commission,
    config_document,
    data_conflicts,
    wait_until,
)


def test_a_reset_gateway_publishes_its_topology_and_applies_the_cloud_configuration(
    tmp_path: Path,
) -> None:
    gateway: GatewayProcess | None = None
    with embedded_system(tmp_path, poll_period_ms=200) as system, data_conflicts() as conflicts:
        cloud, serial = system.cloud, system.serial
        asyncio.run(commission(system))
        served = cloud.set_config(serial, config_document(MEASUREMENTS, publisher_period_s=1))
        version = served["version"]
        storage = system.settings.storage.dir
        gateway = GatewayProcess(system.config_path, tmp_path / "gateway.log")

        def reports() -> list[tuple[str, str]]:
            return [(r["version"], r["status"]) for r in cloud.reports(serial)]

        try:
            gateway.start()
            wait_until(lambda: cloud.last_seq(serial) >= 2, 30, "data at the cloud")
            gateway.stop()
            assert reports() == [(version, "applied")]
            first_topology = cloud.topology(serial)
            assert first_topology is not None
            seq_before = cloud.last_seq(serial)

            # The factory reset: nothing of the gateway's state is left.
            shutil.rmtree(storage)
            connect = subprocess.run(
                [sys.executable, "-m", "panelfast", "connect", "--config", str(system.config_path)],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert connect.returncode == 0, connect.stdout + connect.stderr
            assert not (storage / "topology.json").exists()

            gateway.start()
            wait_until(lambda: len(reports()) == 2, 30, "the configuration judged again")
            wait_until(lambda: cloud.last_seq(serial) >= seq_before + 2, 30, "data again")
            gateway.stop()
        except BaseException:
            print(f"gateway log:\n{gateway.tail(60)}")
            raise
        finally:
            gateway.close()

        again = cloud.topology(serial)
        batches = cloud.batches(serial)
        judged = cloud.reports(serial)

    assert [(r["version"], r["status"]) for r in judged] == [
        (version, "applied"),
        (version, "applied"),
    ], judged
    assert again is not None
    assert again["version"] == first_topology["version"], "the same topology..."
    assert len(again["receipts"]) == len(first_topology["receipts"]) + 1, "...published again"
    assert (storage / "topology.json").exists(), "and recorded as published"
    assert not conflicts, "data went on after the cloud's data_seq"
    assert [b["seq"] for b in batches] == list(range(1, len(batches) + 1))
