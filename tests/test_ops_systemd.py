"""panelfast under systemd: the unit file ``panelfast service install`` writes, checked by
``systemd-analyze verify``, and the sd_notify messages of a real ``panelfast run``
received on a real datagram socket set as ``NOTIFY_SOCKET``."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from panelfast.embedded import EmbeddedSystem, embedded_system
from panelfast.gateway import Gateway
from panelfast.systemd import Notifier, ServiceWatch


def panelfast(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "panelfast", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


@pytest.fixture
def system(tmp_path: Path) -> Iterator[EmbeddedSystem]:
    # A space in the path: the unit file must quote it.
    with embedded_system(tmp_path / "site with space") as system:
        yield system


def verify(unit: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is not installed: apt-get install systemd")
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    # verify exits 0 on an unknown key or a bad value, but says so: no output is the bar.
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


def test_service_install_writes_a_unit_systemd_accepts(
    system: EmbeddedSystem, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    result = panelfast(
        "service", "install", "--config", str(system.config_path), "--prefix", str(root)
    )
    assert result.returncode == 0, result.stderr
    unit = root / "etc/systemd/system/panelfast.service"
    assert f"wrote {unit}" in result.stdout
    assert "systemctl enable --now panelfast.service" in result.stdout
    text = unit.read_text()
    verify(unit)
    lines = set(text.splitlines())
    for expected in (
        "Type=notify",
        "Restart=on-failure",
        "WatchdogSec=60",
        "User=panelfast",
        "Group=panelfast",
        "StateDirectory=panelfast",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=",
        "ExecReload=/bin/kill -HUP $MAINPID",  # systemctl reload: a live reload
    ):
        assert expected in lines, expected
    config = str(system.config_path.resolve())
    assert f'--config "{config}"' in text
    assert f'ReadWritePaths="-{system.settings.storage.dir.resolve()}"' in lines
    assert oct(unit.stat().st_mode & 0o777) == "0o644"


def test_service_install_refuses_to_overwrite_without_force(
    system: EmbeddedSystem, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    args = ["service", "install", "--config", str(system.config_path), "--prefix", str(root)]
    assert panelfast(*args).returncode == 0
    unit = root / "etc/systemd/system/panelfast.service"
    unit.write_text("# edited by hand\n")
    again = panelfast(*args, "--user", "gateway")
    assert again.returncode == 1
    assert "exists: run with --force" in again.stderr
    assert unit.read_text() == "# edited by hand\n"
    forced = panelfast(*args, "--user", "gateway", "--force")
    assert forced.returncode == 0, forced.stderr
    assert "User=gateway" in unit.read_text().splitlines()
    verify(unit)


def test_service_install_refuses_a_configuration_that_does_not_load(tmp_path: Path) -> None:
    config = tmp_path / "panelfast.toml"
    config.write_text('[identity]\nserial = "x"\n')
    result = panelfast("service", "install", "--config", str(config), "--prefix", str(tmp_path))
    assert result.returncode == 2
    assert "identity.serial" in result.stderr
    assert not (tmp_path / "etc").exists()


class NotifySocket:
    """A datagram socket systemd would listen on, at a path or in the abstract namespace."""

    def __init__(self, address: str) -> None:
        self.env_value = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.messages: list[list[str]] = []

    def receive_until(self, line: str, timeout_s: float) -> list[str]:
        """Messages until one holds ``line``; returns that message."""
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {line!r} within {timeout_s} s: {self.messages}")
            self.sock.settimeout(left)
            try:
                message = self.sock.recv(4096).decode().split("\n")
            except TimeoutError:
                continue
            self.messages.append(message)
            if line in message:
                return message

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("where", ["path", "abstract"])
def test_a_running_daemon_notifies_ready_watchdog_and_stopping(
    system: EmbeddedSystem, tmp_path: Path, where: str
) -> None:
    address = str(tmp_path / "notify") if where == "path" else f"@panelfast-test-{os.getpid()}"
    listener = NotifySocket(address)
    env = {
        **os.environ,
        "NOTIFY_SOCKET": listener.env_value,
        "WATCHDOG_USEC": "1000000",
        "PYTHONUNBUFFERED": "1",
    }
    log = (tmp_path / "gateway.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "panelfast", "run", "--config", str(system.config_path)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        ready = listener.receive_until("READY=1", 60)
        status = next(line for line in ready if line.startswith("STATUS="))
        assert "devices answering" in status
        assert "remote configuration none" in status
        # Pinged at half WATCHDOG_USEC while the gateway runs.
        started = time.monotonic()
        for _ in range(3):
            listener.receive_until("WATCHDOG=1", 10)
        assert time.monotonic() - started < 10
        process.send_signal(signal.SIGTERM)
        stopping = listener.receive_until("STOPPING=1", 30)
        assert any(line.startswith("STATUS=stopping") for line in stopping)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=20)
        log.close()
        listener.close()
    # The status line follows the devices: it says all three answer, at some point.
    statuses = [line for m in listener.messages for line in m if line.startswith("STATUS=")]
    assert any("3/3 devices answering" in s for s in statuses), statuses


async def test_watchdog_pings_stop_when_the_gateway_stops_working(
    system: EmbeddedSystem, tmp_path: Path
) -> None:
    listener = NotifySocket(str(tmp_path / "notify"))
    notifier = Notifier({"NOTIFY_SOCKET": listener.env_value, "WATCHDOG_USEC": "2000000"})
    try:
        async with Gateway(system.settings) as gateway:
            watch = ServiceWatch(gateway, notifier)
            watch.tick()
            assert listener.receive_until("WATCHDOG=1", 5) == ["WATCHDOG=1"]
            gateway.acquisition.stop()  # the engine stopped: the gateway samples nothing
            watch.tick()
            message = listener.receive_until("STATUS=unhealthy: a loop stopped", 5)
            assert "WATCHDOG=1" not in message
            watch.tick()
            listener.sock.settimeout(0.5)
            with pytest.raises(TimeoutError):
                listener.sock.recv(4096)  # no ping, and the status did not change
    finally:
        notifier.close()
        listener.close()


def test_without_notify_socket_nothing_is_sent() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    assert notifier.watchdog_s is None
    assert notifier.ready("x") is False
    notifier.close()


def test_watchdog_for_another_process_is_not_ours() -> None:
    notifier = Notifier({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid() + 1)})
    assert notifier.watchdog_s is None
    notifier.close()
