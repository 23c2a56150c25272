"""The gateway's own cloud client (panelfast.cloud) against the reference cloud, over HTTPS.

Two independent implementations of the spec meeting: every typed call of the
gateway's HubClient succeeds against the reference cloud, and the faults the
reference cloud injects are recovered the way the spec says.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest

from cloud_support import CLAIM_KEY, write_config
from panelfast._native import SeriesSet, encode_batches
from panelfast.cloud import CloudSession, RetryPolicy
from panelfast.config import load_settings
from panelfast.exceptions import Conflict, NotRegistered
from panelfast.refcloud import RefCloud

SERIAL = "PS-0042-7A19"
T0 = 1_795_000_020_000
TOPOLOGY = {
    "schema": "panelfast.topology/1",
    "gateway": {"serial": SERIAL, "model": "advanced"},
    "published_at": "2026-11-22T10:00:00Z",
    "devices": [
        {
            "id": "mb-1",
            "name": "Main incomer",
            "model": "PM5560",
            "measurements": [
                {"id": "ActivePowerTotal", "name": "P", "unit": "W", "kind": "instantaneous"},
                {"id": "EnergyTotal", "name": "E", "unit": "Wh", "kind": "cumulative"},
            ],
            "outputs": [{"id": "Q1", "mode": "contactor"}],
        }
    ],
}


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[RefCloud]:
    with RefCloud(tmp_path / "cloud") as running:
        running.enrol(SERIAL, CLAIM_KEY)
        yield running


@pytest.fixture
async def gateway(cloud: RefCloud, tmp_path: Path) -> AsyncIterator[CloudSession]:
    config = write_config(
        tmp_path / "gateway",
        bootstrap_url=cloud.bootstrap_url,
        ca_bundle=cloud.ca_path,
        serial=SERIAL,
        timeout_s=5.0,
    )
    session = CloudSession(
        load_settings(config), retry=RetryPolicy(initial_s=0.05, max_s=0.2, max_attempts=4)
    )
    await session.connect()
    yield session
    await session.aclose()


async def test_every_hub_call_of_the_gateway_client(gateway: CloudSession, cloud: RefCloud) -> None:
    hub = gateway.hub
    accepted = await hub.put_topology(json.dumps(TOPOLOGY).encode(), compress=True)
    assert accepted.topology_version == cloud.topology(SERIAL)["version"]  # type: ignore[index]
    assert (await hub.get_config(have_version=None)).status == "none"
    cloud.generate_config(SERIAL, period_s=60)
    answer = await hub.get_config(have_version=None, wait_s=1)
    assert (answer.status, answer.version) == ("new", "1")
    assert (await hub.get_config(have_version="1")).status == "unchanged"
    await hub.report_config("1", "applied")
    assert cloud.reports(SERIAL)[-1]["status"] == "applied"

    series = SeriesSet.from_series(
        [
            (0, T0, 60_000, np.linspace(0.0, 1.0, 500)),
            (1, T0, 60_000, np.arange(500, dtype=np.int64)),
        ]
    )
    for batch in encode_batches(series, "1", 1, max_bytes=2_000):
        assert (await hub.post_data(batch.body)).seq == batch.seq
    assert len(cloud.sample_counts(SERIAL)) == 1_000
    with pytest.raises(Conflict) as conflict:
        await hub.post_data(encode_batches(series, "1", 1)[0].body)
    assert conflict.value.expected == cloud.last_seq(SERIAL) + 1

    event = {"id": str(uuid.uuid4()), "alarm": "a1", "state": "active", "ts": T0, "value": 1.5}
    assert await hub.post_alarms([event]) == 1
    assert await hub.post_alarms([event]) == 1
    assert len(cloud.alarm_events(SERIAL)) == 1

    queued = cloud.queue_command(SERIAL, {"type": "output", "output": "mb-1/Q1", "action": "on"})
    (command,) = await hub.get_commands(wait_s=1)
    assert (command.id, command.body) == (queued["id"], queued)
    await hub.post_command_result(command.id, "rejected", "remote_control_disabled")
    assert await hub.get_commands() == []
    await hub.post_outputs([{"output": "mb-1/Q1", "state": "off", "ts": T0, "source": "local"}])
    assert cloud.output_states(SERIAL)[0]["source"] == "local"

    logs = await hub.upload("logs", b"a log line\n" * 1000, "text/plain")
    assert logs.topology_version is None
    big = await hub.upload("topology", json.dumps(TOPOLOGY).encode(), "application/json")
    assert big.topology_version == accepted.topology_version
    await hub.disconnect()
    assert len(cloud.disconnects(SERIAL)) == 1


async def test_the_gateway_recovers_from_injected_faults(
    gateway: CloudSession, cloud: RefCloud
) -> None:
    hub = gateway.hub
    cloud.inject_fault("unavailable", "topology", count=2)
    cloud.inject_fault("drop", "topology")
    accepted = await hub.put_topology(json.dumps(TOPOLOGY).encode())
    assert accepted.topology_version.startswith("t-")
    # An expired token: the client bootstraps again and retries once.
    cloud.expire_tokens(SERIAL)
    assert (await hub.get_config(have_version=None)).status == "none"
    cloud.de_enrol(SERIAL)
    with pytest.raises(NotRegistered):
        await hub.get_commands()
