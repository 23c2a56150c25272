"""The Connection status follows a cloud outage at once (issue 9.5, spec §4).

``panelfast run`` connected to a reference cloud; the cloud stops (its port
refuses connections) and comes back on the same port. ``panelfast status``,
run as a user would next to the daemon, shows ``Connection in progress`` and
``Network unreachable`` within a second or so of the first refused attempt,
not once the transport's retries are over (about two minutes), and
``Connected`` / ``Device activated`` again at the first success.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

from cloud_support import free_port
from panelfast.embedded import embedded_system
from panelfast.refcloud import RefCloud
from reliability_support import (
    MEASUREMENTS,
    GatewayProcess,
    commission,
    config_document,
    wait_until,
)


def status_cli(config_path: Path) -> str:
    """``panelfast status --config F``."""
    result = subprocess.run(
        [sys.executable, "-m", "panelfast", "status", "--config", str(config_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def shows(text: str, connection: str, diagnostic: str) -> bool:
    lines = {line.split(":", 1)[0]: line.split(":", 1)[1].strip() for line in text.splitlines()}
    return (
        lines.get("Connection status") == connection
        and lines.get("Connection diagnostics") == diagnostic
    )


def test_status_shows_the_outage_at_the_failed_attempt_and_the_return_at_the_first_success(
    tmp_path: Path,
) -> None:
    port = free_port()
    gateway: GatewayProcess | None = None
    with embedded_system(tmp_path, poll_period_ms=500, cloud_port=port) as system:
        asyncio.run(commission(system))
        system.cloud.set_config(system.serial, config_document(MEASUREMENTS, publisher_period_s=1))
        config_path = system.config_path
        gateway = GatewayProcess(config_path, tmp_path / "gateway.log")
        restarted: RefCloud | None = None
        try:
            gateway.start()
            wait_until(lambda: system.cloud.last_seq(system.serial) >= 1, 30, "data at the cloud")
            assert shows(status_cli(config_path), "Connected", "Device activated")

            # The outage: the cloud goes away, its port refuses connections.
            system.cloud.stop()
            down = time.monotonic()
            seen: list[str] = []

            def unreachable() -> bool:
                seen.append(status_cli(config_path))
                return shows(seen[-1], "Connection in progress", "Network unreachable")

            # Data goes every second: an attempt meets the refusal within about one.
            wait_until(unreachable, 15, "the outage shown", every_s=0.05)
            shown_after = time.monotonic() - down
            assert "Hint:" in seen[-1]
            assert f"127.0.0.1:{port}" in seen[-1], "the hint names where it failed"
            # While the gateway retries it stays in progress, never Connected.
            for _ in range(3):
                during = status_cli(config_path)
                assert shows(during, "Connection in progress", "Network unreachable"), during

            # The cloud comes back on the same port, with its state.
            restarted = RefCloud(tmp_path / "cloud", port=port).start()
            back = time.monotonic()
            wait_until(
                lambda: shows(status_cli(config_path), "Connected", "Device activated"),
                90,
                "Connected again",
                every_s=0.2,
            )
            reconnected_after = time.monotonic() - back
            gateway.stop()
        except BaseException:
            print(f"gateway log:\n{gateway.tail(60)}")
            raise
        finally:
            gateway.close()
            if restarted is not None:
                restarted.stop()
    print(f"outage shown after {shown_after:.1f} s; Connected {reconnected_after:.1f} s after")
