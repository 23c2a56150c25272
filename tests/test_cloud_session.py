"""The cloud connection against a real HTTPS cloud on loopback: status, diagnostics, hints."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import stat
import struct
import threading
import time
from pathlib import Path

import pytest
import trustme

from cloud_support import (
    CLAIM_KEY,
    SERIAL,
    MakeCloud,
    MakeSession,
    ca_file_fixture,
    ca_fixture,
    cloud_fixture,
    config_fixture,
    free_port,
    make_cloud_fixture,
    make_session_fixture,
    sntp_server,
    write_config,
)
from cloud_testserver import TestCloud
from panelfast.cloud import ConnectionStatus, Diagnostic, RetryPolicy
from panelfast.exceptions import (
    BadCredentials,
    NetworkUnreachable,
    NotConnected,
    NotRegistered,
    RateLimited,
)
from waiting import PATIENCE_S, eventually

__all__ = [  # fixtures used by name
    "ca_file_fixture",
    "ca_fixture",
    "cloud_fixture",
    "config_fixture",
    "make_cloud_fixture",
    "make_session_fixture",
]


async def test_connect_activates_and_keeps_the_token_secret(
    cloud: TestCloud,
    config: Path,
    tmp_path: Path,
    make_session: MakeSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    session = make_session(config)
    assert session.status().connection is ConnectionStatus.NOT_CONNECTED

    status = await session.connect()

    assert status.connection is ConnectionStatus.CONNECTED
    assert status.diagnostic is Diagnostic.ACTIVATED
    assert status.device_id == cloud.devices[SERIAL]
    assert len(cloud.seen("bootstrap")) == 1
    assert cloud.seen("hub", "/commands")  # the hub request that proves the connection
    state_file = tmp_path / "state" / "cloud-state.json"
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
    token = json.loads(state_file.read_text())["token"]
    assert token in cloud.tokens
    assert token not in caplog.text
    assert CLAIM_KEY not in caplog.text
    assert token not in repr(session.state)
    assert CLAIM_KEY not in repr(session.identity)
    rows = dict(session.identity.identification())
    assert rows["Claim key"] == CLAIM_KEY[:4] + "…"
    assert rows["Cloud device id"] == status.device_id


async def test_wrong_ca_is_bad_credentials(
    cloud: TestCloud, tmp_path: Path, make_session: MakeSession
) -> None:
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    config = write_config(tmp_path, bootstrap_url=cloud.url("bootstrap"), ca_bundle=other_ca)

    status = await make_session(config).connect()

    assert status.connection is ConnectionStatus.IN_PROGRESS
    assert status.diagnostic is Diagnostic.BAD_CREDENTIALS
    assert f"127.0.0.1:{cloud.port('bootstrap')}" in status.hint
    assert "ca_bundle" in status.hint
    assert cloud.seen("bootstrap") == []  # the handshake failed: nothing was sent


async def test_unreadable_ca_bundle_is_bad_credentials(
    cloud: TestCloud, tmp_path: Path, make_session: MakeSession
) -> None:
    missing = tmp_path / "no-such-ca.pem"
    config = write_config(tmp_path, bootstrap_url=cloud.url("bootstrap"), ca_bundle=missing)
    status = await make_session(config).connect()
    assert status.diagnostic is Diagnostic.BAD_CREDENTIALS
    assert str(missing) in status.hint
    assert "ca_bundle" in status.hint


async def test_hub_refusing_a_de_enrolled_serial_is_not_registered(
    cloud: TestCloud, config: Path, make_session: MakeSession
) -> None:
    session = make_session(config)
    await session.connect()
    del cloud.enrolled[SERIAL]  # the token stays valid
    with pytest.raises(NotRegistered):
        await session.hub.post_outputs([])
    assert session.status().diagnostic is Diagnostic.NOT_REGISTERED
    assert "claim it in the cloud application" in session.status().hint


async def test_unknown_serial_is_not_registered(
    cloud: TestCloud, ca_file: Path, tmp_path: Path, make_session: MakeSession
) -> None:
    config = write_config(
        tmp_path, bootstrap_url=cloud.url("bootstrap"), ca_bundle=ca_file, serial="PS-9999-0000"
    )

    status = await make_session(config).connect()

    assert status.diagnostic is Diagnostic.NOT_REGISTERED
    assert "PS-9999-0000" in status.hint
    assert "claim" in status.hint
    assert CLAIM_KEY[:4] + "…" in status.hint
    assert CLAIM_KEY not in status.hint


async def test_wrong_claim_key_is_bad_credentials(
    cloud: TestCloud, ca_file: Path, tmp_path: Path, make_session: MakeSession
) -> None:
    config = write_config(
        tmp_path, bootstrap_url=cloud.url("bootstrap"), ca_bundle=ca_file, claim_key="77" * 32
    )
    status = await make_session(config).connect()
    assert status.diagnostic is Diagnostic.BAD_CREDENTIALS
    assert "claim key" in status.hint


async def test_nothing_listening_is_network_unreachable_with_host_and_port(
    ca_file: Path, tmp_path: Path, make_session: MakeSession
) -> None:
    port = free_port()
    config = write_config(tmp_path, bootstrap_url=f"https://127.0.0.1:{port}", ca_bundle=ca_file)

    status = await make_session(config).connect()

    assert status.connection is ConnectionStatus.IN_PROGRESS
    assert status.diagnostic is Diagnostic.NETWORK_UNREACHABLE
    assert f"127.0.0.1:{port}" in status.hint


@pytest.mark.parametrize(("behaviour", "said"), [("reset", "reset"), ("silent", "no answer")])
async def test_reset_or_silent_server_is_network_unreachable(
    behaviour: str, said: str, ca_file: Path, tmp_path: Path, make_session: MakeSession
) -> None:
    accepted: list[socket.socket] = []
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)  # closing a socket does not wake accept(): look now and then
    port = listener.getsockname()[1]
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            if behaviour == "reset":  # RST right away
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
            else:
                accepted.append(conn)  # never answers

    thread = threading.Thread(target=serve)
    thread.start()
    config = write_config(
        tmp_path, bootstrap_url=f"https://127.0.0.1:{port}", ca_bundle=ca_file, timeout_s=0.3
    )
    try:
        status = await make_session(config).connect()
    finally:
        done.set()
        thread.join()
        listener.close()
        for conn in accepted:
            conn.close()
    assert status.diagnostic is Diagnostic.NETWORK_UNREACHABLE
    assert f"127.0.0.1:{port}" in status.hint
    assert said in status.hint


async def test_unresolvable_host_is_network_unreachable_naming_the_host(
    ca_file: Path, tmp_path: Path, make_session: MakeSession
) -> None:
    config = write_config(
        tmp_path, bootstrap_url="https://bootstrap.cloud.invalid:8443", ca_bundle=ca_file
    )
    status = await make_session(config).connect()
    assert status.diagnostic is Diagnostic.NETWORK_UNREACHABLE
    assert "bootstrap.cloud.invalid" in status.hint
    assert "DNS could not resolve" in status.hint
    assert "bootstrap.cloud.invalid:8443" in status.hint


async def test_token_expiry_mid_run_bootstraps_again_transparently(
    cloud: TestCloud, config: Path, make_session: MakeSession
) -> None:
    session = make_session(config)
    await session.connect()
    first_token = session.state.token
    cloud.expire_tokens()

    ack = await session.hub.post_alarms(
        [{"id": "e-1", "alarm": "a1", "state": "active", "ts": 1, "value": 254.1}]
    )

    assert ack == 1
    assert len(cloud.seen("bootstrap")) == 2
    assert [r.path.rsplit("/", 1)[1] for r in cloud.seen("hub", "/alarms")] == ["alarms"] * 2
    assert session.state.token != first_token
    assert session.status().diagnostic is Diagnostic.ACTIVATED


async def test_concurrent_calls_after_expiry_share_one_bootstrap(
    cloud: TestCloud, config: Path, make_session: MakeSession
) -> None:
    session = make_session(config)
    await session.connect()
    cloud.expire_tokens()
    await asyncio.gather(*(session.hub.post_outputs([]) for _ in range(4)))
    assert len(cloud.seen("bootstrap")) == 2


async def test_hub_refusing_a_fresh_token_is_bad_credentials_after_one_retry(
    cloud: TestCloud, config: Path, make_session: MakeSession
) -> None:
    session = make_session(config)
    await session.connect()
    cloud.fail_next("hub", "/outputs", 401, count=5, code="bad_credentials")
    with pytest.raises(BadCredentials):
        await session.hub.post_outputs([])
    assert len(cloud.seen("hub", "/outputs")) == 2  # retried once, after bootstrapping
    assert len(cloud.seen("bootstrap")) == 2
    assert session.status().diagnostic is Diagnostic.BAD_CREDENTIALS
    assert "bootstrap and hub" in session.status().hint


async def test_failed_bootstrap_after_expiry_sets_the_diagnostic(
    cloud: TestCloud, config: Path, make_session: MakeSession
) -> None:
    session = make_session(config)
    await session.connect()
    del cloud.enrolled[SERIAL]
    cloud.expire_tokens()

    with pytest.raises(NotRegistered):
        await session.hub.get_commands()

    assert session.status().diagnostic is Diagnostic.NOT_REGISTERED
    assert session.status().connection is ConnectionStatus.IN_PROGRESS


async def test_skewed_clock_is_bad_credentials_until_time_follows_the_cloud(
    make_cloud: MakeCloud, ca_file: Path, tmp_path: Path, make_session: MakeSession
) -> None:
    skewed = make_cloud(skew_s=600)  # 10 minutes ahead
    async with sntp_server(offset_s=600) as (ntp, sntp):
        manual = write_config(
            tmp_path / "a", bootstrap_url=skewed.url("bootstrap"), ca_bundle=ca_file
        )
        status = await make_session(manual).connect()
        assert status.diagnostic is Diagnostic.BAD_CREDENTIALS
        assert "Cloud" in status.hint
        assert "clock" in status.hint
        assert sntp.queries == 0  # manual: the system clock, no NTP

        cloud_mode = write_config(
            tmp_path / "b",
            bootstrap_url=skewed.url("bootstrap"),
            ca_bundle=ca_file,
            mode="cloud",
            ntp_server=ntp,  # before the first bootstrap: the configured server
        )
        session = make_session(cloud_mode)
        status = await session.connect()

        assert status.diagnostic is Diagnostic.ACTIVATED, status.hint
        assert status.time.state == "synchronised"
        assert status.time.offset_s == pytest.approx(600, abs=1)
        assert session.clock.now() == pytest.approx(skewed.now(), abs=1)
        assert sntp.queries >= 1


async def test_cloud_mode_switches_to_the_ntp_server_bootstrap_names(
    make_cloud: MakeCloud, ca_file: Path, tmp_path: Path, make_session: MakeSession
) -> None:
    async with sntp_server(offset_s=100) as (ntp, sntp):
        cloud = make_cloud(ntp_server=ntp)
        config = write_config(
            tmp_path,
            bootstrap_url=cloud.url("bootstrap"),
            ca_bundle=ca_file,
            mode="cloud",
            ntp_server=f"127.0.0.1:{free_port()}",  # configured, but silent
        )
        session = make_session(config)
        status = await session.connect()
    assert status.diagnostic is Diagnostic.ACTIVATED
    assert status.time.server == ntp
    assert status.time.state == "synchronised"
    assert status.time.offset_s == pytest.approx(100, abs=1)
    assert sntp.queries == 1


async def test_disconnect_sends_the_call_then_stops_all_traffic(
    cloud: TestCloud, config: Path, make_session: MakeSession
) -> None:
    session = make_session(config)
    await session.connect()
    device_id = session.state.device_id
    polls = len(cloud.seen("hub", "/commands"))
    in_flight = asyncio.create_task(session.hub.get_commands(wait_s=5))
    await eventually(lambda: len(cloud.seen("hub", "/commands")) > polls, "the poll at the cloud")

    status = await session.disconnect()

    assert status.connection is ConnectionStatus.NOT_CONNECTED
    assert cloud.disconnects == [device_id]
    with pytest.raises(NotConnected):
        await in_flight
    count = len(cloud.requests)
    with pytest.raises(NotConnected):
        await session.hub.get_commands()
    with pytest.raises(NotConnected):
        await session.hub.post_outputs([])
    assert len(cloud.requests) == count
    # And it stays disconnected across a restart.
    again = make_session(config)
    assert again.status().connection is ConnectionStatus.NOT_CONNECTED
    assert not again.connect_requested


async def test_connect_is_resumed_after_a_restart(
    cloud: TestCloud, config: Path, make_session: MakeSession
) -> None:
    first = make_session(config)
    await first.connect()
    await first.aclose()  # the process ends

    rebooted = make_session(config)
    assert rebooted.connect_requested
    assert rebooted.status().connection is ConnectionStatus.IN_PROGRESS
    runner = asyncio.create_task(rebooted.run())
    await eventually(
        lambda: rebooted.status().connection is ConnectionStatus.CONNECTED, "connected again"
    )

    assert len(cloud.seen("bootstrap")) == 1  # the persisted token was reused
    await rebooted.disconnect()
    await asyncio.wait_for(runner, PATIENCE_S)


async def test_run_reconnects_with_backoff_once_the_cloud_is_back(
    cloud: TestCloud, config: Path, make_session: MakeSession
) -> None:
    session = make_session(config)
    cloud.fail_next("bootstrap", "", 503, count=4)  # two attempts of at most 3 tries
    assert (await session.connect()).diagnostic is Diagnostic.NETWORK_UNREACHABLE

    runner = asyncio.create_task(session.run())
    await eventually(
        lambda: session.status().connection is ConnectionStatus.CONNECTED, "connected at last"
    )
    assert session.status().diagnostic is Diagnostic.ACTIVATED
    await session.disconnect()
    await asyncio.wait_for(runner, PATIENCE_S)


async def test_429_stops_traffic_to_that_host_for_retry_after(
    cloud: TestCloud, config: Path, make_session: MakeSession
) -> None:
    session = make_session(config)
    await session.connect()
    cloud.fail_next("hub", "/commands", 429, headers={"Retry-After": "1"})

    poll = asyncio.create_task(session.hub.get_commands())
    await eventually(lambda: session.transport.blocked_for(cloud.url("hub")) > 0, "the 429")
    assert session.transport.blocked_for(cloud.url("upload")) == 0  # per host
    other = asyncio.create_task(session.hub.post_outputs([]))  # waits too
    assert await poll == []
    await other

    polls = cloud.seen("hub", "/commands")[-2:]
    outputs = cloud.seen("hub", "/outputs")
    assert polls[1].at - polls[0].at >= 0.95
    assert outputs[0].at - polls[0].at >= 0.95


async def test_429_beyond_the_attempts_raises_rate_limited(
    cloud: TestCloud, config: Path, make_session: MakeSession
) -> None:
    session = make_session(config, RetryPolicy(initial_s=0.05, max_s=0.2, max_attempts=1))
    await session.connect()
    cloud.fail_next("hub", "/commands", 429, headers={"Retry-After": "7"})
    asked = time.monotonic()
    with pytest.raises(RateLimited) as caught:
        await session.hub.get_commands()
    assert caught.value.retry_after == 7
    # Blocked for 7 s from the answer, which came after it was asked.
    blocked = session.transport.blocked_for(cloud.url("hub"))
    assert 7 - (time.monotonic() - asked) - 0.01 <= blocked <= 7


async def test_503_is_retried_with_backoff_then_network_unreachable(
    cloud: TestCloud, config: Path, make_session: MakeSession
) -> None:
    policy = RetryPolicy(initial_s=0.2, max_s=0.4, max_attempts=4)
    session = make_session(config, policy)
    await session.connect()

    cloud.fail_next("hub", "/commands", 503, count=2)
    assert await session.hub.get_commands() == []
    tries = cloud.seen("hub", "/commands")[-3:]
    assert tries[1].at - tries[0].at >= 0.2 * 0.8
    assert tries[2].at - tries[1].at >= 0.4 * 0.8  # doubled

    cloud.fail_next("hub", "/commands", 503, count=10)
    with pytest.raises(NetworkUnreachable):
        await session.hub.get_commands()
    status = session.status()
    assert status.diagnostic is Diagnostic.NETWORK_UNREACHABLE
    assert status.connection is ConnectionStatus.IN_PROGRESS
    assert f"127.0.0.1:{cloud.port('hub')}" in status.hint
    assert "503" in status.hint


def test_backoff_doubles_to_its_bound_with_jitter() -> None:
    policy = RetryPolicy()
    delays = [policy.delay(n) for n in range(12)]
    assert 0.8 <= delays[0] <= 1.2
    assert 1.6 <= delays[1] <= 2.4
    assert all(d <= 300 for d in delays)
    assert delays[-1] >= 240
    assert len({policy.delay(3) for _ in range(20)}) > 1  # jitter


def test_state_file_is_never_world_readable(tmp_path: Path) -> None:
    from panelfast.cloud._state import CloudState, StateStore

    old = os.umask(0)
    try:
        StateStore(tmp_path).save(CloudState(connect=True))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "cloud-state.json").stat().st_mode) == 0o600
    (tmp_path / "cloud-state.json").write_text("{not json")
    assert StateStore(tmp_path).load().connect is False
    assert (tmp_path / "cloud-state.json.corrupt").exists()


def test_retry_after_is_seconds_or_an_http_date() -> None:
    from email.utils import formatdate

    from panelfast.clock import Clock
    from panelfast.cloud._transport import DEFAULT_RETRY_AFTER_S, _retry_after

    clock = Clock()
    assert _retry_after("12", clock) == 12
    in_a_minute = formatdate(time.time() + 60, usegmt=True)
    assert _retry_after(in_a_minute, clock) == pytest.approx(60, abs=2)
    assert _retry_after(formatdate(time.time() - 60, usegmt=True), clock) == 0
    assert _retry_after(None, clock) == DEFAULT_RETRY_AFTER_S
    assert _retry_after("soon", clock) == DEFAULT_RETRY_AFTER_S
    # The date is the cloud's: a gateway whose system clock is an hour behind
    # (synchronised offset +3600 s) still waits one minute, not an hour.
    late = Clock(offset_s=3600)
    in_a_true_minute = formatdate(time.time() + 3600 + 60, usegmt=True)
    assert _retry_after(in_a_true_minute, late) == pytest.approx(60, abs=2)
