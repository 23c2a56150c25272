"""Every typed hub and upload call of HubClient, against the real HTTPS test cloud."""

from __future__ import annotations

import asyncio
import json
import time

import msgpack
import pytest
import zstandard

from cloud_support import (
    SERIAL,
    ca_file_fixture,
    ca_fixture,
    cloud_fixture,
    config_fixture,
    make_cloud_fixture,
    make_session_fixture,
    session_fixture,
)
from cloud_testserver import TestCloud
from panelfast.cloud import CloudSession, ConfigAnswer
from panelfast.cloud._hub import MAX_HUB_BODY
from panelfast.exceptions import (
    CloudProtocolError,
    Conflict,
    InvalidPayload,
    NotFound,
    PayloadTooLarge,
)
from waiting import PATIENCE_S, eventually

__all__ = [  # fixtures used by name
    "ca_file_fixture",
    "ca_fixture",
    "cloud_fixture",
    "config_fixture",
    "make_cloud_fixture",
    "make_session_fixture",
    "session_fixture",
]

TOPOLOGY = {
    "schema": "panelfast.topology/1",
    "gateway": {"serial": SERIAL, "model": "advanced"},
    "published_at": "2026-11-22T10:00:00Z",
    "devices": [],
}


def batch(seq: int, values: list[float]) -> bytes:
    doc = {
        "v": 1,
        "seq": seq,
        "config_version": "17",
        "groups": [{"t0": 1_795_000_000_000, "dt": 600_000, "m": [0], "v": [values]}],
    }
    return zstandard.ZstdCompressor().compress(msgpack.packb(doc))


async def test_topology_plain_and_zstd_give_the_same_version(
    session: CloudSession, cloud: TestCloud
) -> None:
    body = json.dumps(TOPOLOGY).encode()
    plain = await session.hub.put_topology(body)
    later = dict(TOPOLOGY, published_at="2026-11-23T10:00:00Z")
    packed = await session.hub.put_topology(json.dumps(later).encode(), compress=True)
    assert plain.topology_version == packed.topology_version
    sent = cloud.seen("hub", "/topology")
    assert sent[1].headers["Content-Encoding"] == "zstd"
    assert zstandard.ZstdDecompressor().decompress(sent[1].body) == json.dumps(later).encode()


async def test_oversized_bodies_are_refused_before_sending(
    session: CloudSession, cloud: TestCloud
) -> None:
    before = len(cloud.requests)
    with pytest.raises(PayloadTooLarge):
        await session.hub.put_topology(b" " * 250_001)
    with pytest.raises(PayloadTooLarge):
        await session.hub.post_data(b"x" * (MAX_HUB_BODY + 1))
    assert len(cloud.requests) == before


async def test_config_none_then_new_then_unchanged_then_report(
    session: CloudSession, cloud: TestCloud
) -> None:
    assert await session.hub.get_config(have_version=None) == ConfigAnswer("none")
    cloud.config = {
        "version": "17",
        "measurements": [],
        "alarms": [],
        "publisher": {"period_s": 60},
    }
    answer = await session.hub.get_config(have_version=None, wait_s=1)
    assert answer.status == "new"
    assert answer.version == "17"
    assert answer.document == cloud.config
    unchanged = await session.hub.get_config(have_version="17", wait_s=1)
    assert unchanged.status == "unchanged"
    assert cloud.seen("hub", "/config")[-1].headers["If-None-Match"] == '"17"'
    await session.hub.report_config("17", "rejected", [("alarms[3].threshold", "not finite")])
    assert cloud.config_reports == [
        {
            "version": "17",
            "status": "rejected",
            "errors": [{"path": "alarms[3].threshold", "message": "not finite"}],
        }
    ]


async def test_data_ack_duplicate_and_conflict_expected(
    session: CloudSession, cloud: TestCloud
) -> None:
    first = batch(1, [230.5, None])
    ack = await session.hub.post_data(first)
    assert (ack.seq, ack.duplicate) == (1, False)
    again = await session.hub.post_data(first)
    assert (again.seq, again.duplicate) == (1, True)
    with pytest.raises(Conflict) as taken:
        await session.hub.post_data(batch(1, [999.0]))
    assert taken.value.expected == 2
    with pytest.raises(Conflict) as ahead:
        await session.hub.post_data(batch(5, [1.0]))
    assert ahead.value.expected == 2
    sent = cloud.seen("hub", "/data")[0]
    assert sent.headers["Content-Type"] == "application/vnd.panelfast.batch+msgpack"
    assert sent.headers["Content-Encoding"] == "zstd"


async def test_413_from_the_hub_is_payload_too_large(
    session: CloudSession, cloud: TestCloud
) -> None:
    cloud.fail_next("hub", "/data", 413, code="payload_too_large")
    with pytest.raises(PayloadTooLarge):
        await session.hub.post_data(batch(1, [1.0]))
    assert len(cloud.seen("hub", "/data")) == 1


async def test_malformed_batch_is_invalid_payload_and_not_retried(
    session: CloudSession, cloud: TestCloud
) -> None:
    with pytest.raises(InvalidPayload):
        await session.hub.post_data(b"not zstd")
    assert len(cloud.seen("hub", "/data")) == 1


async def test_alarms_commands_results_outputs(session: CloudSession, cloud: TestCloud) -> None:
    event = {"id": "e-1", "alarm": "a1", "state": "active", "ts": 1, "value": 254.1}
    assert await session.hub.post_alarms([event]) == 1
    assert await session.hub.post_alarms([event]) == 1  # idempotent
    with pytest.raises(Conflict):
        await session.hub.post_alarms([dict(event, value=1.0)])

    cloud.commands["c-84"] = {"id": "c-84", "type": "upload_logs"}
    commands = await session.hub.get_commands(wait_s=1)
    assert [(c.id, c.type) for c in commands] == [("c-84", "upload_logs")]
    await session.hub.post_command_result("c-84", "rejected", "remote_control_disabled")
    assert cloud.results["c-84"] == {"status": "rejected", "reason": "remote_control_disabled"}
    with pytest.raises(NotFound):
        await session.hub.post_command_result("c-99", "done")
    with pytest.raises(ValueError, match="needs a reason"):
        await session.hub.post_command_result("c-84", "failed")
    with pytest.raises(CloudProtocolError):
        await session.hub.post_command_result("../x", "done")

    state = {"output": "io-1/Q1", "state": "on", "ts": 5, "source": "local"}
    await session.hub.post_outputs([state])
    assert cloud.outputs == [state]


async def test_long_poll_commands_returns_when_one_arrives(
    session: CloudSession, cloud: TestCloud
) -> None:
    polls = len(cloud.seen("hub", "/commands"))
    started = time.monotonic()
    poll = asyncio.create_task(session.hub.get_commands(wait_s=20))
    await eventually(lambda: len(cloud.seen("hub", "/commands")) > polls, "the poll at the cloud")
    assert not poll.done()
    cloud.commands["c-1"] = {"id": "c-1", "type": "upload_logs"}
    commands = await asyncio.wait_for(poll, PATIENCE_S)
    assert [c.id for c in commands] == ["c-1"]
    assert time.monotonic() - started < 20, "answered when the command came, not at the deadline"


async def test_upload_three_steps_for_a_large_topology(
    session: CloudSession, cloud: TestCloud
) -> None:
    devices = [
        {"id": f"mb-{i}", "name": "x" * 100, "model": "PM5560", "measurements": []}
        for i in range(3000)
    ]
    big = json.dumps(dict(TOPOLOGY, devices=devices)).encode()
    assert len(big) > 250_000
    result = await session.hub.upload("topology", big, "application/json")
    assert result.topology_version is not None
    put = cloud.seen("upload", "/put/")[0]
    assert "Authorization" not in put.headers  # put_url authorises itself
    assert put.body == big
    announce = json.loads(cloud.seen("upload", "/uploads")[0].body)
    assert announce["size"] == len(big)

    cloud.fail_next("upload", "/complete", 400, code="invalid_payload")
    with pytest.raises(InvalidPayload):
        await session.hub.upload("logs", b"log line\n", "text/plain")


async def test_wait_is_bounded_by_the_protocol(session: CloudSession) -> None:
    with pytest.raises(ValueError, match=r"0\.\.30"):
        await session.hub.get_commands(wait_s=31)
