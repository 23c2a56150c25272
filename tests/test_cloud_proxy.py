"""The cloud through a real tinyproxy: CONNECT with credentials, refusals, a dead proxy."""

from __future__ import annotations

from pathlib import Path

from cloud_support import (
    MakeSession,
    Proxy,
    ca_file_fixture,
    ca_fixture,
    cloud_fixture,
    free_port,
    make_cloud_fixture,
    make_session_fixture,
    proxy_fixture,
    write_config,
)
from cloud_testserver import TestCloud
from panelfast.cloud import ConnectionStatus, Diagnostic
from waiting import eventually

__all__ = [  # fixtures used by name
    "ca_file_fixture",
    "ca_fixture",
    "cloud_fixture",
    "make_cloud_fixture",
    "make_session_fixture",
    "proxy_fixture",
]


def through(cloud: TestCloud, ca_file: Path, folder: Path, proxy: str) -> Path:
    """A gateway configuration reaching ``cloud`` through ``proxy``."""
    return write_config(
        folder, bootstrap_url=cloud.url("bootstrap"), ca_bundle=ca_file, proxy=proxy
    )


async def test_everything_goes_through_a_proxy_with_credentials(
    cloud: TestCloud, ca_file: Path, tmp_path: Path, make_session: MakeSession, proxy: Proxy
) -> None:
    port, log = proxy(auth=("alice", "s3cret"))
    config = through(cloud, ca_file, tmp_path, f"http://alice:s3cret@127.0.0.1:{port}")
    session = make_session(config)
    status = await session.connect()
    assert status.diagnostic is Diagnostic.ACTIVATED, status.hint
    assert status.connection is ConnectionStatus.CONNECTED
    await session.hub.post_outputs([])
    # tinyproxy logs each CONNECT as it opens the tunnel.
    for service in ("bootstrap", "hub"):
        await eventually(
            lambda s=service: f"CONNECT 127.0.0.1:{cloud.port(s)} " in log.read_text(),
            f"the {service} reached through the proxy",
        )
    assert "s3cret" not in status.hint


async def test_wrong_proxy_password_is_network_unreachable_with_a_proxy_hint(
    cloud: TestCloud, ca_file: Path, tmp_path: Path, make_session: MakeSession, proxy: Proxy
) -> None:
    port, _ = proxy(auth=("alice", "s3cret"))
    config = through(cloud, ca_file, tmp_path, f"http://alice:wrong@127.0.0.1:{port}")
    status = await make_session(config).connect()
    assert status.diagnostic is Diagnostic.NETWORK_UNREACHABLE
    assert "401" in status.hint  # tinyproxy answers wrong credentials 401 (§4: "some proxies")
    assert f"proxy 127.0.0.1:{port}" in status.hint
    assert "password" in status.hint
    assert "wrong" not in status.hint  # the proxy password is never shown
    assert cloud.seen("bootstrap") == []


async def test_missing_proxy_credentials_are_refused_too(
    cloud: TestCloud, ca_file: Path, tmp_path: Path, make_session: MakeSession, proxy: Proxy
) -> None:
    port, _ = proxy(auth=("alice", "s3cret"))
    config = through(cloud, ca_file, tmp_path, f"http://127.0.0.1:{port}")
    status = await make_session(config).connect()
    assert status.diagnostic is Diagnostic.NETWORK_UNREACHABLE
    assert "407" in status.hint


async def test_proxy_refusing_connect_to_the_port(
    cloud: TestCloud, ca_file: Path, tmp_path: Path, make_session: MakeSession, proxy: Proxy
) -> None:
    port, _ = proxy(connect_ports=(443,))
    config = through(cloud, ca_file, tmp_path, f"http://127.0.0.1:{port}")
    status = await make_session(config).connect()
    assert status.diagnostic is Diagnostic.NETWORK_UNREACHABLE
    assert "403" in status.hint
    assert f"CONNECT to 127.0.0.1:{cloud.port('bootstrap')}" in status.hint


async def test_dead_proxy_is_named_in_the_hint(
    cloud: TestCloud, ca_file: Path, tmp_path: Path, make_session: MakeSession
) -> None:
    port = free_port()
    config = through(cloud, ca_file, tmp_path, f"http://127.0.0.1:{port}")
    status = await make_session(config).connect()
    assert status.diagnostic is Diagnostic.NETWORK_UNREACHABLE
    assert f"the proxy 127.0.0.1:{port}" in status.hint
