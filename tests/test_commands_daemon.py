"""Cloud commands in the running daemon, as a site engineer meets them.

Separate processes: ``panelfast run`` (the gateway), each ``panelfast``
command, the reference cloud and the simulator's IO module (in this process,
or the cloud in a process of its own where it must be stopped). What counts
is what the device saw (``Simulator.writes``, its outputs), what the cloud
received and what the CLI printed.
"""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from commands_support import deliveries, in_terminal, result_of
from panelfast.commands import RISK, CommandStore
from panelfast.config import write_secret
from panelfast.embedded import SERIAL, EmbeddedSystem, _toml, embedded_system
from panelfast.models.loader import ModelLibrary
from panelfast.refcloud import RefCloudProcess
from panelfast.simulator import Faults, SimulatedDevice, Simulator
from reliability_support import GatewayProcess, wait_until

Q1 = "io-1/Q1"
Q2 = "io-1/Q2"


def panelfast(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "panelfast", *args],
        stdin=subprocess.DEVNULL,  # no terminal: nobody to ask
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def with_config(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return panelfast(*args, "--config", str(config))


def start(daemon: GatewayProcess) -> None:
    daemon.start()
    wait_until(
        lambda: with_config(daemon.config_path, "status").returncode == 0 or not daemon.alive,
        60,
        "the daemon serves its control API",
    )
    assert daemon.alive, daemon.tail()


def connect(config: Path) -> None:
    connected = with_config(config, "connect")
    assert connected.returncode == 0, connected.stdout + connected.stderr


def enable(config: Path) -> None:
    enabled = with_config(config, "outputs", "remote-control", "enable", "--yes-i-understand")
    assert enabled.returncode == 0, enabled.stderr
    assert "Outputs remote control: enabled" in enabled.stdout


def result(cloud: Any, command_id: str, timeout_s: float = 30) -> dict[str, Any]:
    wait_until(
        lambda: result_of(cloud, SERIAL, command_id) is not None,
        timeout_s,
        f"the result of {command_id} at the cloud",
    )
    found = result_of(cloud, SERIAL, command_id)
    assert found is not None
    return found


def states(cloud: Any, source: str | None = None) -> list[tuple[str, str, str]]:
    return [
        (s["output"], s["state"], s["source"])
        for s in cloud.output_states(SERIAL)
        if source is None or s["source"] == source
    ]


@pytest.fixture(name="system")
def system_fixture(tmp_path: Path) -> Iterator[EmbeddedSystem]:
    with embedded_system(tmp_path, poll_period_ms=200) as system:
        yield system


@pytest.fixture(name="daemon")
def daemon_fixture(system: EmbeddedSystem, tmp_path: Path) -> Iterator[GatewayProcess]:
    process = GatewayProcess(system.config_path, tmp_path / "gateway.log")
    try:
        yield process
    finally:
        process.close()
        if process.log_path.exists():
            print(process.tail(60))  # shown when the test failed


def test_remote_control_through_the_daemon_gates_the_clouds_output_commands(
    system: EmbeddedSystem, daemon: GatewayProcess
) -> None:
    cloud, sim, config = system.cloud, system.simulator, system.config_path
    start(daemon)
    connect(config)

    # Disabled (the default): rejected, and the device sees no write.
    refused = cloud.queue_command(SERIAL, {"type": "output", "output": Q1, "action": "on"})["id"]
    assert result(cloud, refused) == {"status": "rejected", "reason": "remote_control_disabled"}
    assert sim.writes("io-1") == 0
    assert sim.outputs("io-1") == {"Q1": False, "Q2": False}

    # Enabling without a terminal and without the flag: refused, the risk named.
    silent = with_config(config, "outputs", "remote-control", "enable")
    assert silent.returncode == 1
    assert RISK in silent.stderr
    assert "--yes-i-understand" in silent.stderr
    shown = with_config(config, "outputs", "remote-control", "status")
    assert "Outputs remote control: disabled" in shown.stdout, shown.stdout
    # In a terminal: asked, the risk shown; "no" keeps it disabled, "yes" enables it.
    enable_args = ("outputs", "remote-control", "enable", "--config", str(config))
    declined = in_terminal(*enable_args, answer="n\n")
    assert declined.returncode == 1
    assert RISK in declined.stdout
    assert "stays disabled" in declined.stderr
    accepted = in_terminal(*enable_args, answer="y\n")
    assert accepted.returncode == 0, accepted.stderr
    assert "Outputs remote control: enabled" in accepted.stdout
    assert "by socket:uid=" in accepted.stdout  # the daemon names who did it
    assert "gateway not running" not in accepted.stderr
    disabled = with_config(config, "outputs", "remote-control", "disable")
    assert "Outputs remote control: disabled" in disabled.stdout, disabled.stderr
    enable(config)  # and with the flag, as a script does

    # Enabled: the cloud's command switches the IO module, read back, reported.
    switched = cloud.queue_command(SERIAL, {"type": "output", "output": Q1, "action": "on"})["id"]
    assert result(cloud, switched) == {"status": "done", "reason": None}
    assert sim.outputs("io-1") == {"Q1": True, "Q2": False}
    assert sim.writes("io-1") == 1
    wait_until(lambda: (Q1, "on", "cloud") in states(cloud), 30, "Q1's state reported")

    # Expired by the gateway's clock: rejected, not written.
    expired = cloud.queue_command(
        SERIAL,
        {"type": "output", "output": Q1, "action": "off", "expires_at": int(time.time()) - 10},
    )["id"]
    assert result(cloud, expired) == {"status": "rejected", "reason": "expired"}
    assert sim.writes("io-1") == 1
    assert sim.outputs("io-1")["Q1"] is True

    # Switched from here: remote control is not what allows it; the cloud hears of it.
    local = with_config(config, "outputs", "switch", Q2, "on")
    assert local.returncode == 0, local.stderr
    assert local.stdout == f"{Q2}: on (read back)\n"
    assert sim.outputs("io-1") == {"Q1": True, "Q2": True}
    wait_until(lambda: (Q2, "on", "local") in states(cloud), 30, "Q2's state reported")
    unknown = with_config(config, "outputs", "switch", "io-1/Q9", "on")
    assert unknown.returncode == 1
    assert "no output io-1/Q9 on this gateway" in unknown.stderr

    listed = with_config(config, "outputs")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].startswith(f"{Q1} 'Output Q1 (contactor)' (contactor): on  last change "), lines
    assert lines[0].endswith(" by cloud")
    assert lines[1].endswith(" by local"), lines

    history = with_config(config, "outputs", "history")
    assert history.returncode == 0, history.stderr
    text = history.stdout
    assert f"cloud    output {Q1} on [{switched}]: done  read back: on" in text
    assert f"[{refused}]: rejected (remote_control_disabled)" in text
    assert f"[{expired}]: rejected (expired)" in text
    assert f"local    output {Q2} on: done  read back: on socket:uid=" in text
    assert "local    remote_control: enabled" in text
    as_json = with_config(config, "outputs", "history", "--json", "--limit", "3")
    entries = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [e["kind"] for e in entries] == ["output", "output", "output"]
    assert entries[0]["who"].startswith("socket:uid=")

    status = with_config(config, "status")
    assert "Outputs remote control: enabled" in status.stdout, status.stdout
    audit = with_config(config, "audit").stdout
    assert "outputs.remote_control" in audit
    assert "outputs.switch" in audit

    # Disabled again: the next command is rejected, nothing written.
    assert with_config(config, "outputs", "remote-control", "disable").returncode == 0
    again = cloud.queue_command(SERIAL, {"type": "output", "output": Q1, "action": "off"})["id"]
    assert result(cloud, again) == {"status": "rejected", "reason": "remote_control_disabled"}
    assert sim.writes("io-1") == 2  # the cloud's Q1 on, the local Q2 on
    assert sim.outputs("io-1") == {"Q1": True, "Q2": True}


def test_disconnect_stops_the_command_poll_and_connect_resumes_it(
    system: EmbeddedSystem, daemon: GatewayProcess
) -> None:
    cloud, config = system.cloud, system.config_path
    start(daemon)
    connect(config)
    enable(config)
    first = cloud.queue_command(SERIAL, {"type": "output", "output": Q1, "action": "on"})["id"]
    assert result(cloud, first)["status"] == "done"

    done = with_config(config, "disconnect")
    assert done.returncode == 0, done.stderr
    returned = time.time()
    waiting = cloud.queue_command(SERIAL, {"type": "output", "output": Q1, "action": "off"})["id"]
    # §11: no request at all for 30 s, the commands long poll included.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        heard = cloud.requests(since=returned)
        assert heard == [], f"the gateway talked to the cloud while disconnected: {heard[:5]}"
        time.sleep(1)
    assert result_of(cloud, SERIAL, waiting) is None
    assert system.simulator.outputs("io-1")["Q1"] is True

    assert with_config(config, "connect").returncode == 0
    assert result(cloud, waiting) == {"status": "done", "reason": None}
    assert system.simulator.outputs("io-1")["Q1"] is False
    polls = [r for r in cloud.requests(since=returned) if r[2] == "commands"]
    assert polls, cloud.requests(since=returned)


def test_a_command_interrupted_by_sigkill_is_never_executed_again(
    system: EmbeddedSystem, tmp_path: Path
) -> None:
    cloud, sim = system.cloud, system.simulator
    # The IO module is made to answer slowly below: a longer timeout.
    text = system.config_path.read_text(encoding="utf-8")
    config = tmp_path / "slow.toml"
    config.write_text(text.replace("timeout_ms = 1000", "timeout_ms = 5000"), encoding="utf-8")
    assert "timeout_ms = 5000" in config.read_text(encoding="utf-8")
    store_path = system.settings.storage.dir / "commands.sqlite"

    def stored(command_id: str) -> str | None:
        store = CommandStore(store_path)
        try:
            record = store.command(command_id)
        finally:
            store.close()
        return None if record is None else record.state

    daemon = GatewayProcess(config, tmp_path / "gateway.log")
    try:
        start(daemon)
        connect(config)
        enable(config)
        # 1. Killed once the device took the write, before the daemon heard back
        # (the IO module answers 1.5 s late, the write applied on receipt).
        sim.set_faults("io-1", Faults(latency_ms=1500))
        first = cloud.queue_command(SERIAL, {"type": "output", "output": Q1, "action": "on"})["id"]
        wait_until(lambda: sim.writes("io-1") == 1, 30, "the write to reach the device")
        daemon.kill()
        assert sim.outputs("io-1")["Q1"] is True
        assert stored(first) == "executing"
        sim.set_faults("io-1", Faults())
        start(daemon)
        outcome = result(cloud, first)
        assert outcome["status"] == "failed"
        assert outcome["reason"].startswith("interrupted: "), outcome
        assert sim.writes("io-1") == 1

        # 2. Killed once the result was recorded, before the cloud had it: the command
        # comes again (same id) and its stored result is posted, nothing written.
        cloud.inject_fault("unavailable", "command_result", count=100_000)
        second = cloud.queue_command(SERIAL, {"type": "output", "output": Q1, "action": "off"})[
            "id"
        ]
        wait_until(lambda: stored(second) == "finished", 30, "the result recorded")
        daemon.kill()
        assert result_of(cloud, SERIAL, second) is None
        delivered = deliveries(cloud, SERIAL, second)
        start(daemon)
        wait_until(lambda: deliveries(cloud, SERIAL, second) > delivered, 30, "a redelivery")
        cloud.clear_faults()
        assert result(cloud, second) == {"status": "done", "reason": None}
        assert sim.writes("io-1") == 2
        assert sim.outputs("io-1")["Q1"] is False
        history = with_config(config, "outputs", "history", "--json")
        assert history.returncode == 0, history.stderr
        entries = [json.loads(line) for line in history.stdout.splitlines()]
        mine = [e for e in entries if e["command_id"] in {first, second}]
        assert [(e["command_id"], e["status"]) for e in mine] == [
            (second, "done"),
            (first, "failed"),
        ]
    finally:
        daemon.close()
        print(daemon.tail(60))


def test_the_log_bundle_carries_the_daemons_log_lines_and_file_without_secrets(
    system: EmbeddedSystem, tmp_path: Path
) -> None:
    import zstandard

    log_file = tmp_path / "logs" / "panelfast.log"
    config = tmp_path / "logging.toml"
    config.write_text(
        system.config_path.read_text(encoding="utf-8") + f'\n[logging]\nfile = "{log_file}"\n',
        encoding="utf-8",
    )
    claim_key = system.settings.identity.claim_key().get_secret_value()
    daemon = GatewayProcess(config, tmp_path / "gateway.log")
    try:
        start(daemon)
        connect(config)
        command_id = system.cloud.queue_command(SERIAL, {"type": "upload_logs"})["id"]
        assert result(system.cloud, command_id, 60) == {"status": "done", "reason": None}
    finally:
        daemon.close()
    uploads = system.cloud.uploads(SERIAL)
    assert [u["kind"] for u in uploads] == ["logs"]
    data = system.cloud.upload_bytes(uploads[0]["upload_id"])
    raw = zstandard.ZstdDecompressor().decompressobj().decompress(data)
    assert claim_key.encode() not in raw
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        files = {
            m.name.removeprefix("panelfast-diagnostics/"): tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
        }
    recent = files["logs/recent.log"].decode()
    assert f"gateway {SERIAL} started: 3 devices" in recent
    assert "control API on" in recent
    assert "cloud: connect requested" in recent
    tail = files["logs/panelfast.log"].decode()
    assert f"gateway {SERIAL} started: 3 devices" in tail
    status = json.loads(files["status.json"])
    assert status["outputs"]["remote_control"] is False
    assert [o["id"] for o in status["outputs"]["outputs"]] == ["Q1", "Q2"]
    assert {d["device_id"] for d in json.loads(files["devices.json"])} == {"mb-1", "mb-2", "io-1"}
    assert json.loads(files["topology.json"])["devices"]


async def test_the_python_client_reads_and_switches_outputs(
    system: EmbeddedSystem, daemon: GatewayProcess
) -> None:
    from panelfast.client import ControlRefused, GatewayClient

    start(daemon)
    async with GatewayClient.from_config(system.config_path) as gw:
        outputs = await gw.outputs()
        assert [(o.device, o.id, o.mode) for o in outputs] == [
            ("io-1", "Q1", "contactor"),
            ("io-1", "Q2", "impulse"),
        ]
        remote = await gw.remote_control()
        assert (remote.enabled, remote.risk) == (False, RISK)
        with pytest.raises(ControlRefused) as refused:
            await gw.enable_remote_control("yes")
        assert refused.value.status == 400
        assert refused.value.error == "confirmation_required"
        assert RISK in str(refused.value)
        assert (await gw.remote_control()).enabled is False
        enabled = await gw.enable_remote_control(RISK)
        assert enabled.enabled
        assert (enabled.changed_by or "").startswith("socket:uid=")

        # A toggle needs the output's state: wait for the IO module's first poll.
        deadline = time.monotonic() + 30
        while any(o.state is None for o in await gw.outputs()):
            assert time.monotonic() < deadline, "the IO module is polled"
            await asyncio.sleep(0.1)
        switched = await gw.switch(Q1, "toggle")
        assert (switched.status, switched.readback) == ("done", "on")
        assert system.simulator.outputs("io-1")["Q1"] is True
        with pytest.raises(ControlRefused) as unknown:
            await gw.switch("io-1/Q9", "on")
        assert (unknown.value.status, unknown.value.error) == (404, "unknown_output")
        system.simulator.set_faults("io-1", Faults(dead=True))
        with pytest.raises(ControlRefused) as failed:
            await gw.switch(Q1, "off")
        assert (failed.value.status, failed.value.error) == (502, "switch_failed")
        system.simulator.set_faults("io-1", Faults())

        status = await gw.status()
        assert status.outputs.remote_control is True
        assert status.outputs.control_scheduling is False  # no schedule stored
        q1 = next(o for o in status.outputs.outputs if o.id == "Q1")
        assert q1.changed_by == "local"
        history = await gw.output_history(limit=3)
        assert [(e.kind, e.action, e.status) for e in history] == [
            ("output", "off", "failed"),
            ("output", "toggle", "done"),
            ("remote_control", None, "enabled"),
        ]
        assert history[0].reason is not None
        older = await gw.output_history(limit=10, before=history[1].seq)
        assert [e.seq for e in older] == [history[2].seq]
        assert await gw.schedules() == []
        audit = [(e.action, e.outcome.split(":")[0]) for e in await gw.audit()]
        assert audit == [
            ("outputs.remote_control", "RemoteControlNotConfirmed"),
            ("outputs.remote_control", "ok"),
            ("outputs.switch", "ok"),
            ("outputs.switch", "SwitchFailed"),
        ]
        disabled = await gw.disable_remote_control()
        assert disabled.enabled is False


def without_device(config: Path, device_id: str) -> str:
    """The configuration file's text without one ``[[devices]]`` block."""
    head, *blocks = config.read_text(encoding="utf-8").split("[[devices]]")
    kept = [b for b in blocks if f'id = "{device_id}"' not in b]
    assert len(kept) == len(blocks) - 1
    return "[[devices]]".join([head, *kept])


def test_outputs_follow_a_live_reload_of_the_devices(
    system: EmbeddedSystem, daemon: GatewayProcess
) -> None:
    cloud, sim, config = system.cloud, system.simulator, system.config_path
    start(daemon)
    connect(config)
    enable(config)
    original = config.read_text(encoding="utf-8")
    # mb-1 comes before the IO module: without it, every point of io-1 is renumbered.
    config.write_text(without_device(config, "mb-1"), encoding="utf-8")
    reloaded = with_config(config, "reload")
    assert reloaded.returncode == 0, reloaded.stdout + reloaded.stderr
    switched = cloud.queue_command(SERIAL, {"type": "output", "output": Q1, "action": "toggle"})
    assert result(cloud, switched["id"]) == {"status": "done", "reason": None}
    assert sim.outputs("io-1") == {"Q1": True, "Q2": False}
    local = with_config(config, "outputs", "switch", Q2, "toggle")
    assert local.stdout == f"{Q2}: on (read back)\n", local.stderr
    wait_until(
        lambda: (
            [
                line.split(": ")[1].split()[0]
                for line in with_config(config, "outputs").stdout.splitlines()
            ]
            == ["on", "on"]
        ),
        30,
        "the outputs' states read at their new places",
    )

    # Without the IO module: its outputs are gone, the cloud's command is refused.
    config.write_text(without_device(config, "io-1"), encoding="utf-8")
    assert with_config(config, "reload").returncode == 0
    listed = with_config(config, "outputs")
    assert listed.stdout.startswith("no output configured"), listed.stdout
    gone = cloud.queue_command(SERIAL, {"type": "output", "output": Q1, "action": "off"})
    outcome = result(cloud, gone["id"])
    assert outcome["status"] == "rejected"
    assert outcome["reason"].startswith("unknown_output: "), outcome

    config.write_text(original, encoding="utf-8")  # all back
    assert with_config(config, "reload").returncode == 0
    back = with_config(config, "outputs", "switch", Q1, "off")
    assert back.stdout == f"{Q1}: off (read back)\n", back.stderr
    history = with_config(config, "outputs", "history", "--json")
    kinds = [json.loads(line)["kind"] for line in history.stdout.splitlines()]
    assert "state_change" not in kinds, "no change seen that nobody made"
    assert sim.writes("io-1") == 3


def test_without_a_daemon_the_cli_switches_and_says_so(
    system: EmbeddedSystem, daemon: GatewayProcess
) -> None:
    cloud, sim, config = system.cloud, system.simulator, system.config_path
    switched = with_config(config, "outputs", "switch", Q1, "toggle")
    assert switched.returncode == 0, switched.stderr
    assert "gateway not running: switched from here" in switched.stderr
    assert switched.stdout == f"{Q1}: on (read back)\n"
    assert sim.outputs("io-1") == {"Q1": True, "Q2": False}
    assert sim.writes("io-1") == 1
    missing = with_config(config, "outputs", "switch", "io-1/Q9", "on")
    assert missing.returncode == 1
    assert "io-1 (IO-C) has no output 'Q9' (outputs: Q1, Q2)" in missing.stderr
    listed = with_config(config, "outputs", "list")
    assert "gateway not running: the outputs' last known states" in listed.stderr
    assert listed.stdout.splitlines()[0].endswith(" by local"), listed.stdout
    history = with_config(config, "outputs", "history")
    assert f"local    output {Q1} toggle: done  read back: on cli:uid=" in history.stdout
    scheduled = with_config(config, "outputs", "schedules")
    assert scheduled.stdout == "no schedule stored\n", scheduled.stderr

    # The daemon, once started and connected, tells the cloud what was done meanwhile.
    start(daemon)
    connect(config)
    wait_until(lambda: (Q1, "on", "local") in states(cloud), 30, "the change reported")


# -- schedules with the cloud stopped: the cloud in a process of its own


@pytest.fixture(name="site")
def site_fixture(tmp_path: Path) -> Iterator[tuple[RefCloudProcess, Simulator, Path]]:
    """A cloud that can be stopped, the IO module, and a gateway configured for them."""
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
        config = tmp_path / "gateway.toml"
        config.write_text(_toml(document), encoding="utf-8")
        yield cloud, sim, config


def next_entry(zone: ZoneInfo, lead_s: float = 30) -> tuple[str, str, float]:
    """The next whole minute at least ``lead_s`` away: its day and ``HH:MM`` in ``zone``."""
    now = time.time()
    at = (int(now // 60) + 1) * 60
    if at - now < lead_s:
        at += 60
    local = datetime.fromtimestamp(at, zone)
    return ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[local.weekday()], f"{local:%H:%M}", at


def test_a_schedule_from_the_cloud_runs_in_the_daemon_with_the_cloud_stopped(
    site: tuple[RefCloudProcess, Simulator, Path], tmp_path: Path
) -> None:
    cloud, sim, config = site
    daemon = GatewayProcess(config, tmp_path / "gateway.log")
    try:
        start(daemon)
        connect(config)
        enable(config)
        zone = ZoneInfo("Europe/Paris")
        day, at, when = next_entry(zone)
        schedule = {
            "id": "pump",
            "output": Q1,
            "timezone": "Europe/Paris",
            "entries": [{"days": [day], "at": at, "action": "on"}],
        }
        command = cloud.operator.queue_command(SERIAL, {"type": "schedule", "schedule": schedule})
        assert result(cloud.operator, command["id"]) == {"status": "done", "reason": None}
        listed = with_config(config, "outputs", "schedules")
        assert listed.returncode == 0, listed.stderr
        assert f"pump: {Q1}, Europe/Paris, next " in listed.stdout
        assert f"  {day} {at} on" in listed.stdout
        status = with_config(config, "status")
        assert "Control scheduling:     active" in status.stdout, status.stdout

        cloud.stop()  # from here on the cloud is unreachable
        assert time.time() < when, "the entry must fall after the cloud stopped"
        assert sim.writes("io-1") == 0
        wait_until(
            lambda: sim.outputs("io-1")["Q1"] is True,
            when - time.time() + 30,
            f"Q1 switched on at {at} Paris time by the schedule",
        )
        assert time.time() >= when - 1, "not before its minute"
        assert daemon.alive, daemon.tail()
        assert sim.writes("io-1") == 1

        def ran() -> list[tuple[str, str, str]]:
            history = with_config(config, "outputs", "history", "--json")
            entries = [json.loads(line) for line in history.stdout.splitlines()]
            return [
                (e["source"], e["status"], e["readback"])
                for e in entries
                if e["kind"] == "schedule_entry"
            ]

        # Recorded once the state is read back, just after the write.
        wait_until(lambda: ran() != [], 30, "the schedule entry in the history")
        assert ran() == [("schedule", "done", "on")]

        # The cloud back: the state change kept while it was away reaches it.
        cloud.restart()
        assert with_config(config, "connect").returncode == 0
        wait_until(
            lambda: (Q1, "on", "schedule") in states(cloud.operator),
            60,
            "the schedule's switch reported once the cloud is back",
        )
    finally:
        daemon.close()
        print(daemon.tail(60))
