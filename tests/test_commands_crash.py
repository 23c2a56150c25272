"""Cloud commands across crashes and restarts: a worker process owns the command store
and is killed with SIGKILL; the reference cloud and the simulator are real servers.

- A command whose write reached the device but whose result was never
  recorded (killed in between) is not executed again: its result is
  ``failed`` (interrupted). One whose result was recorded but not posted has
  that result posted after the restart, without a second write.
- Schedules run with the cloud stopped, at the right local time across the
  spring and autumn DST changes (the worker's clock is injected), and a
  restart applies only the current state of the entries it missed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from commands_support import deliveries, result_of, wait_until
from panelfast.commands import CommandStore
from panelfast.config import write_secret
from panelfast.embedded import SERIAL, _toml, embedded_system
from panelfast.models.loader import ModelLibrary
from panelfast.refcloud import RefCloudProcess
from panelfast.simulator import Faults, SimulatedDevice, Simulator

TESTS = Path(__file__).parent
PYTHONPATH = os.pathsep.join([str(TESTS.parent / "python"), str(TESTS)])


def panelfast(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "panelfast", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": PYTHONPATH},
        check=False,
    )


class Worker:
    """``tests/commands_worker.py`` as a child process, killed or stopped at will."""

    def __init__(self, config: Path, folder: Path, clock_file: Path | None = None) -> None:
        self.config = config
        self.ready = folder / "worker.ready"
        self.log = folder / "worker.log"
        self.clock_file = clock_file
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.ready.unlink(missing_ok=True)
        args = [
            sys.executable,
            str(TESTS / "commands_worker.py"),
            str(self.config),
            str(self.ready),
        ]
        if self.clock_file is not None:
            args.append(str(self.clock_file))
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                args, stdout=log, stderr=log, env={**os.environ, "PYTHONPATH": PYTHONPATH}
            )
        wait_until(
            lambda: self.ready.exists() or self.process is None or self.process.poll() is not None,
            60,
            "the worker to start",
        )
        assert self.process.poll() is None, self.log.read_text()

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def write_config(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(_toml(document), encoding="utf-8")
    return path


def store_state(path: Path, command_id: str) -> str | None:
    store = CommandStore(path)
    try:
        record = store.command(command_id)
    finally:
        store.close()
    return None if record is None else record.state


def test_sigkill_between_the_write_and_its_result_never_executes_it_again(
    tmp_path: Path,
) -> None:
    with embedded_system(tmp_path, poll_period_ms=200) as system:
        cloud, sim = system.cloud, system.simulator
        # Devices may answer slowly (the IO module is made to, below): a longer timeout.
        text = system.config_path.read_text(encoding="utf-8")
        config = tmp_path / "gateway.toml"
        config.write_text(text.replace("timeout_ms = 1000", "timeout_ms = 5000"), encoding="utf-8")
        assert "timeout_ms = 5000" in config.read_text(encoding="utf-8")
        assert panelfast("connect", "--config", str(config)).returncode == 0
        enabled = panelfast(
            "outputs", "remote-control", "enable", "--yes-i-understand", "--config", str(config)
        )
        assert enabled.returncode == 0, enabled.stderr
        store_path = system.settings.storage.dir / "commands.sqlite"
        worker = Worker(config, tmp_path)
        try:
            # 1. Killed after the device took the write, before the gateway heard back:
            # the IO module answers 1.5 s late, the write is applied on receipt.
            sim.set_faults("io-1", Faults(latency_ms=1500))
            worker.start()
            first = cloud.queue_command(
                SERIAL, {"type": "output", "output": "io-1/Q1", "action": "on"}
            )["id"]
            wait_until(lambda: sim.writes("io-1") == 1, 30, "the write to reach the device")
            worker.kill()
            assert sim.outputs("io-1")["Q1"] is True
            assert store_state(store_path, first) == "executing"
            sim.set_faults("io-1", Faults())
            worker.start()
            wait_until(lambda: result_of(cloud, SERIAL, first) is not None, 30, "a result")
            result = result_of(cloud, SERIAL, first)
            assert result is not None
            assert result["status"] == "failed"
            assert result["reason"].startswith("interrupted: "), result

            # 2. Killed after the result was recorded, before the cloud had it: the
            # command comes again and its stored result is posted, nothing is written.
            cloud.inject_fault("unavailable", "command_result", count=100_000)
            second = cloud.queue_command(
                SERIAL, {"type": "output", "output": "io-1/Q1", "action": "off"}
            )["id"]
            wait_until(
                lambda: store_state(store_path, second) == "finished", 30, "the result recorded"
            )
            worker.kill()
            assert result_of(cloud, SERIAL, second) is None
            delivered = deliveries(cloud, SERIAL, second)
            worker.start()  # the results route still fails: the command is delivered again
            wait_until(lambda: deliveries(cloud, SERIAL, second) > delivered, 30, "a redelivery")
            cloud.clear_faults()
            wait_until(lambda: result_of(cloud, SERIAL, second) is not None, 30, "a result")
            assert result_of(cloud, SERIAL, second) == {"status": "done", "reason": None}
            time.sleep(1.0)  # the worker goes on polling: nothing more is written
            assert sim.writes("io-1") == 2
            assert sim.outputs("io-1")["Q1"] is False
        finally:
            worker.stop()
        history = panelfast("outputs", "history", "--json", "--config", str(config))
        assert history.returncode == 0, history.stderr
        assert f'"command_id": "{first}"' in history.stdout
        assert "interrupted" in history.stdout


@pytest.fixture(name="offline_site")
def offline_site_fixture(tmp_path: Path) -> Iterator[tuple[RefCloudProcess, Simulator, Path]]:
    """A cloud in its own process (to be stopped), the IO module, and a gateway's config."""
    library = ModelLibrary()
    with (
        RefCloudProcess(tmp_path / "cloud") as cloud,
        Simulator([SimulatedDevice("io-1", library.get("IO-C"))], seed=3) as sim,
    ):
        operator = cloud.operator
        write_secret(tmp_path / "claim.key", operator.enrol(SERIAL))
        endpoint = sim.endpoint("io-1")
        document = {
            "identity": {
                "serial": SERIAL,
                "mac": "aa:bb:cc:00:42:19",
                "claim_key_file": str(tmp_path / "claim.key"),
            },
            "cloud": {"bootstrap_url": operator.bootstrap_url, "ca_bundle": str(operator.ca_path)},
            "time": {"mode": "manual"},
            "storage": {"dir": str(tmp_path / "gateway")},
            "devices": [
                {
                    "id": "io-1",
                    "name": "IO module",
                    "model": "IO-C",
                    "connection": {
                        "type": "tcp",
                        "host": endpoint.host,
                        "port": endpoint.port,
                        "unit_id": endpoint.unit_id,
                        "period_ms": 200,
                    },
                }
            ],
        }
        yield cloud, sim, write_config(tmp_path / "gateway.toml", document)


def utc(text: str) -> float:
    return datetime.fromisoformat(text + "+00:00").timestamp()


def test_schedules_run_with_the_cloud_stopped_across_dst_and_restarts(
    offline_site: tuple[RefCloudProcess, Simulator, Path], tmp_path: Path
) -> None:
    cloud, sim, config = offline_site
    clock_file = tmp_path / "clock"

    def set_clock(at: str) -> None:
        scratch = tmp_path / "clock.tmp"
        scratch.write_text(repr(utc(at)), encoding="ascii")
        scratch.replace(clock_file)  # the worker never reads half a number

    def q1_becomes(state: bool, what: str) -> None:
        wait_until(lambda: sim.outputs("io-1")["Q1"] is state, 15, what)

    def stays(writes: int, seconds: float = 1.5) -> None:
        time.sleep(seconds)  # nothing may happen: give the worker time to do it wrongly
        assert sim.writes("io-1") == writes

    def entries_done(count: int) -> None:
        """Wait until the store holds ``count`` schedule entries executed (before a kill)."""

        def done() -> bool:
            store = CommandStore(config.parent / "gateway" / "commands.sqlite")
            try:
                history = store.history(1000)
            finally:
                store.close()
            return sum(1 for e in history if e.kind == "schedule_entry") == count

        wait_until(done, 15, f"{count} schedule entries recorded")

    assert panelfast("connect", "--config", str(config)).returncode == 0
    enabled = panelfast(
        "outputs", "remote-control", "enable", "--yes-i-understand", "--config", str(config)
    )
    assert enabled.returncode == 0, enabled.stderr
    # Saturday 28 March 2026, Paris: the next night the clocks go from 02:00 to 03:00.
    set_clock("2026-03-28T23:50:00")
    worker = Worker(config, tmp_path, clock_file)
    try:
        worker.start()
        schedule = {
            "id": "s1",
            "output": "io-1/Q1",
            "timezone": "Europe/Paris",
            "entries": [
                {"days": ["sun"], "at": "02:30", "action": "on"},
                {"days": ["sun"], "at": "03:15", "action": "off"},
            ],
        }
        command = cloud.operator.queue_command(SERIAL, {"type": "schedule", "schedule": schedule})
        wait_until(
            lambda: result_of(cloud.operator, SERIAL, command["id"]) is not None, 30, "stored"
        )
        assert result_of(cloud.operator, SERIAL, command["id"]) == {
            "status": "done",
            "reason": None,
        }
        cloud.stop()  # from here on the cloud is unreachable

        # Spring forward: 02:30 does not exist; it runs once, at 03:00 CEST (01:00 UTC).
        set_clock("2026-03-29T00:59:30")
        stays(0)
        set_clock("2026-03-29T01:00:00")
        q1_becomes(True, "Q1 on at 03:00 CEST, the first minute after the gap")
        set_clock("2026-03-29T01:14:50")
        stays(1)
        set_clock("2026-03-29T01:15:00")
        q1_becomes(False, "Q1 off at 03:15 CEST")
        assert sim.writes("io-1") == 2
        entries_done(2)

        # Down across the next Sunday's 02:30 entry: it is the current state, applied at start.
        worker.kill()
        set_clock("2026-04-05T00:45:00")  # 02:45 CEST
        worker.start()
        q1_becomes(True, "the missed 02:30 entry applied as the current state")
        stays(3)
        entries_done(3)

        # Down across both of the next Sunday's entries: only the last (off) is applied.
        worker.kill()
        set_clock("2026-04-12T02:00:00")  # 04:00 CEST
        worker.start()
        wait_until(lambda: sim.writes("io-1") == 4, 15, "the current state applied")
        assert sim.outputs("io-1")["Q1"] is False
        stays(4)
        entries_done(4)

        # Fall back, 25 October: 02:00-03:00 happens twice; 02:30 runs at the first only.
        worker.kill()
        set_clock("2026-10-25T00:20:00")  # 02:20 CEST
        worker.start()
        wait_until(lambda: sim.writes("io-1") == 5, 15, "the current state (off) applied")
        set_clock("2026-10-25T00:30:00")  # 02:30 CEST
        q1_becomes(True, "Q1 on at the first 02:30")
        set_clock("2026-10-25T01:30:00")  # 02:30 CET, the repeated hour
        stays(6)
        set_clock("2026-10-25T02:15:00")  # 03:15 CET
        q1_becomes(False, "Q1 off at 03:15 CET")
        assert sim.writes("io-1") == 7
        entries_done(7)
    finally:
        worker.stop()
    history = panelfast("outputs", "history", "--json", "--limit", "100", "--config", str(config))
    assert history.returncode == 0, history.stderr
    entries = [line for line in history.stdout.splitlines() if '"schedule_entry"' in line]
    assert len(entries) == 7
    assert all('"source": "schedule"' in line and '"status": "done"' in line for line in entries)
