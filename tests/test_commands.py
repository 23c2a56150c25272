"""Cloud commands end to end (§9): a real reference cloud (HTTPS), a real simulator
(Modbus TCP, its IO module), the acquisition engine and a running CommandService.

What the device saw is checked at the simulator: how many write requests
reached it (``Simulator.writes``) and its outputs' states.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from pymodbus.client import ModbusTcpClient

from commands_support import (
    WireTap,
    await_result,
    eventually,
    result_of,
    running_service,
)
from gateway_support import settings_document
from panelfast.clock import Clock
from panelfast.cloud import RetryPolicy
from panelfast.config import parse_settings
from panelfast.embedded import DEFAULT_DEVICES, EmbeddedDevice, EmbeddedSystem, embedded_system
from panelfast.models.loader import SHIPPED_DIR
from panelfast.simulator import Faults

Q1 = "io-1/Q1"
Q2 = "io-1/Q2"


@pytest.fixture(name="system")
def system_fixture(tmp_path: Path) -> Iterator[EmbeddedSystem]:
    with embedded_system(tmp_path, poll_period_ms=100) as system:
        yield system


def queue(system: EmbeddedSystem, command: dict[str, Any], *, raw: bool = False) -> str:
    return str(system.cloud.queue_command(system.serial, command, raw=raw)["id"])


def writes(system: EmbeddedSystem) -> int:
    return sum(system.simulator.writes(d.id) for d in system.simulator.devices)


async def test_disabled_remote_control_rejects_every_output_and_schedule_command(
    system: EmbeddedSystem,
) -> None:
    async with running_service(system) as run:
        assert run.service.remote_control().enabled is False  # the default
        ids = [
            queue(system, {"type": "output", "output": Q1, "action": "on"}),
            queue(system, {"type": "output", "output": Q2, "action": "toggle"}),
            queue(system, {"type": "output", "output": "io-1/NoSuch", "action": "off"}),
            queue(
                system,
                {
                    "type": "schedule",
                    "schedule": {
                        "id": "s1",
                        "output": Q1,
                        "timezone": "Europe/Paris",
                        "entries": [{"days": ["mon"], "at": "07:30", "action": "on"}],
                    },
                },
            ),
        ]
        for command_id in ids:
            result = await await_result(system.cloud, system.serial, command_id)
            assert result == {"status": "rejected", "reason": "remote_control_disabled"}
        history = run.service.history()
        assert [e.status for e in history] == ["rejected"] * 4
        assert {e.source for e in history} == {"cloud"}
        assert run.service.schedules() == []
        assert not run.service.scheduling_active()
        # Enabled afterwards: nothing rejected is executed late.
        run.service.enable_remote_control(confirmed=True)
        await asyncio.sleep(1.0)
    assert writes(system) == 0, "a device saw a write while remote control was disabled"
    assert system.simulator.outputs("io-1") == {"Q1": False, "Q2": False}
    assert not [s for s in system.cloud.output_states(system.serial) if s["source"] != "local"]


async def test_enabled_output_commands_switch_and_read_back(system: EmbeddedSystem) -> None:
    sim = system.simulator
    async with running_service(system) as run:
        run.service.enable_remote_control(confirmed=True)
        steps = [
            (Q1, "on", {"Q1": True, "Q2": False}),
            (Q1, "toggle", {"Q1": False, "Q2": False}),
            (Q1, "toggle", {"Q1": True, "Q2": False}),
            (Q1, "off", {"Q1": False, "Q2": False}),
            # Q2 drives an impulse relay: its state stays after the pulse.
            (Q2, "on", {"Q1": False, "Q2": True}),
            (Q2, "toggle", {"Q1": False, "Q2": False}),
        ]
        for output, action, expected in steps:
            before = writes(system)
            command_id = queue(system, {"type": "output", "output": output, "action": action})
            result = await await_result(system.cloud, system.serial, command_id)
            assert result == {"status": "done", "reason": None}, (output, action)
            assert sim.outputs("io-1") == expected, (output, action)
            if output == Q1:
                assert writes(system) == before + 1
            else:  # right after a pulse the IO answers "busy" (0x06): the write is tried again
                assert writes(system) >= before + 1
            entry = next(e for e in run.service.history() if e.command_id == command_id)
            state = expected[output.split("/")[1]]
            assert (entry.source, entry.target, entry.action) == ("cloud", output, action)
            assert entry.readback == ("on" if state else "off")
        await asyncio.sleep(0.7)  # Q2's pulse is over: the relay is still off, nothing flips
        assert sim.outputs("io-1") == {"Q1": False, "Q2": False}

        def reported() -> list[tuple[str, str, str]]:
            return [
                (s["output"], s["state"], s["source"])
                for s in system.cloud.output_states(system.serial)
                if s["source"] == "cloud"
            ]

        expected_states = [
            (Q1, "on", "cloud"),
            (Q1, "off", "cloud"),
            (Q1, "on", "cloud"),
            (Q1, "off", "cloud"),
            (Q2, "on", "cloud"),
            (Q2, "off", "cloud"),
        ]
        await eventually(lambda: reported() == expected_states, 10, "every change reported")
        stamps = [s["ts"] for s in system.cloud.output_states(system.serial)]
        assert stamps == sorted(stamps)


async def test_expired_unknown_and_malformed_commands_are_rejected_without_a_write(
    system: EmbeddedSystem,
) -> None:
    async with running_service(system) as run:
        run.service.enable_remote_control(confirmed=True)
        now = int(run.service.clock.now())
        cases = [
            (
                {"type": "output", "output": Q1, "action": "on", "expires_at": now - 5},
                False,
                "expired",
            ),
            ({"type": "output", "output": "io-1/Q9", "action": "on"}, False, "unknown_output: "),
            ({"type": "output", "output": "mb-1/Q1", "action": "on"}, False, "unknown_output: "),
            ({"type": "output", "output": Q1, "action": "flip"}, True, "invalid_command: action"),
            ({"type": "reboot"}, True, "unknown_command_type: 'reboot'"),
            (
                {
                    "type": "schedule",
                    "schedule": {
                        "id": "s1",
                        "output": Q1,
                        "timezone": "Mars/Olympus_Mons",
                        "entries": [{"days": ["mon"], "at": "07:30", "action": "on"}],
                    },
                },
                True,
                "invalid_command: schedule.timezone",
            ),
            ({"type": "schedule_delete", "schedule_id": "nope"}, False, "unknown_schedule: "),
        ]
        for body, raw, reason in cases:
            command_id = queue(system, body, raw=raw)
            result = await await_result(system.cloud, system.serial, command_id)
            assert result["status"] == "rejected", body
            assert result["reason"].startswith(reason), (body, result)
        # An expiry still ahead is executed.
        command_id = queue(
            system, {"type": "output", "output": Q1, "action": "on", "expires_at": now + 300}
        )
        assert (await await_result(system.cloud, system.serial, command_id))["status"] == "done"
    assert writes(system) == 1


async def test_read_back_mismatch_and_dead_device_fail_with_a_reason(
    system: EmbeddedSystem, tmp_path: Path
) -> None:
    # A register map whose Q1 status points at Q2's status register: the write
    # is done, but the state read back is not the one commanded.
    models = tmp_path / "models"
    models.mkdir()
    text = (SHIPPED_DIR / "io_c.toml").read_text(encoding="utf-8")
    text = text.replace('name = "IO-C"', 'name = "IO-C-miswired"').replace(
        "command_address = 37050, status_address = 37020",
        "command_address = 37050, status_address = 37021",
    )
    (models / "io_c_miswired.toml").write_text(text, encoding="utf-8")
    document = settings_document(system.settings)
    document["gateway"]["model_dirs"] = [str(models)]
    for device in document["devices"]:
        if device["id"] == "io-1":
            device["model"] = "IO-C-miswired"
    settings = parse_settings(document)
    async with running_service(system, settings) as run:
        run.service.enable_remote_control(confirmed=True)
        command_id = queue(system, {"type": "output", "output": Q1, "action": "on"})
        result = await await_result(system.cloud, system.serial, command_id)
        assert result["status"] == "failed"
        assert result["reason"] == (
            "readback_mismatch: io-1/Q1 reads off after the write, expected on"
        )
        assert system.simulator.outputs("io-1")["Q1"] is True  # the write itself went through

        system.simulator.set_faults("io-1", Faults(dead=True))
        command_id = queue(system, {"type": "output", "output": Q1, "action": "off"})
        result = await await_result(system.cloud, system.serial, command_id, timeout_s=30)
        assert result["status"] == "failed"
        assert result["reason"].startswith("write_failed: "), result


async def test_a_change_made_on_the_device_is_reported_as_local(system: EmbeddedSystem) -> None:
    sim = system.simulator
    async with running_service(system) as run:

        def local() -> list[tuple[str, str]]:
            return [
                (s["output"], s["state"])
                for s in system.cloud.output_states(system.serial)
                if s["source"] == "local"
            ]

        # The state first seen is reported too: the cloud learns where each output stands.
        await eventually(lambda: (Q1, "off") in local(), 10, "Q1's first state reported")
        host, port, unit, _ = sim.endpoint("io-1")
        client = ModbusTcpClient(host, port=port)
        assert client.connect()
        with client:  # someone switches Q1 on the device itself
            assert not client.write_register(37050, 2, device_id=unit).isError()

        await eventually(lambda: (Q1, "on") in local(), 10, "Q1 on reported as local")
        entry = next(e for e in run.service.history() if e.kind == "state_change")
        assert (entry.source, entry.target, entry.readback) == ("local", Q1, "on")
        # A local switch through the gateway (the control API's way) is audited too.
        result = await run.service.switch(Q1, "off")
        assert (result.status, result.readback) == ("done", "off")
        assert sim.outputs("io-1")["Q1"] is False
        await eventually(lambda: local()[-1:] == [(Q1, "off")], 10, "the local switch reported")


async def test_results_withheld_by_an_outage_are_posted_later_without_executing_again(
    system: EmbeddedSystem,
) -> None:
    retry = RetryPolicy(initial_s=0.05, max_s=0.2, max_attempts=2)
    system.cloud.inject_fault("unavailable", "command_result", count=1000)
    async with running_service(system, retry=retry) as run:
        run.service.enable_remote_control(confirmed=True)
        ids = [
            queue(system, {"type": "output", "output": Q1, "action": action})
            for action in ("on", "off", "on")
        ]
        await eventually(
            lambda: sum(1 for e in run.service.history() if e.command_id in ids) == 3,
            20,
            "the three commands executed",
        )
        # Delivered again and again while their results cannot be posted: never re-executed.
        await asyncio.sleep(1.5)
        assert writes(system) == 3
        assert all(
            c["result"] is None and c["deliveries"] >= 2
            for c in system.cloud.commands(system.serial)
        )
        system.cloud.clear_faults()
        run.service.wake()
        for command_id in ids:
            result = await await_result(system.cloud, system.serial, command_id)
            assert result["status"] == "done"
    assert writes(system) == 3
    assert system.simulator.outputs("io-1")["Q1"] is True


async def test_a_write_during_heavy_polling_goes_first_and_never_interleaves(
    tmp_path: Path,
) -> None:
    meters = tuple(EmbeddedDevice(f"pm-{k}", "PM5560", f"Feeder {k}") for k in range(12))
    with embedded_system(
        tmp_path, devices=(*DEFAULT_DEVICES, *meters), poll_period_ms=50
    ) as system:
        io = system.simulator.endpoint("io-1")
        tap = WireTap(io.host, io.port)
        tap_port = await tap.start()
        document = settings_document(system.settings)
        for device in document["devices"]:
            if device["id"] == "io-1":
                device["connection"]["port"] = tap_port
                device["connection"]["period_ms"] = 20
        settings = parse_settings(document)
        try:
            async with running_service(system, settings) as run:
                run.service.enable_remote_control(confirmed=True)
                await eventually(
                    lambda: len([f for f in tap.frames if f.function == 3]) > 50, 20, "polling"
                )
                latencies = []
                for k in range(8):
                    started = time.monotonic()
                    result = await run.service.switch(Q1, "toggle")
                    latencies.append(time.monotonic() - started)
                    assert result.status == "done", result
                    assert system.simulator.outputs("io-1")["Q1"] is (k % 2 == 0)
                diagnostics = {d.device_id: d for d in run.acquisition.diagnostics()}
        finally:
            await tap.stop()
        frames = list(tap.frames)
    assert max(latencies) < 2.0, latencies
    requests = [f for f in frames if f.to_device]
    assert len([f for f in requests if f.function == 6]) == 8
    # Polling went on between the writes (each write waited for a poll to read it back).
    first = next(k for k, f in enumerate(requests) if f.function == 6)
    last = max(k for k, f in enumerate(requests) if f.function == 6)
    assert len([f for f in requests[first:last] if f.function == 3]) >= 7
    # One transaction at a time on the IO module's connection: every request
    # is answered before the next one goes, so a write never falls inside a poll's read.
    outstanding: int | None = None
    for frame in frames:
        if frame.to_device:
            assert outstanding is None, (
                f"request {frame.transaction} sent while {outstanding} pending"
            )
            outstanding = frame.transaction
        else:
            assert frame.transaction == outstanding
            outstanding = None
    assert all(d.state == "ok" for d in diagnostics.values()), diagnostics


async def test_upload_logs_sends_a_bundle_without_any_secret(system: EmbeddedSystem) -> None:
    import io
    import logging
    import tarfile

    import zstandard

    claim_key = system.settings.identity.claim_key().get_secret_value()
    topology = json.dumps({"schema": "panelfast.topology/1", "devices": []}).encode()
    async with running_service(system, topology=lambda: topology) as run:
        token = run.session.state.token
        assert token is not None
        secret_token = token.get_secret_value()
        # A careless log line: the bundle must not carry what it says.
        logging.getLogger("panelfast.test").warning(
            "leak check: token %s key %s", secret_token, claim_key.upper()
        )
        command_id = queue(system, {"type": "upload_logs"})
        result = await await_result(system.cloud, system.serial, command_id, timeout_s=30)
        assert result == {"status": "done", "reason": None}
    uploads = system.cloud.uploads(system.serial)
    assert [u["kind"] for u in uploads] == ["logs"]
    data = system.cloud.upload_bytes(uploads[0]["upload_id"])
    raw = zstandard.ZstdDecompressor().decompressobj().decompress(data)
    for secret in (claim_key, claim_key.upper(), secret_token):
        assert secret.encode() not in raw
        assert secret.encode() not in data
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        files = {
            m.name.removeprefix("panelfast-diagnostics/"): tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
        }
    assert set(files) >= {
        "manifest.json", "versions.json", "config.json", "logs/recent.log",
        "topology.json", "devices.json", "status.json", "commands.json",
    }  # fmt: skip
    log_text = files["logs/recent.log"].decode()
    assert "leak check: token <removed> key <removed>" in log_text
    config = json.loads(files["config.json"])
    assert config["identity"]["serial"] == system.serial
    assert {d["device_id"] for d in json.loads(files["devices.json"])} >= {"io-1", "mb-1"}
    assert json.loads(files["versions.json"])["panelfast"]
    assert files["topology.json"] == topology
    assert json.loads(files["status.json"])["cloud"]["Connection status"] == "Connected"


async def test_disabling_remote_control_stops_schedules_and_enabling_does_not_replay(
    system: EmbeddedSystem,
) -> None:
    now = [datetime.fromisoformat("2026-12-07T06:25:00+00:00").timestamp()]  # Monday 07:25 CET
    clock = Clock(source=lambda: now[0])
    sim = system.simulator
    async with running_service(system, clock=clock, schedule_max_sleep_s=0.05) as run:
        run.service.enable_remote_control(confirmed=True)
        schedule = {
            "id": "lights",
            "output": Q1,
            "timezone": "Europe/Paris",
            "entries": [
                {"days": ["mon"], "at": "07:30", "action": "on"},
                {"days": ["mon"], "at": "08:00", "action": "off"},
                {"days": ["mon"], "at": "09:00", "action": "on"},
            ],
        }
        command_id = queue(system, {"type": "schedule", "schedule": schedule})
        assert (await await_result(system.cloud, system.serial, command_id))["status"] == "done"
        assert run.service.scheduling_active()
        assert [s.id for s in run.service.schedules()] == ["lights"]
        # Received at 07:25: nothing happens at once.
        await asyncio.sleep(0.5)
        assert writes(system) == 0
        now[0] += 5 * 60  # 07:30
        await eventually(lambda: sim.outputs("io-1")["Q1"], 10, "Q1 on at 07:30")
        run.service.disable_remote_control()
        assert not run.service.scheduling_active()
        now[0] += 30 * 60  # 08:00 passes while disabled: nothing is written
        await asyncio.sleep(0.5)
        assert writes(system) == 1
        assert sim.outputs("io-1")["Q1"] is True
        run.service.enable_remote_control(confirmed=True)
        await asyncio.sleep(0.5)  # enabled again: the 08:00 entry is not replayed
        assert writes(system) == 1
        now[0] += 60 * 60  # 09:00
        await eventually(lambda: writes(system) == 2, 10, "the 09:00 entry")

        def entries() -> list[Any]:
            return [e for e in run.service.history() if e.kind == "schedule_entry"]

        await eventually(lambda: len(entries()) == 2, 10, "the 09:00 entry recorded")
        assert [(e.action, e.status, e.readback) for e in entries()] == [
            ("on", "done", "on"),
            ("on", "done", "on"),
        ]
        assert all(e.source == "schedule" for e in entries())
        # schedule_delete removes it: the next Monday's 07:30 does nothing.
        command_id = queue(system, {"type": "schedule_delete", "schedule_id": "lights"})
        assert (await await_result(system.cloud, system.serial, command_id))["status"] == "done"
        assert run.service.schedules() == []
        assert not run.service.scheduling_active()
        now[0] += 7 * 86400
        await asyncio.sleep(0.5)
        assert writes(system) == 2
        reported = [
            (s["output"], s["state"], s["source"])
            for s in system.cloud.output_states(system.serial)
            if s["source"] == "schedule"
        ]
        assert reported == [(Q1, "on", "schedule")]


async def test_disconnect_stops_the_commands_and_connect_resumes_them(
    system: EmbeddedSystem,
) -> None:
    async with running_service(system) as run:
        run.service.enable_remote_control(confirmed=True)
        await asyncio.sleep(0.5)  # a long poll is in progress
        await run.session.disconnect()
        command_id = queue(system, {"type": "output", "output": Q1, "action": "on"})
        await asyncio.sleep(2.0)
        # (The cloud may count the long poll cut by the disconnect as a delivery: it never arrived.)
        assert run.service.store.command(command_id) is None
        assert result_of(system.cloud, system.serial, command_id) is None
        assert writes(system) == 0
        await run.session.connect()
        run.service.wake()
        result = await await_result(system.cloud, system.serial, command_id)
        assert result["status"] == "done"
    assert system.simulator.outputs("io-1")["Q1"] is True


async def test_a_bundle_is_sent_even_when_the_topology_cannot_be_built(
    system: EmbeddedSystem,
) -> None:
    import io
    import tarfile

    import zstandard

    from panelfast.exceptions import TopologyError

    def topology() -> bytes:
        raise TopologyError(["device 'x': unknown model 'Nope'"])

    async with running_service(system, topology=topology):
        command_id = queue(system, {"type": "upload_logs"})
        result = await await_result(system.cloud, system.serial, command_id, timeout_s=30)
        assert result == {"status": "done", "reason": None}
    data = system.cloud.upload_bytes(system.cloud.uploads(system.serial)[0]["upload_id"])
    raw = zstandard.ZstdDecompressor().decompressobj().decompress(data)
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        names = tar.getnames()
        status = json.load(tar.extractfile("panelfast-diagnostics/status.json"))  # type: ignore[arg-type]
    assert "panelfast-diagnostics/topology.json" not in names
    assert "unknown model 'Nope'" in status["topology_error"]
