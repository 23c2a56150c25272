"""Operating the reference cloud: faults, separate hosts/ports, restarts, operator API, CLI."""

from __future__ import annotations

import asyncio
import hashlib
import json
import ssl
import stat
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from panelfast.cli import main
from panelfast.exceptions import RefCloudError
from panelfast.refcloud import OperatorClient, RefCloud, RefCloudProcess, Settings
from refcloud_support import (
    SERIAL,
    TOPOLOGY,
    Session,
    assert_error,
    bootstrap_headers,
    cloud_fixture,
    do_bootstrap,
    http_fixture,
    session_fixture,
)
from waiting import eventually

__all__ = ["cloud_fixture", "http_fixture", "session_fixture"]  # fixtures used by name


def _context(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca)


# -- faults --------------------------------------------------------------------------------


async def test_unavailable_and_rate_limited_faults_for_the_next_requests(session: Session) -> None:
    cloud = session.cloud
    cloud.inject_fault("unavailable", "commands", count=2)
    cloud.inject_fault("rate_limited", "hub", retry_after_s=7)
    # Another route of the hub is not hit by the route fault, but by the host one.
    limited = await session.call("GET", "/config")
    assert_error(limited, 429, "rate_limited")
    assert limited.headers["retry-after"] == "7"
    for _ in range(2):
        assert_error(await session.call("GET", "/commands"), 503, "unavailable")
    assert (await session.call("GET", "/commands")).status_code == 200
    assert cloud.faults() == []
    # Faults are answered before anything else, even to a request with no credentials.
    cloud.inject_fault("unavailable", "bootstrap")
    bare = await session.http.post(f"{cloud.bootstrap_url}/v1/bootstrap")
    assert_error(bare, 503, "unavailable")
    assert (await do_bootstrap(session.http, cloud, session.key)).status_code == 200


async def test_delay_and_drop_faults(session: Session) -> None:
    cloud = session.cloud
    cloud.inject_fault("delay", "config", delay_s=0.6)
    started = time.monotonic()
    assert (await session.call("GET", "/config")).status_code == 204
    assert time.monotonic() - started >= 0.6
    cloud.inject_fault("drop", "*")
    with pytest.raises(httpx.RemoteProtocolError):
        await session.call("GET", "/commands")
    assert (await session.call("GET", "/commands")).status_code == 200


def test_bad_fault_requests_are_refused(cloud: RefCloud) -> None:
    with pytest.raises(RefCloudError, match="unknown fault kind"):
        cloud.inject_fault("explode")
    with pytest.raises(RefCloudError, match="unknown fault target"):
        cloud.inject_fault("drop", "moon")
    with pytest.raises(RefCloudError, match="at least one"):
        cloud.inject_fault("drop", count=0)


# -- where the services are ----------------------------------------------------------------


async def test_separate_ports_and_host_names(tmp_path: Path) -> None:
    with RefCloud(tmp_path, separate_ports=True, hub_host="localhost") as cloud:
        ports = cloud.ports
        assert len(set(ports.values())) == 3
        assert cloud.hub_url == f"https://localhost:{ports['hub']}/hub"
        assert cloud.upload_url == f"https://127.0.0.1:{ports['upload']}/upload"
        key = cloud.enrol(SERIAL)
        async with httpx.AsyncClient(verify=_context(cloud.ca_path)) as client:
            boot = (await do_bootstrap(client, cloud, key)).json()
            assert boot["hub_url"] == cloud.hub_url
            auth = {"Authorization": f"Bearer {boot['token']}"}
            path = f"/hub/v1/devices/{boot['device_id']}/commands"
            on_hub = await client.get(f"https://localhost:{ports['hub']}{path}", headers=auth)
            assert on_hub.status_code == 200
            on_bootstrap = await client.get(
                f"https://127.0.0.1:{ports['bootstrap']}{path}", headers=auth
            )
            assert_error(on_bootstrap, 404, "not_found")
            wrong = await client.post(f"https://127.0.0.1:{ports['upload']}/bootstrap/v1/bootstrap")
            assert_error(wrong, 404, "not_found")


async def test_restart_keeps_identity_data_and_ca(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with RefCloud(state) as cloud:
        key = cloud.enrol(SERIAL)
        ca = cloud.ca_path.read_bytes()
        port = cloud.ports["hub"]
        async with httpx.AsyncClient(verify=_context(cloud.ca_path)) as client:
            boot = (await do_bootstrap(client, cloud, key)).json()
            auth = {"Authorization": f"Bearer {boot['token']}"}
            hub = f"{boot['hub_url']}/v1/devices/{boot['device_id']}"
            assert (
                await client.put(f"{hub}/topology", json=TOPOLOGY, headers=auth)
            ).status_code == 202
        token = cloud.operator_token
    with RefCloud(state, port=port) as again:
        assert again.ca_path.read_bytes() == ca
        assert again.operator_token == token
        assert again.topology(SERIAL) is not None
        async with httpx.AsyncClient(verify=_context(again.ca_path)) as client:
            # The token issued before the restart is still good.
            response = await client.get(
                f"{again.hub_url}/v1/devices/{boot['device_id']}/commands", headers=auth
            )
            assert response.status_code == 200
            assert (await do_bootstrap(client, again, key)).json()["device_id"] == boot["device_id"]


# -- operator API --------------------------------------------------------------------------


async def test_operator_api_needs_the_operator_token(session: Session) -> None:
    cloud = session.cloud
    url = f"{cloud.operator_url}/enrolments"
    assert_error(await session.http.get(url), 401, "bad_credentials")
    assert_error(await session.http.get(url, headers=session.auth), 401, "bad_credentials")
    operator = {"Authorization": f"Bearer {cloud.operator_token}"}
    listed = (await session.http.get(url, headers=operator)).json()
    assert [(e["serial"], e["enrolled"]) for e in listed] == [(SERIAL, True)]
    assert "claim_key" not in listed[0]
    missing = await session.http.post(
        f"{cloud.operator_url}/devices/PS-NOPE/commands",
        json={"type": "upload_logs"},
        headers=operator,
    )
    assert_error(missing, 400, "invalid_payload")


async def _upload_logs(session: Session, data: bytes) -> str:
    announce = {
        "kind": "logs",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "content_type": "text/plain",
    }
    created = (
        await session.http.post(session.upload("/uploads"), json=announce, headers=session.auth)
    ).json()
    assert (await session.http.put(created["put_url"], content=data)).status_code == 201
    done = await session.http.post(
        session.upload(f"/uploads/{created['upload_id']}/complete"), headers=session.auth
    )
    assert done.status_code == 200
    return str(created["upload_id"])


async def test_operator_client_drives_an_in_process_cloud(session: Session) -> None:
    with OperatorClient(session.cloud.state.state_dir) as operator:
        await session.put_topology()
        logs = await _upload_logs(session, b"log\n" * 10)
        assert await asyncio.to_thread(operator.upload_bytes, logs) == b"log\n" * 10
        assert (await asyncio.to_thread(operator.uploads, SERIAL))[0]["completed"] is True
        assert (await asyncio.to_thread(operator.topology, SERIAL))["version"].startswith("t-")
        served = await asyncio.to_thread(operator.generate_config, SERIAL, period_s=300)
        assert served["version"] == "1"
        queued = await asyncio.to_thread(operator.queue_command, SERIAL, {"type": "upload_logs"})
        assert (await session.call("GET", "/commands")).json() == {"commands": [queued]}
        await asyncio.to_thread(operator.inject_fault, "unavailable", "config")
        assert_error(await session.call("GET", "/config"), 503, "unavailable")
        await asyncio.to_thread(operator.expire_tokens, SERIAL)
        assert_error(await session.call("GET", "/config"), 401, "token_expired")
        report = await asyncio.to_thread(operator.inspect, SERIAL)
        assert report["config"]["version"] == "1"
        assert report["commands"][0]["deliveries"] == 1
        with pytest.raises(RefCloudError, match="never enrolled"):
            await asyncio.to_thread(operator.inspect, "PS-NOPE")


# -- the command line and a cloud in another process ---------------------------------------


def test_cli_and_subprocess_cloud(tmp_path: Path) -> None:
    state = tmp_path / "cloud"
    runner = CliRunner()
    env = {"PANELFAST_REFCLOUD_STATE": str(state)}

    def cli(*args: str) -> str:
        result = runner.invoke(main, ["refcloud", *args], env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    with RefCloudProcess(state) as cloud:
        out = cli("enrol", SERIAL)
        key_file = state / "claim_keys" / f"{SERIAL}.key"
        assert str(key_file) in out
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        key = key_file.read_text()
        assert key not in out
        context = _context(cloud.operator.ca_path)
        with httpx.Client(verify=context) as client:
            boot = client.post(
                f"{cloud.operator.bootstrap_url}/v1/bootstrap",
                headers=bootstrap_headers(key),
                json={
                    "serial": SERIAL,
                    "model": "entry",
                    "firmware": "1",
                    "mac": "aa:bb:cc:dd:ee:ff",
                },
            ).json()
            auth = {"Authorization": f"Bearer {boot['token']}"}
            hub = f"{boot['hub_url']}/v1/devices/{boot['device_id']}"
            assert client.put(f"{hub}/topology", json=TOPOLOGY, headers=auth).status_code == 202
            generated = json.loads(cli("config", "generate", SERIAL, "--period", "60"))
            assert len(generated["document"]["measurements"]) == 3
            config = client.get(f"{hub}/config", headers=auth)
            assert config.headers["etag"] == '"1"'
            bad = tmp_path / "bad.json"
            bad.write_text(json.dumps({"measurements": [], "alarms": [], "publisher": {}}))
            refused = runner.invoke(
                main, ["refcloud", "config", "set", SERIAL, str(bad), "--check"], env=env
            )
            assert refused.exit_code != 0
            assert "publisher.period_s" in refused.output
            raw = json.loads(cli("config", "set", SERIAL, str(bad), "--raw"))
            assert raw["version"] == "2"
            assert "version" not in raw["document"]
            schedule = tmp_path / "schedule.json"
            schedule.write_text(
                json.dumps(
                    {
                        "id": "s1",
                        "output": "io-1/Q1",
                        "timezone": "Europe/Paris",
                        "entries": [{"days": ["sat"], "at": "08:00", "action": "off"}],
                    }
                )
            )
            cli("command", "schedule", SERIAL, str(schedule))
            cli("command", "schedule-delete", SERIAL, "s1")
            cli("command", "upload-logs", SERIAL)
            cli("command", "output", SERIAL, "io-1/Q1", "on", "--expires-in", "60")
            commands = client.get(f"{hub}/commands", headers=auth).json()["commands"]
            assert [c["type"] for c in commands] == [
                "schedule",
                "schedule_delete",
                "upload_logs",
                "output",
            ]
            assert commands[3]["expires_at"] > time.time()
            cli("fault", "rate_limited", "--target", "commands", "--retry-after", "3")
            limited = client.get(f"{hub}/commands", headers=auth)
            assert (limited.status_code, limited.headers["retry-after"]) == (429, "3")
            inspected = json.loads(cli("inspect", SERIAL, "--section", "commands"))
            assert [c["deliveries"] for c in inspected] == [1, 1, 1, 1]
            assert json.loads(cli("faults")) == []
            cloud.restart()
            # The gateway keeps its token across a restart of the cloud on the same port.
            assert client.get(f"{hub}/commands", headers=auth).status_code == 200
            cli("de-enrol", SERIAL)
            gone = client.get(f"{hub}/commands", headers=auth)
            assert (gone.status_code, gone.json()["error"]) == (403, "device_not_registered")
    failed = runner.invoke(main, ["refcloud", "enrolments"], env=env)
    assert failed.exit_code != 0
    assert "no cloud is serving" in failed.output


async def test_stop_with_idle_connections_and_a_pending_long_poll_is_quick(tmp_path: Path) -> None:
    cloud = RefCloud(tmp_path).start()
    key = cloud.enrol(SERIAL)
    async with httpx.AsyncClient(verify=_context(cloud.ca_path), timeout=30) as client:
        boot = (await do_bootstrap(client, cloud, key)).json()
        auth = {"Authorization": f"Bearer {boot['token']}"}
        url = f"{boot['hub_url']}/v1/devices/{boot['device_id']}/commands"
        poll = asyncio.create_task(client.get(url, params={"wait": 30}, headers=auth))
        await eventually(lambda: cloud.state.signals.waiting, "the poll waiting")
        started = time.monotonic()
        await asyncio.to_thread(cloud.stop)
        # Not held up by the poll's 30 s, nor by the idle connection.
        assert time.monotonic() - started < 15
        # The poll is answered (nothing new) rather than left hanging.
        assert (await poll).json() == {"commands": []}


async def test_bootstrap_returns_the_configured_urls(tmp_path: Path) -> None:
    settings = Settings(hub_url="https://localhost:1/hub", upload_url="https://localhost:2/up")
    with RefCloud(tmp_path, settings=settings) as cloud:
        key = cloud.enrol(SERIAL)
        async with httpx.AsyncClient(verify=_context(cloud.ca_path)) as client:
            boot = (await do_bootstrap(client, cloud, key)).json()
    assert (boot["hub_url"], boot["upload_url"]) == (settings.hub_url, settings.upload_url)


async def test_unknown_routes_answer_the_spec_error_body(session: Session) -> None:
    unknown = await session.http.get(f"{session.hub_url}/v1/devices/{session.device_id}/nothing")
    assert_error(unknown, 404, "not_found")
    outside = await session.http.get(session.hub_url.removesuffix("/hub") + "/elsewhere")
    assert_error(outside, 404, "not_found")
    wrong_method = await session.call("DELETE", "/commands")
    assert_error(wrong_method, 405, "method_not_allowed")
