"""Helpers for the reference cloud's tests: a gateway-side client of the spec, written
independently of ``panelfast.cloud`` (plain httpx), and batch encoding for tests."""

from __future__ import annotations

import hashlib
import hmac
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgpack
import pytest
import zstandard

from panelfast.refcloud import RefCloud, Settings

SERIAL = "PS-0042-7A19"
BATCH_TYPE = "application/vnd.panelfast.batch+msgpack"
IDENTITY = {"serial": SERIAL, "model": "advanced", "firmware": "1.2.3", "mac": "aa:bb:cc:dd:ee:ff"}

TOPOLOGY: dict[str, Any] = {
    "schema": "panelfast.topology/1",
    "gateway": {"serial": SERIAL, "model": "advanced", "firmware": "1.2.3", "name": "GW"},
    "published_at": "2026-11-22T10:00:00Z",
    "devices": [
        {
            "id": "mb-1",
            "name": "Main incomer",
            "model": "PM5560",
            "measurements": [
                {"id": "ActivePowerTotal", "name": "P", "unit": "W", "kind": "instantaneous"},
                {"id": "VoltageAN", "name": "V", "unit": "V", "kind": "instantaneous"},
                {"id": "EnergyTotal", "name": "E", "unit": "Wh", "kind": "cumulative"},
            ],
            "outputs": [],
        },
        {
            "id": "io-1",
            "name": "IO",
            "model": "IO12",
            "measurements": [],
            "outputs": [{"id": "Q1", "name": "Lighting", "mode": "contactor"}],
        },
    ],
}


def signature(key: str, serial: str, timestamp: str) -> str:
    message = f"{serial}\n{timestamp}".encode()
    return hmac.new(bytes.fromhex(key), message, hashlib.sha256).hexdigest()


def bootstrap_headers(key: str, serial: str = SERIAL, at: float | None = None) -> dict[str, str]:
    ts = str(int(time.time() if at is None else at))
    return {
        "X-PF-Serial": serial,
        "X-PF-Timestamp": ts,
        "X-PF-Signature": signature(key, serial, ts),
    }


def encode_batch(
    seq: int, config_version: str, groups: list[dict[str, Any]], *, level: int = 3
) -> bytes:
    """A data batch as the gateway sends it (spec §7)."""
    body = {"v": 1, "seq": seq, "config_version": config_version, "groups": groups}
    return zstandard.ZstdCompressor(level=level).compress(msgpack.packb(body))


@dataclass
class Session:
    """A bootstrapped gateway: its credentials and an HTTPS client trusting the cloud's CA."""

    cloud: RefCloud
    http: httpx.AsyncClient
    key: str
    device_id: str
    token: str
    hub_url: str
    upload_url: str
    bootstrap: dict[str, Any]

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def hub(self, path: str) -> str:
        return f"{self.hub_url}/v1/devices/{self.device_id}{path}"

    def upload(self, path: str) -> str:
        return f"{self.upload_url}/v1/devices/{self.device_id}{path}"

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.auth, **kwargs.pop("headers", {})}
        return await self.http.request(method, self.hub(path), headers=headers, **kwargs)

    async def post_batch(self, body: bytes, **headers: str) -> httpx.Response:
        sent = {"Content-Type": BATCH_TYPE, "Content-Encoding": "zstd", **headers}
        return await self.call("POST", "/data", content=body, headers=sent)

    async def put_topology(self, document: dict[str, Any] | None = None) -> str:
        response = await self.call("PUT", "/topology", json=document or TOPOLOGY)
        assert response.status_code == 202, response.text
        return str(response.json()["topology_version"])


async def do_bootstrap(
    http: httpx.AsyncClient, cloud: RefCloud, key: str, serial: str = SERIAL
) -> httpx.Response:
    return await http.post(
        f"{cloud.bootstrap_url}/v1/bootstrap",
        headers=bootstrap_headers(key, serial),
        json={**IDENTITY, "serial": serial},
    )


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body["error"] == code, body
    assert isinstance(body["message"], str)
    assert body["message"]
    return body


@pytest.fixture(name="cloud")
def cloud_fixture(tmp_path: Path) -> Iterator[RefCloud]:
    with RefCloud(tmp_path / "cloud", settings=Settings(ntp_server="127.0.0.1:1123")) as running:
        yield running


@pytest.fixture(name="http")
async def http_fixture(cloud: RefCloud) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        verify=ssl.create_default_context(cafile=cloud.ca_path), timeout=20
    ) as client:
        yield client


@pytest.fixture(name="session")
async def session_fixture(cloud: RefCloud, http: httpx.AsyncClient) -> Session:
    key = cloud.enrol(SERIAL)
    response = await do_bootstrap(http, cloud, key)
    assert response.status_code == 200, response.text
    body = response.json()
    return Session(
        cloud=cloud,
        http=http,
        key=key,
        device_id=body["device_id"],
        token=body["token"],
        hub_url=body["hub_url"],
        upload_url=body["upload_url"],
        bootstrap=body,
    )


class SyncGateway:
    """A gateway's side of the spec over plain httpx, for a cloud in another process
    (``RefCloudProcess``): bootstrap, then hub calls with the token it got."""

    def __init__(self, bootstrap_url: str, ca: Path, serial: str, key: str) -> None:
        self.bootstrap_url = bootstrap_url
        self.serial = serial
        self.key = key
        self.http = httpx.Client(verify=ssl.create_default_context(cafile=ca), timeout=40)
        self.token = ""
        self.hub_url = ""
        self.device_id = ""

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> SyncGateway:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def bootstrap(self) -> dict[str, Any]:
        response = self.http.post(
            f"{self.bootstrap_url}/v1/bootstrap",
            headers=bootstrap_headers(self.key, self.serial),
            json={**IDENTITY, "serial": self.serial},
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        self.token, self.hub_url, self.device_id = body["token"], body["hub_url"], body["device_id"]
        return body

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        url = f"{self.hub_url}/v1/devices/{self.device_id}{path}"
        return self.http.request(method, url, headers=headers, **kwargs)

    def put_topology(self, document: dict[str, Any]) -> str:
        response = self.call("PUT", "/topology", json=document)
        assert response.status_code == 202, response.text
        return str(response.json()["topology_version"])

    def config(self, held: str | None = None) -> dict[str, Any]:
        headers = {"If-None-Match": f'"{held}"'} if held is not None else {}
        response = self.call("GET", "/config", headers=headers)
        assert response.status_code == 200, response.text
        document: dict[str, Any] = response.json()
        return document

    def report(self, version: str, status: str, errors: list[dict[str, str]] | None = None) -> None:
        body = {"version": version, "status": status, "errors": errors or []}
        response = self.call("POST", "/config/report", json=body)
        assert response.status_code == 204, response.text

    def post_batch(self, seq: int, version: str, groups: list[dict[str, Any]]) -> httpx.Response:
        return self.call(
            "POST",
            "/data",
            content=encode_batch(seq, version, groups),
            headers={"Content-Type": BATCH_TYPE, "Content-Encoding": "zstd"},
        )
