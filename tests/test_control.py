"""The control API, as a site engineer uses it: the daemon in one process, the CLI in another.

Everything here is black box: the reference cloud and the simulator are real
servers, the gateway is ``panelfast run``, each command a ``panelfast``
process; what counts is what the cloud received and what the CLI printed.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from panelfast.control._schema import render
from panelfast.embedded import EmbeddedSystem, embedded_system
from reliability_support import GatewayProcess, config_document, holes, wait_until

CONFIG = config_document(period_s=1, publisher_period_s=1)


@pytest.fixture
def system(tmp_path: Path) -> Iterator[EmbeddedSystem]:
    with embedded_system(tmp_path, poll_period_ms=200) as s:
        yield s


@pytest.fixture
def daemon(system: EmbeddedSystem, tmp_path: Path) -> Iterator[GatewayProcess]:
    process = GatewayProcess(system.config_path, tmp_path / "gateway.log")
    try:
        yield process
    finally:
        process.close()
        if process.log_path.exists():
            print(process.tail(60))  # shown when the test failed


def panelfast(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "panelfast", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def cli(system: EmbeddedSystem, *args: str) -> subprocess.CompletedProcess[str]:
    return panelfast(*args, "--config", str(system.config_path))


def socket_of(system: EmbeddedSystem) -> Path:
    return system.settings.storage.dir / "control.sock"


def start(daemon: GatewayProcess, system: EmbeddedSystem) -> None:
    daemon.start()
    wait_until(
        lambda: cli(system, "status").returncode == 0 or not daemon.alive,
        60,
        "the daemon serves its control API",
    )
    assert daemon.alive, daemon.tail()


def commission(system: EmbeddedSystem) -> None:
    """Connect and publish the topology from the CLI; the cloud then configures the gateway."""
    connected = cli(system, "connect")
    assert connected.returncode == 0, connected.stdout + connected.stderr
    assert "Connection status:      Connected" in connected.stdout
    published = cli(system, "topology", "publish")
    assert published.returncode == 0, published.stderr
    assert "topology published: version" in published.stdout
    system.cloud.set_config(system.serial, CONFIG)


def sampled_instants(system: EmbeddedSystem, name: str) -> list[int]:
    return sorted(t for (n, t) in system.cloud.sample_counts(system.serial) if n == name)


def test_disconnect_silences_the_gateway_and_connect_resumes_with_no_gap_nor_duplicate(
    system: EmbeddedSystem, daemon: GatewayProcess
) -> None:
    start(daemon, system)
    commission(system)
    name = "mb-1/VoltageAN"
    wait_until(lambda: len(sampled_instants(system, name)) >= 3, 60, "data reaches the cloud")

    done = cli(system, "disconnect")
    assert done.returncode == 0, done.stderr
    assert "Connection status:      Not connected" in done.stdout
    returned = time.time()
    assert system.cloud.disconnects(system.serial), "the §11 call was made"
    status = cli(system, "status")
    assert "Connection status:      Not connected" in status.stdout
    # §11: all cloud traffic stops. Watch the cloud for 30 s: not one request.
    time.sleep(30)
    heard = system.cloud.requests(since=returned)
    assert heard == [], f"the gateway kept talking to the cloud: {heard[:5]}"

    again = cli(system, "connect")
    assert again.returncode == 0, again.stdout + again.stderr
    reconnected_ms = time.time() * 1000
    wait_until(
        lambda: max(sampled_instants(system, name)) > reconnected_ms,
        60,
        "the samples taken while disconnected, then new ones, reach the cloud",
    )
    counts = system.cloud.sample_counts(system.serial)
    assert all(n == 1 for n in counts.values()), "no instant stored twice"
    instants = sampled_instants(system, name)
    assert holes(instants, 1_000) == [], "sampling went on while disconnected: no gap"
    audit = cli(system, "audit")
    actions = [line.split()[3] for line in audit.stdout.splitlines()]
    assert actions == ["connect", "topology.publish", "disconnect", "connect"], audit.stdout
    assert all("socket:uid=" in line for line in audit.stdout.splitlines())


def test_connect_wakes_a_daemon_started_disconnected(
    system: EmbeddedSystem, daemon: GatewayProcess
) -> None:
    start(daemon, system)
    before = cli(system, "status")
    assert "Connection status:      Not connected" in before.stdout
    assert system.cloud.requests() == [], "a gateway never connected sends nothing"
    commission(system)  # no restart: the running daemon does it all
    wait_until(
        lambda: [r["status"] for r in system.cloud.reports(system.serial)] == ["applied"],
        60,
        "the daemon fetched, applied and reported the configuration",
    )
    wait_until(
        lambda: len(sampled_instants(system, "mb-2/ActivePower")) >= 2, 60, "data is published"
    )
    status = cli(system, "status")
    assert "Remote configuration:   version" in status.stdout, status.stdout
    assert "valid" in status.stdout
    assert "Topology:               published, version" in status.stdout


def test_two_connects_at_once_make_one_bootstrap(
    system: EmbeddedSystem, daemon: GatewayProcess
) -> None:
    start(daemon, system)
    command = [sys.executable, "-m", "panelfast", "connect", "--config", str(system.config_path)]
    both = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=60)[0] for p in both]
    assert all("Connection status:      Connected" in out for out in outputs), outputs
    bootstraps = [r for r in system.cloud.requests() if r[2] == "bootstrap"]
    assert len(bootstraps) == 1


def test_a_second_daemon_on_the_same_storage_refuses_to_start_naming_the_first(
    system: EmbeddedSystem, daemon: GatewayProcess
) -> None:
    start(daemon, system)
    second = panelfast("run", "--config", str(system.config_path), timeout=60)
    assert second.returncode != 0
    pid = (system.settings.storage.dir / "panelfast.lock").read_text().strip()
    assert f"another panelfast gateway (PID {pid}) is running on" in second.stderr
    assert "Traceback" not in second.stderr
    assert cli(system, "status").returncode == 0, "the first one still serves"


def test_a_socket_left_by_a_killed_daemon_does_not_block_the_next_start(
    system: EmbeddedSystem, daemon: GatewayProcess
) -> None:
    start(daemon, system)
    daemon.kill()
    assert socket_of(system).exists(), "SIGKILL leaves the socket file behind"
    stale = cli(system, "status")
    assert stale.returncode == 3, "nobody answers: not running"
    assert "not running" in stale.stdout
    start(daemon, system)
    assert cli(system, "status").returncode == 0


def test_without_a_daemon_the_cli_says_so_and_what_it_did(system: EmbeddedSystem) -> None:
    status = cli(system, "status")
    assert status.returncode == 3
    assert "Gateway:                not running" in status.stdout
    setting = cli(system, "set", "storage.quota_mb", "1200")
    assert setting.returncode == 0, setting.stderr
    assert "gateway not running: the file is changed" in setting.stderr
    connected = cli(system, "connect")
    assert connected.returncode == 0, connected.stderr
    assert "gateway not running: connected from here" in connected.stderr


def test_the_socket_is_for_the_daemons_user_and_group_only(
    system: EmbeddedSystem, daemon: GatewayProcess
) -> None:
    start(daemon, system)
    assert socket_of(system).stat().st_mode & 0o777 == 0o660


def test_a_setting_the_cloud_manages_is_refused_through_the_daemon(
    system: EmbeddedSystem, daemon: GatewayProcess
) -> None:
    start(daemon, system)
    refused = cli(system, "set", "publisher.period_s", "5")
    assert refused.returncode == 1
    assert "managed by the cloud" in refused.stderr
    changed = cli(system, "set", "storage.quota_mb", "1200")
    assert changed.returncode == 0, changed.stderr
    assert "quota_mb = 1200" in system.config_path.read_text()
    audit = cli(system, "audit").stdout
    assert "settings.change" in audit
    assert "RemoteConfigReadOnly" in audit


def test_the_event_stream_follows_a_change(system: EmbeddedSystem, daemon: GatewayProcess) -> None:
    from panelfast.control.wire import Wire

    start(daemon, system)
    events = Wire(socket_of(system), timeout=30).events()
    try:
        first_event, first = next(events)
        while first_event != "status":
            first_event, first = next(events)
        assert first["cloud"]["connection"] == "Not connected"
        assert cli(system, "connect").returncode == 0
        connected = audited = False
        deadline = time.monotonic() + 60
        for event, data in events:
            assert time.monotonic() < deadline, (connected, audited)
            if event == "status":
                connected = data["cloud"]["connection"] == "Connected"
            elif event == "audit":
                audited = data["action"] == "connect" and data["who"].startswith("socket:uid=")
            if connected and audited:
                break
    finally:
        events.close()


def test_the_committed_openapi_document_is_the_generated_one() -> None:
    committed = Path(__file__).parents[1] / "python/panelfast/control/openapi.json"
    assert committed.read_text(encoding="utf-8") == render(), (
        "regenerate it: python -m panelfast.control._schema"
    )


def test_the_running_daemon_conforms_to_its_openapi_document(
    system: EmbeddedSystem, daemon: GatewayProcess, tmp_path: Path
) -> None:
    import requests
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    from gateway_support import closed_port

    start(daemon, system)
    assert cli(system, "connect").returncode == 0
    port = closed_port()
    # A TCP door onto the socket, for the HTTP library schemathesis drives.
    bridge = subprocess.Popen(
        ["socat", f"TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr",
         f"UNIX-CONNECT:{socket_of(system)}"],
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        with requests.Session() as http:
            wait_until(lambda: _answers(http, base), 20, "the bridge is up")
            document = http.get(f"{base}/openapi.json", timeout=10).json()
            schema = schemathesis.openapi.from_dict(document)
            exercised = 0
            for result in schema.get_all_operations():
                operation = result.ok()
                if operation.method.upper() != "GET" or operation.path == "/v1/events":
                    continue  # changes are exercised above; the stream never ends
                exercised += 1

                @settings(
                    max_examples=5,
                    deadline=None,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=list(HealthCheck),
                    database=None,
                    derandomize=True,
                )
                @given(case=operation.as_strategy())
                def check(case: object) -> None:
                    response = case.call(base_url=base, session=http, timeout=20)  # type: ignore[attr-defined]
                    assert response.status_code < 500, response.text
                    case.validate_response(  # type: ignore[attr-defined]
                        response,
                        checks=[
                            status_code_conformance,
                            content_type_conformance,
                            response_schema_conformance,
                        ],
                    )

                check()
            assert exercised >= 10
    finally:
        bridge.send_signal(signal.SIGTERM)
        bridge.wait(timeout=10)


def _answers(http: object, base: str) -> bool:
    import requests

    try:
        return bool(http.get(f"{base}/v1/status", timeout=2).ok)  # type: ignore[attr-defined]
    except requests.RequestException:
        return False


def test_status_json_is_the_python_api_s_type(
    system: EmbeddedSystem, daemon: GatewayProcess
) -> None:
    start(daemon, system)
    answer = cli(system, "status", "--json")
    status = json.loads(answer.stdout)
    assert set(status) == {
        "cloud",
        "remote_config",
        "topology_must_be_published",
        "topology_version",
        "backlog",
        "applying",
        "active_alarms",
        "publication",
        "not_configured",
        "outputs",
    }
    assert status["outputs"]["remote_control"] is False
    assert [o["id"] for o in status["outputs"]["outputs"]] == ["Q1", "Q2"]


async def test_the_python_client_speaks_the_gateway_api_s_types(
    system: EmbeddedSystem, daemon: GatewayProcess
) -> None:
    from panelfast.client import ControlRefused, GatewayClient, GatewayNotRunning
    from panelfast.cloud import ConnectionStatus
    from panelfast.gateway import GatewayStatus

    async with GatewayClient.from_config(system.config_path) as gw:
        with pytest.raises(GatewayNotRunning):
            await gw.status()
    start(daemon, system)
    async with GatewayClient.from_config(system.config_path) as gw:
        status = await gw.status()
        assert isinstance(status, GatewayStatus)
        assert status.cloud.connection is ConnectionStatus.NOT_CONNECTED
        connected = await gw.connect()
        assert connected.connection is ConnectionStatus.CONNECTED
        assert (await gw.publish_topology()).startswith("t-")
        with pytest.raises(ControlRefused) as refused:
            await gw.change_setting("alarms.a1.threshold", 3)
        assert refused.value.error == "read_only"
        devices = await gw.devices()
        assert [d.device_id for d in devices] == ["mb-1", "mb-2", "io-1"]
        topics = set()
        async for event, _data in gw.events():
            topics.add(event)
            if {"status", "devices"} <= topics:
                break
        entries = await gw.audit()
        assert [e.action for e in entries] == ["connect", "topology.publish", "settings.change"]
