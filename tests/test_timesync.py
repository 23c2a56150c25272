"""Time synchronisation against a local SNTP server; the system clock is never touched."""

from __future__ import annotations

import time

import pytest

from cloud_support import free_port, sntp_server
from panelfast.cloud import Clock, SyncStatus, TimeSync
from panelfast.cloud._timesync import parse_ntp_server
from panelfast.config import TimeSettings


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("time.example.net", ("time.example.net", 123)),
        ("time.example.net:1123", ("time.example.net", 1123)),
        ("127.0.0.1:5", ("127.0.0.1", 5)),
        ("[::1]:1234", ("::1", 1234)),
        ("[::1]", ("::1", 123)),
        ("::1", ("::1", 123)),
    ],
)
def test_ntp_server_is_host_or_host_port(text: str, expected: tuple[str, int]) -> None:
    assert parse_ntp_server(text) == expected


@pytest.mark.parametrize("text", ["", "host:0", "host:70000", "host:abc", ":123", "[::1"])
def test_bad_ntp_server_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="NTP server"):
        parse_ntp_server(text)


async def test_offset_measured_and_applied_to_the_gateway_clock_only() -> None:
    async with sntp_server(offset_s=-3600.5) as (server, protocol):
        clock = Clock()
        sync = TimeSync(TimeSettings(mode="ntp", ntp_server=server), clock, timeout_s=5)
        status = await sync.sync()
    assert status.state == "synchronised"
    assert status.server == server
    assert status.offset_s == pytest.approx(-3600.5, abs=0.5)
    assert clock.now() == pytest.approx(time.time() - 3600.5, abs=0.5)
    assert abs(clock.now_ms() / 1000 - clock.now()) < 0.5
    assert protocol.queries == 1
    assert "offset -3600" in status.describe()


async def test_cloud_mode_prefers_the_bootstrap_server() -> None:
    async with sntp_server(offset_s=120) as (server, _):
        clock = Clock()
        settings = TimeSettings(mode="cloud", ntp_server="127.0.0.1:1")
        sync = TimeSync(settings, clock, cloud_ntp_server=server, timeout_s=5)
        assert sync.server() == server
        assert (await sync.sync()).offset_s == pytest.approx(120, abs=0.5)
    assert TimeSync(settings, Clock()).server() == "127.0.0.1:1"  # before the first bootstrap


async def test_manual_mode_sends_nothing_and_uses_the_system_clock() -> None:
    async with sntp_server(offset_s=500) as (server, protocol):
        clock = Clock(offset_s=12.0)
        sync = TimeSync(TimeSettings(mode="manual", ntp_server=server), clock)
        status = await sync.sync()
    assert status.state == "manual"
    assert clock.offset_s == 0.0
    assert protocol.queries == 0


async def test_failure_keeps_the_last_offset_and_says_why() -> None:
    clock = Clock()
    async with sntp_server(offset_s=42) as (server, _):
        sync = TimeSync(TimeSettings(mode="ntp", ntp_server=server), clock, timeout_s=5)
        assert (await sync.sync()).state == "synchronised"
    sync.timeout_s = 0.3
    status = await sync.sync()  # the server is gone now
    assert status.state == "failed"
    assert "no answer" in status.error
    assert clock.offset_s == pytest.approx(42, abs=0.5)

    silent = f"127.0.0.1:{free_port()}"
    sync = TimeSync(TimeSettings(mode="ntp", ntp_server=silent), Clock(), timeout_s=0.3)
    assert (await sync.sync()).state == "failed"
    unknown = TimeSync(TimeSettings(mode="ntp", ntp_server="ntp.nowhere.invalid"), Clock())
    status = await unknown.sync()
    assert status.state == "failed"
    assert "could not be resolved" in status.error


def test_a_saved_status_round_trips_and_garbage_is_ignored() -> None:
    status = SyncStatus(
        mode="ntp", server="127.0.0.1:5", state="synchronised", offset_s=1.5, synced_at=10.0
    )
    assert SyncStatus.from_json(status.to_json()) == status
    assert SyncStatus.from_json(None) is None
    assert SyncStatus.from_json({"state": "synchronised", "offset_s": "1"}) is None
    assert SyncStatus.from_json({"state": "bogus", "offset_s": 1.0}) is None

    clock = Clock()
    TimeSync(TimeSettings(mode="ntp"), clock).restore(status)
    assert clock.offset_s == 1.5
    manual = Clock()
    TimeSync(TimeSettings(mode="manual"), manual).restore(status)
    assert manual.offset_s == 0.0  # manual means the system clock


def test_a_saved_failure_is_shown_after_a_restart_with_its_last_offset() -> None:
    failed = SyncStatus(mode="ntp", server="x", state="failed", offset_s=2.0, error="no answer")
    clock = Clock()
    sync = TimeSync(TimeSettings(mode="ntp", ntp_server="x"), clock)
    sync.restore(failed)
    assert sync.status.state == "failed"
    assert clock.offset_s == 2.0
