"""The cloud through a real tinyproxy: CONNECT with credentials, refusals, a dead proxy."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import trustme

from cloud_testserver import CLAIM_KEY, SERIAL, TestCloud, free_port, tinyproxy, write_config
from panelfast.cloud import CloudSession, ConnectionStatus, Diagnostic, RetryPolicy
from panelfast.config import load_settings

MakeSession = Callable[[Path], CloudSession]


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
def cloud(ca: trustme.CA) -> Iterator[TestCloud]:
    server = TestCloud(ca, enrolled={SERIAL: CLAIM_KEY})
    yield server
    server.close()


@pytest.fixture
async def make_session() -> AsyncIterator[MakeSession]:
    made: list[CloudSession] = []

    def make(config: Path) -> CloudSession:
        retry = RetryPolicy(initial_s=0.05, max_s=0.1, max_attempts=2)
        made.append(CloudSession(load_settings(config), retry=retry))
        return made[-1]

    yield make
    for session in made:
        await session.aclose()


async def test_everything_goes_through_a_proxy_with_credentials(
    cloud: TestCloud, ca_file: Path, tmp_path: Path, make_session: MakeSession
) -> None:
    with tinyproxy(tmp_path / "proxy", auth=("alice", "s3cret")) as (port, log):
        config = write_config(
            tmp_path,
            bootstrap_url=cloud.url("bootstrap"),
            ca_bundle=ca_file,
            proxy=f"http://alice:s3cret@127.0.0.1:{port}",
        )
        session = make_session(config)
        status = await session.connect()
        assert status.diagnostic is Diagnostic.ACTIVATED, status.hint
        assert status.connection is ConnectionStatus.CONNECTED
        await session.hub.post_outputs([])
        text = log.read_text()
    for service in ("bootstrap", "hub"):
        assert f"CONNECT 127.0.0.1:{cloud.port(service)} " in text
    assert "s3cret" not in status.hint


async def test_wrong_proxy_password_is_network_unreachable_with_a_proxy_hint(
    cloud: TestCloud, ca_file: Path, tmp_path: Path, make_session: MakeSession
) -> None:
    with tinyproxy(tmp_path / "proxy", auth=("alice", "s3cret")) as (port, _):
        config = write_config(
            tmp_path,
            bootstrap_url=cloud.url("bootstrap"),
            ca_bundle=ca_file,
            proxy=f"http://alice:wrong@127.0.0.1:{port}",
        )
        status = await make_session(config).connect()
    assert status.diagnostic is Diagnostic.NETWORK_UNREACHABLE
    assert "401" in status.hint  # tinyproxy answers wrong credentials 401 (§4: "some proxies")
    assert f"proxy 127.0.0.1:{port}" in status.hint
    assert "password" in status.hint
    assert "wrong" not in status.hint  # the proxy password is never shown
    assert cloud.seen("bootstrap") == []


async def test_missing_proxy_credentials_are_refused_too(
    cloud: TestCloud, ca_file: Path, tmp_path: Path, make_session: MakeSession
) -> None:
    with tinyproxy(tmp_path / "proxy", auth=("alice", "s3cret")) as (port, _):
        config = write_config(
            tmp_path,
            bootstrap_url=cloud.url("bootstrap"),
            ca_bundle=ca_file,
            proxy=f"http://127.0.0.1:{port}",
        )
        status = await make_session(config).connect()
    assert status.diagnostic is Diagnostic.NETWORK_UNREACHABLE
    assert "407" in status.hint


async def test_proxy_refusing_connect_to_the_port(
    cloud: TestCloud, ca_file: Path, tmp_path: Path, make_session: MakeSession
) -> None:
    with tinyproxy(tmp_path / "proxy", connect_ports=(443,)) as (port, _):
        config = write_config(
            tmp_path,
            bootstrap_url=cloud.url("bootstrap"),
            ca_bundle=ca_file,
            proxy=f"http://127.0.0.1:{port}",
        )
        status = await make_session(config).connect()
    assert status.diagnostic is Diagnostic.NETWORK_UNREACHABLE
    assert "403" in status.hint
    assert f"CONNECT to 127.0.0.1:{cloud.port('bootstrap')}" in status.hint


async def test_dead_proxy_is_named_in_the_hint(
    cloud: TestCloud, ca_file: Path, tmp_path: Path, make_session: MakeSession
) -> None:
    port = free_port()
    config = write_config(
        tmp_path,
        bootstrap_url=cloud.url("bootstrap"),
        ca_bundle=ca_file,
        proxy=f"http://127.0.0.1:{port}",
    )
    status = await make_session(config).connect()
    assert status.diagnostic is Diagnostic.NETWORK_UNREACHABLE
    assert f"the proxy 127.0.0.1:{port}" in status.hint
