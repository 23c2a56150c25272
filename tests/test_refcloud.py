"""The reference cloud over real HTTPS: TLS, bootstrap, tokens, topology, remote configuration."""

from __future__ import annotations

import asyncio
import json
import ssl
import stat
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import zstandard
from cryptography import x509

from panelfast.refcloud import RefCloud, Settings
from refcloud_support import (
    IDENTITY,
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

# -- TLS -----------------------------------------------------------------------------------


def test_tls_files_are_made_once_with_private_keys_0600(cloud: RefCloud) -> None:
    tls = cloud.tls
    for key in (tls.ca_key, tls.server_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate(tls.server_cert.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert "127.0.0.1" in {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    assert stat.S_IMODE((cloud.state.state_dir / "operator_token").stat().st_mode) == 0o600
    assert stat.S_IMODE((cloud.state.state_dir / "cloud.db").stat().st_mode) == 0o600


async def test_server_certificate_is_refused_without_the_ca(cloud: RefCloud) -> None:
    async with httpx.AsyncClient() as untrusting:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await untrusting.post(f"{cloud.bootstrap_url}/v1/bootstrap")


async def test_tls_1_2_clients_are_served(cloud: RefCloud) -> None:
    context = ssl.create_default_context(cafile=str(cloud.ca_path))
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    async with httpx.AsyncClient(verify=context) as older:
        response = await older.post(f"{cloud.bootstrap_url}/v1/bootstrap")
    assert_error(response, 400, "invalid_payload")


# -- bootstrap (spec §3) -------------------------------------------------------------------


async def test_bootstrap_answers_device_urls_token_and_data_seq(
    cloud: RefCloud, http: httpx.AsyncClient
) -> None:
    key = cloud.enrol(SERIAL)
    first = await do_bootstrap(http, cloud, key)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["device_id"].startswith("d-")
    assert body["hub_url"] == cloud.hub_url
    assert body["upload_url"] == cloud.upload_url
    assert body["ntp_server"] == "127.0.0.1:1123"
    assert body["data_seq"] == 0
    assert abs(body["token_expires_at"] - (time.time() + 24 * 3600)) < 60
    again = (await do_bootstrap(http, cloud, key)).json()
    assert again["device_id"] == body["device_id"]
    assert again["token"] != body["token"]
    (device,) = cloud.enrolments()
    assert (device["model"], device["firmware"], device["mac"]) == (
        "advanced",
        "1.2.3",
        "aa:bb:cc:dd:ee:ff",
    )


async def test_bootstrap_unknown_and_de_enrolled_serials_are_not_registered(
    cloud: RefCloud, http: httpx.AsyncClient
) -> None:
    key = "ab" * 32
    assert_error(await do_bootstrap(http, cloud, key), 403, "device_not_registered")
    cloud.enrol(SERIAL, key)
    assert (await do_bootstrap(http, cloud, key)).status_code == 200
    cloud.de_enrol(SERIAL)
    assert_error(await do_bootstrap(http, cloud, key), 403, "device_not_registered")


async def test_bootstrap_wrong_signature_or_clock_skew_is_bad_credentials(
    cloud: RefCloud, http: httpx.AsyncClient
) -> None:
    key = cloud.enrol(SERIAL)
    url = f"{cloud.bootstrap_url}/v1/bootstrap"
    wrong_key = await http.post(url, headers=bootstrap_headers("cd" * 32), json=IDENTITY)
    assert_error(wrong_key, 401, "bad_credentials")
    headers = bootstrap_headers(key)
    headers["X-PF-Timestamp"] = str(int(headers["X-PF-Timestamp"]) + 1)  # signed another time
    assert_error(await http.post(url, headers=headers, json=IDENTITY), 401, "bad_credentials")
    for skew in (-310, 310):
        late = bootstrap_headers(key, at=time.time() + skew)
        assert_error(await http.post(url, headers=late, json=IDENTITY), 401, "bad_credentials")
    for skew in (-280, 280):
        near = bootstrap_headers(key, at=time.time() + skew)
        assert (await http.post(url, headers=near, json=IDENTITY)).status_code == 200


@pytest.mark.parametrize(
    ("change", "expect"),
    [
        ({"drop_header": "X-PF-Signature"}, "X-PF-Signature"),
        ({"header": ("X-PF-Timestamp", "soon")}, "timestamp"),
        ({"body": {**IDENTITY, "serial": "PS-OTHER"}}, "differs"),
        ({"body": {k: v for k, v in IDENTITY.items() if k != "mac"}}, "mac"),
        ({"body": {**IDENTITY, "model": "huge"}}, "model"),
        ({"raw": b'{"serial": '}, "not JSON"),
        ({"content_type": "text/plain"}, "Content-Type"),
    ],
)
async def test_bootstrap_malformed_requests_are_invalid_payload(
    cloud: RefCloud, http: httpx.AsyncClient, change: dict[str, Any], expect: str
) -> None:
    key = cloud.enrol(SERIAL)
    headers = bootstrap_headers(key)
    headers["Content-Type"] = change.get("content_type", "application/json")
    if "drop_header" in change:
        del headers[change["drop_header"]]
    if "header" in change:
        name, value = change["header"]
        headers[name] = value
    raw = change.get("raw", json.dumps(change.get("body", IDENTITY)).encode())
    response = await http.post(f"{cloud.bootstrap_url}/v1/bootstrap", headers=headers, content=raw)
    body = assert_error(response, 400, "invalid_payload")
    assert expect.lower() in body["message"].lower()


# -- tokens --------------------------------------------------------------------------------


async def test_hub_refuses_missing_forged_and_foreign_tokens(session: Session) -> None:
    url = session.hub("/commands")
    assert_error(await session.http.get(url), 401, "bad_credentials")
    forged = {"Authorization": "Bearer forged-token"}
    assert_error(await session.http.get(url, headers=forged), 401, "bad_credentials")
    other = session.cloud.enrol("PS-0001-0001")
    other_boot = (await do_bootstrap(session.http, session.cloud, other, "PS-0001-0001")).json()
    foreign = {"Authorization": f"Bearer {other_boot['token']}"}
    assert_error(await session.http.get(url, headers=foreign), 401, "bad_credentials")
    operator = {"Authorization": f"Bearer {session.cloud.operator_token}"}
    assert_error(await session.http.get(url, headers=operator), 401, "bad_credentials")


async def test_forced_expiry_then_bootstrap_again(session: Session) -> None:
    assert (await session.call("GET", "/commands")).status_code == 200
    assert session.cloud.expire_tokens(SERIAL) == 1
    assert_error(await session.call("GET", "/commands"), 401, "token_expired")
    fresh = (await do_bootstrap(session.http, session.cloud, session.key)).json()
    session.token = fresh["token"]
    assert (await session.call("GET", "/commands")).status_code == 200


async def test_token_lifetime_runs_out(tmp_path: Path) -> None:
    with RefCloud(tmp_path, settings=Settings(token_lifetime_s=1)) as short:
        key = short.enrol(SERIAL)
        async with httpx.AsyncClient(
            verify=ssl.create_default_context(cafile=short.ca_path)
        ) as client:
            boot = (await do_bootstrap(client, short, key)).json()
            assert boot["token_expires_at"] <= time.time() + 1
            url = f"{boot['hub_url']}/v1/devices/{boot['device_id']}/commands"
            auth = {"Authorization": f"Bearer {boot['token']}"}
            await asyncio.sleep(max(0.0, boot["token_expires_at"] - time.time()) + 0.05)
            assert_error(await client.get(url, headers=auth), 401, "token_expired")


async def test_valid_token_of_de_enrolled_serial_is_not_registered(session: Session) -> None:
    session.cloud.de_enrol(SERIAL)
    assert_error(await session.call("GET", "/commands"), 403, "device_not_registered")
    session.cloud.enrol(SERIAL, session.key)  # the same key: the token is good again
    assert (await session.call("GET", "/commands")).status_code == 200
    session.cloud.enrol(SERIAL)  # a new key: tokens of the old one expire
    assert_error(await session.call("GET", "/commands"), 401, "token_expired")


# -- topology (spec §5) --------------------------------------------------------------------


async def test_same_topology_same_version_whatever_published_at(session: Session) -> None:
    first = await session.put_topology()
    later = await session.put_topology({**TOPOLOGY, "published_at": "2026-11-23T00:00:00Z"})
    assert later == first
    changed = json.loads(json.dumps(TOPOLOGY))
    changed["devices"][0]["name"] = "Renamed"
    assert await session.put_topology(changed) != first
    compressed = zstandard.ZstdCompressor().compress(json.dumps(TOPOLOGY).encode())
    response = await session.call(
        "PUT",
        "/topology",
        content=compressed,
        headers={"Content-Type": "application/json", "Content-Encoding": "zstd"},
    )
    assert response.status_code == 202
    assert response.json() == {"topology_version": first}
    stored = session.cloud.topology(SERIAL)
    assert stored is not None
    assert stored["version"] == first
    versions = [r["version"] for r in stored["receipts"]]
    assert versions[:2] == [first, first]
    assert versions[2] not in (first, None)
    assert versions[3] == first


@pytest.mark.parametrize(
    ("document", "expect"),
    [
        ({k: v for k, v in TOPOLOGY.items() if k != "devices"}, "devices"),
        ({**TOPOLOGY, "schema": "other/1"}, "schema"),
        ({**TOPOLOGY, "devices": [TOPOLOGY["devices"][0], TOPOLOGY["devices"][0]]}, "twice"),
        ({**TOPOLOGY, "devices": [{**TOPOLOGY["devices"][0], "id": "bad id"}]}, "id"),
        (
            {
                **TOPOLOGY,
                "devices": [
                    {
                        **TOPOLOGY["devices"][0],
                        "measurements": [{"id": "P", "name": "P", "unit": "W", "kind": "rate"}],
                    }
                ],
            },
            "kind",
        ),
        ([1, 2], "object"),
        ({**TOPOLOGY, "gateway": {"serial": "PS-OTHER"}}, "serial"),
    ],
)
async def test_invalid_topology_is_invalid_payload(
    session: Session, document: Any, expect: str
) -> None:
    response = await session.call("PUT", "/topology", json=document)
    assert expect in assert_error(response, 400, "invalid_payload")["message"]


async def test_topology_size_limits(session: Session) -> None:
    big = {**TOPOLOGY, "gateway": {**TOPOLOGY["gateway"], "name": "x" * 250_100}}
    # Over 250,000 bytes of JSON even though the zstd body is tiny: use the upload service.
    small_wire = zstandard.ZstdCompressor().compress(json.dumps(big).encode())
    assert len(small_wire) < 10_000
    response = await session.call(
        "PUT",
        "/topology",
        content=small_wire,
        headers={"Content-Type": "application/json", "Content-Encoding": "zstd"},
    )
    assert_error(response, 413, "payload_too_large")
    huge = {**TOPOLOGY, "gateway": {**TOPOLOGY["gateway"], "name": "x" * 256_100}}
    assert_error(await session.call("PUT", "/topology", json=huge), 413, "payload_too_large")
    gzip = await session.call(
        "PUT",
        "/topology",
        content=b"{}",
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert_error(gzip, 400, "invalid_payload")
    not_zstd = await session.call(
        "PUT",
        "/topology",
        content=b"{}",
        headers={"Content-Type": "application/json", "Content-Encoding": "zstd"},
    )
    assert_error(not_zstd, 400, "invalid_payload")


# -- remote configuration (spec §6) --------------------------------------------------------


async def test_config_long_poll_without_configuration_answers_204_after_wait(
    session: Session,
) -> None:
    started = time.monotonic()
    response = await session.call("GET", "/config", params={"wait": 1})
    assert response.status_code == 204
    assert time.monotonic() - started >= 0.9
    assert (await session.call("GET", "/config")).status_code == 204


async def test_config_etag_304_and_versions(session: Session) -> None:
    await session.put_topology()
    first = session.cloud.generate_config(SERIAL, period_s=60, publisher_period_s=300)
    assert first["version"] == "1"
    response = await session.call("GET", "/config")
    assert response.status_code == 200
    assert response.headers["etag"] == '"1"'
    document = response.json()
    assert document["version"] == "1"
    assert [m["measurement"] for m in document["measurements"]] == [
        "ActivePowerTotal",
        "VoltageAN",
        "EnergyTotal",
    ]
    assert document["publisher"] == {"period_s": 300}
    same = await session.call("GET", "/config", headers={"If-None-Match": '"1"'})
    assert same.status_code == 304
    assert same.headers["etag"] == '"1"'
    second = session.cloud.set_config(SERIAL, {**document, "publisher": {"period_s": 60}})
    assert second["version"] == "2"
    for held in ('"1"', '"999"', '"nonsense"'):
        newer = await session.call("GET", "/config", headers={"If-None-Match": held})
        assert newer.status_code == 200
        assert newer.json()["version"] == "2"
    malformed = await session.call("GET", "/config", headers={"If-None-Match": "2"})
    assert_error(malformed, 400, "invalid_payload")
    for wait in ("31", "-1", "1.5", "1.0", "soon", ["1", "2"]):
        bad = await session.call("GET", "/config", params={"wait": wait})
        assert_error(bad, 400, "invalid_payload")


async def test_config_long_poll_wakes_on_a_new_configuration(session: Session) -> None:
    await session.put_topology()
    session.cloud.generate_config(SERIAL, period_s=60)
    started = time.monotonic()
    poll = asyncio.create_task(
        session.call("GET", "/config", params={"wait": 20}, headers={"If-None-Match": '"1"'})
    )
    await eventually(lambda: session.cloud.state.signals.waiting, "the poll waiting")
    assert not poll.done()
    # From another thread, as a test driving the cloud in-process does.
    await asyncio.to_thread(session.cloud.generate_config, SERIAL, period_s=120)
    response = await poll
    assert time.monotonic() - started < 20, "answered when the configuration came"
    assert response.status_code == 200
    assert response.json()["measurements"][0]["period_s"] == 120
    idle_started = time.monotonic()
    idle = await session.call(
        "GET", "/config", params={"wait": 1}, headers={"If-None-Match": '"2"'}
    )
    assert idle.status_code == 304
    assert time.monotonic() - idle_started >= 0.9


async def test_raw_configuration_is_served_as_given(session: Session) -> None:
    bad = {"version": 17, "measurements": "all"}
    served = session.cloud.set_config(SERIAL, bad, raw=True)
    response = await session.call("GET", "/config")
    assert response.json() == bad
    assert response.headers["etag"] == f'"{served["version"]}"'


def test_operator_configuration_checks(cloud: RefCloud) -> None:
    from panelfast.exceptions import RefCloudError

    cloud.enrol(SERIAL)
    with pytest.raises(RefCloudError, match="not published a topology"):
        cloud.generate_config(SERIAL, period_s=60)
    device_id = cloud.device_id(SERIAL)
    cloud.state.storage.store_topology(device_id, "t-1", json.dumps(TOPOLOGY), "test")
    with pytest.raises(RefCloudError, match="not in the topology"):
        cloud.set_config(
            SERIAL,
            {
                "measurements": [{"device": "mb-9", "measurement": "X", "period_s": 60}],
                "alarms": [],
                "publisher": {"period_s": 60},
            },
            check=True,
        )
    alarm = {
        "id": "a1",
        "device": "mb-1",
        "measurement": "VoltageAN",
        "condition": "over",
        "threshold": 253.0,
        "hysteresis": 2.0,
        "delay_s": 10,
        "severity": "high",
    }
    served = cloud.generate_config(SERIAL, period_s=60, alarms=[alarm])
    assert served["document"]["alarms"] == [alarm]
    with pytest.raises(RefCloudError, match="condition"):
        cloud.generate_config(SERIAL, period_s=60, alarms=[{**alarm, "condition": "above"}])


async def test_config_report_is_stored(session: Session) -> None:
    report = {
        "version": "1",
        "status": "rejected",
        "errors": [{"path": "alarms[3].threshold", "message": "not finite"}],
    }
    response = await session.call("POST", "/config/report", json=report)
    assert response.status_code == 204
    assert response.content == b""
    applied = await session.call(
        "POST", "/config/report", json={"version": "2", "status": "applied"}
    )
    assert applied.status_code == 204
    stored = session.cloud.reports(SERIAL)
    assert [(r["version"], r["status"], r["errors"]) for r in stored] == [
        ("1", "rejected", report["errors"]),
        ("2", "applied", []),
    ]
    bad = await session.call("POST", "/config/report", json={"version": "3", "status": "ok"})
    assert_error(bad, 400, "invalid_payload")
    number = await session.call("POST", "/config/report", json={"version": 3, "status": "applied"})
    assert_error(number, 400, "invalid_payload")


def test_config_limits_are_checked_as_a_gateway_would() -> None:
    from panelfast.refcloud.documents import check_config

    topology = {
        "devices": [
            {"id": "d", "measurements": [{"id": f"m{i}"} for i in range(9)]},
        ]
    }
    document = {
        "version": "1",
        "measurements": [{"device": "d", "measurement": f"m{i}", "period_s": 1} for i in range(9)],
        "alarms": [],
        "publisher": {"period_s": 60.0},
    }
    assert [p for p, _ in check_config(document, topology)] == ["measurements"]
    document["measurements"] = document["measurements"][:8]
    assert check_config(document, topology) == []
    document["measurements"].append(dict(document["measurements"][0]))
    assert any("twice" in message for _, message in check_config(document, topology))
