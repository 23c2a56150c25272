"""Live reload of the configuration file (issue 16): SIGHUP, ``panelfast reload``, the API.

Black box, as a site engineer works: the gateway is ``panelfast run`` in its
own process (JSON log), the reference cloud and the device simulator are
real servers, the file is edited as a person edits it, and what counts is
what the cloud received, what the CLI prints and what Prometheus scrapes.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cloud_support import free_port
from ops_support import Scrape, append_sections
from panelfast.client import GatewayClient
from panelfast.config import parse_settings
from panelfast.control.wire import Wire
from panelfast.embedded import DEFAULT_DEVICES, EmbeddedDevice, EmbeddedSystem, embedded_system
from panelfast.exceptions import ConfigIssue
from panelfast.reload import ReloadOutcome, refusals, setting_changes
from reliability_support import (
    MEASUREMENTS,
    GatewayProcess,
    config_document,
    holes,
    wait_until,
)

#: Simulated from the start, commissioned in the file only later.
SPARE = EmbeddedDevice("mb-3", "iEM3255", "Spare feeder", "Q7", "spare")

ALARMS: list[dict[str, Any]] = [
    {"id": "v-high", "device": "mb-1", "measurement": "VoltageAN", "condition": "over",
     "threshold": 100.0, "hysteresis": 1.0, "delay_s": 0},
    {"id": "f-high", "device": "mb-2", "measurement": "Frequency", "condition": "over",
     "threshold": 10.0, "hysteresis": 1.0, "delay_s": 0},
]  # fmt: skip


@pytest.fixture
def system(tmp_path: Path) -> Iterator[EmbeddedSystem]:
    with embedded_system(tmp_path, devices=(*DEFAULT_DEVICES, SPARE), poll_period_ms=200) as s:
        yield s


@pytest.fixture
def gateway(system: EmbeddedSystem, tmp_path: Path) -> Iterator[GatewayProcess]:
    process = GatewayProcess(
        system.config_path, tmp_path / "gateway.log", args=("--log-format", "json")
    )
    try:
        yield process
    finally:
        process.close()
        if process.log_path.exists():
            print(process.tail(80))  # shown when the test failed


def cli(system: EmbeddedSystem, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "panelfast", *args, "--config", str(system.config_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def take_device(config_path: Path, device_id: str) -> str:
    """Delete a device's table from the file, as a person would; returns it."""
    text = config_path.read_text(encoding="utf-8")
    head, *tables = text.split("[[devices]]\n")
    taken = [t for t in tables if t.startswith(f'id = "{device_id}"\n')]
    assert len(taken) == 1, f"{device_id} is in the file"
    kept = [t for t in tables if t not in taken]
    config_path.write_text(head + "".join("[[devices]]\n" + t for t in kept), encoding="utf-8")
    return "[[devices]]\n" + taken[0]


def add_table(config_path: Path, table: str) -> None:
    text = config_path.read_text(encoding="utf-8").rstrip("\n")
    config_path.write_text(text + "\n\n" + table, encoding="utf-8")


def log_events(gateway: GatewayProcess, event: str) -> list[dict[str, Any]]:
    """The gateway's JSON log records of ``event``, in order."""
    found = []
    for line in gateway.log_path.read_text(encoding="utf-8").splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("event") == event:
                found.append(record)
    return found


def start(gateway: GatewayProcess, system: EmbeddedSystem, document: dict[str, Any]) -> None:
    """Start the daemon, connect and publish the topology from the CLI; the cloud configures it."""
    gateway.start()
    wait_until(
        lambda: cli(system, "status").returncode == 0 or not gateway.alive,
        60,
        "the daemon serves its control API",
    )
    assert gateway.alive, gateway.tail()
    connected = cli(system, "connect")
    assert connected.returncode == 0, connected.stdout + connected.stderr
    published = cli(system, "topology", "publish")
    assert published.returncode == 0, published.stderr
    system.cloud.set_config(system.serial, document)


def instants(system: EmbeddedSystem, name: str) -> list[int]:
    return sorted(t for (n, t) in system.cloud.sample_counts(system.serial) if n == name)


def alarm_events(system: EmbeddedSystem) -> list[tuple[str, str]]:
    return sorted((e["alarm"], e["state"]) for e in system.cloud.alarm_events(system.serial))


def test_sighup_adds_and_removes_devices_with_nothing_lost(
    system: EmbeddedSystem, gateway: GatewayProcess
) -> None:
    config = system.config_path
    spare = take_device(config, "mb-3")
    port = free_port()
    append_sections(config, {"metrics": {"listen": f"127.0.0.1:{port}"}})
    document = config_document(MEASUREMENTS, publisher_period_s=1)
    document["alarms"] = ALARMS
    start(gateway, system, document)
    power = "mb-2/ActivePower"
    wait_until(lambda: len(instants(system, power)) >= 5, 60, "mb-2 sampled at the cloud")
    wait_until(
        lambda: alarm_events(system) == [("f-high", "active"), ("v-high", "active")],
        60,
        "both alarms announced",
    )
    before = Scrape.of(port)
    assert before.value("panelfast_device_state", device="mb-1", state="ok") == 1
    assert before.get("panelfast_device_state", device="mb-3", state="ok") is None

    take_device(config, "mb-1")
    add_table(config, spare)
    gateway.send(signal.SIGHUP)
    wait_until(lambda: log_events(gateway, "config.reloaded"), 60, "the reload logged")
    (reloaded,) = log_events(gateway, "config.reloaded")
    assert reloaded["devices_added"] == ["mb-3"]
    assert reloaded["devices_removed"] == ["mb-1"]
    assert reloaded["devices_changed"] == []
    assert reloaded["topology_must_be_published"] is True
    switched = reloaded["from_ms"]
    assert isinstance(switched, int)
    assert switched % 1000 == 0
    wait_until(
        lambda: max(instants(system, power)) >= switched + 6_000,
        60,
        "sampling goes on past the switch and reaches the cloud",
    )

    # Nothing lost, nothing twice: every instant of the unchanged device, one
    # series across the switch, each value a fresh reading.
    counts = system.cloud.sample_counts(system.serial)
    assert all(n == 1 for n in counts.values()), "no instant stored twice"
    sampled = instants(system, power)
    assert sampled[0] < switched - 3_000
    assert holes(sampled, 1_000) == [], "no instant lost"
    samples = system.cloud.samples(system.serial)
    around = [(t, v) for t, v in samples[power] if switched - 3_000 <= t <= switched + 5_000]
    assert len(around) == 9
    assert all(v is not None for _, v in around), f"mb-2 read through the switch: {around}"
    # The removed device: its instants are still taken, as nil, from the switch on.
    voltage = samples["mb-1/VoltageAN"]
    assert [t for t, _ in voltage] == [t for t, _ in samples[power]]
    assert all(v is not None for t, v in voltage if switched - 3_000 <= t < switched)
    assert all(v is None for t, v in voltage if t >= switched)
    assert alarm_events(system) == [("f-high", "active"), ("v-high", "active")], (
        "alarms keep their states: neither announced again nor cleared"
    )

    # What the user sees: the new device set, and the topology to publish.
    wait_until(
        lambda: (
            cli(system, "devices").stdout.startswith("mb-2: ok")
            and "mb-3: ok" in cli(system, "devices").stdout
        ),
        60,
        "mb-3 polled",
    )
    assert "mb-1" not in cli(system, "devices").stdout
    status = cli(system, "status").stdout
    assert "mb-1: sampled as nil; publish the topology again" in status
    assert "devices changed: publish it again" in status
    after = Scrape.of(port)
    assert after.value("panelfast_device_state", device="mb-3", state="ok") == 1
    assert after.value("panelfast_device_state", device="mb-2", state="ok") == 1
    assert not [k for k in after.samples if ("device", "mb-1") in k[1]], "mb-1 left the metrics"
    audit = cli(system, "audit").stdout
    assert "signal:SIGHUP" in audit
    assert "config.reload" in audit

    # The added device is the cloud's to sample once the topology is published.
    assert cli(system, "topology", "publish").returncode == 0
    with_spare = config_document(
        [("mb-2", "ActivePower"), ("mb-3", "ActivePower")], publisher_period_s=1
    )
    system.cloud.set_config(system.serial, with_spare)
    wait_until(
        lambda: any(v is not None for _, v in system.cloud.samples(system.serial).get(
            "mb-3/ActivePower", []
        )),
        60,
        "mb-3 sampled at the cloud",
    )  # fmt: skip
    gateway.stop()


def test_a_refused_reload_leaves_the_gateway_running_as_it_was(
    system: EmbeddedSystem, gateway: GatewayProcess
) -> None:
    config = system.config_path
    start(gateway, system, config_document(MEASUREMENTS, publisher_period_s=1))
    power = "mb-2/ActivePower"
    wait_until(lambda: len(instants(system, power)) >= 3, 60, "sampled at the cloud")
    good = config.read_text(encoding="utf-8")

    # A file with an error: refused, the key named.
    config.write_text(good.replace("[storage]\n", "[storage]\nquota_mb = 0\n"), encoding="utf-8")
    refused = cli(system, "reload")
    assert refused.returncode == 1, refused.stdout
    assert "storage.quota_mb: Input should be greater than or equal to 1" in refused.stderr
    assert "the running configuration stays" in refused.stderr

    # What cannot change live: refused with the reason, for SIGHUP and the API alike.
    storage = system.settings.storage.dir
    moved = good.replace(f'dir = "{storage}"', f'dir = "{storage}-moved"')
    moved = moved.replace('name = "Panel Server demo"', 'name = "Panel Server renamed"')
    assert moved.count("-moved") == 1
    assert "renamed" in moved
    config.write_text(moved, encoding="utf-8")
    gateway.send(signal.SIGHUP)
    wait_until(lambda: len(log_events(gateway, "config.reload_refused")) == 2, 60, "refusal logged")
    errors = log_events(gateway, "config.reload_refused")[-1]["errors"]
    assert [e.split(":")[0] for e in errors] == ["identity.name", "storage.dir"]
    assert "the cloud knows it by it" in errors[0]
    assert "stop panelfast run, move the folder" in errors[1]
    answer = Wire(storage / "control.sock").request("POST", "/v1/reload")
    assert answer.status == 409
    assert answer.json()["error"] == "reload_refused"
    paths = [i["path"] for i in answer.json()["issues"]]
    assert paths == ["identity.name", "storage.dir"]

    # The same file again: nothing to change. The gateway kept sampling throughout.
    config.write_text(good, encoding="utf-8")
    again = cli(system, "reload")
    assert again.returncode == 0, again.stderr
    assert again.stdout == "configuration reloaded: nothing changed\n"

    async def reload_by_client() -> ReloadOutcome:
        async with GatewayClient(storage / "control.sock") as client:
            return await client.reload()

    assert asyncio.run(reload_by_client()) == ReloadOutcome((), (), (), (), None, False)
    last = max(instants(system, power))
    wait_until(
        lambda: max(instants(system, power)) >= last + 3_000, 60, "still sampled at the cloud"
    )
    assert gateway.alive
    assert holes(instants(system, power), 1_000) == []
    assert all(n == 1 for n in system.cloud.sample_counts(system.serial).values())
    audit = cli(system, "audit").stdout
    reloads = [line for line in audit.splitlines() if "config.reload" in line]
    assert len(reloads) == 5, audit
    gateway.stop()


def test_what_may_change_live_and_what_is_refused(tmp_path: Path) -> None:
    base: dict[str, Any] = {
        "identity": {"serial": "PS-1", "mac": "aa:bb:cc:00:00:01", "claim_key_file": "k"},
        "cloud": {"bootstrap_url": "https://cloud.example/bootstrap"},
        "storage": {"dir": str(tmp_path)},
        "devices": [],
    }
    running = parse_settings(base)

    def changed(**sections: dict[str, Any]) -> tuple[list[ConfigIssue], list[str]]:
        document = {**base}
        for name, values in sections.items():
            document[name] = {**document.get(name, {}), **values}
        new = parse_settings(document)
        return refusals(running, new), setting_changes(running, new)

    issues, local = changed(storage={"quota_mb": 10}, time={"mode": "ntp"})
    assert (issues, local) == ([], ["storage.quota_mb", "time.mode"])
    issues, local = changed(gateway={"model_dirs": [str(tmp_path)]})
    assert (issues, local) == ([], [])
    refused = {
        "identity.serial": changed(identity={"serial": "PS-2"}),
        "control.socket": changed(control={"socket": "/run/x.sock"}),
        "metrics.listen": changed(metrics={"listen": "127.0.0.1:9100"}),
        "logging.format": changed(logging={"format": "json"}),
        "cloud.proxy": changed(cloud={"proxy": "http://proxy:3128"}),
    }
    for key, (issues, _) in refused.items():
        assert [i.key for i in issues] == [key]
        assert "panelfast run" in issues[0].message or "knows it" in issues[0].message
