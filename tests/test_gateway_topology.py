"""Topology publication (§5, §10) through the real Gateway and the reference cloud.

Inline ``PUT`` up to 250,000 bytes, the upload service (size and sha256) above;
the cloud holds the same document and version; "must be published again"
whenever the devices or their configuration change.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway_support import closed_port, unreachable_device, with_devices
from panelfast.config import Settings
from panelfast.embedded import EmbeddedSystem, embedded_system
from panelfast.gateway import Gateway
from panelfast.topology import MAX_INLINE_BYTES

#: PM5560 devices added to the three simulated ones: 131 devices in all, over 250,000 bytes.
LARGE_FLEET = 128


@pytest.fixture
def system(tmp_path: Path) -> Iterator[EmbeddedSystem]:
    with embedded_system(tmp_path / "system") as system:
        yield system


def _content(document: dict[str, object]) -> dict[str, object]:
    """A topology without ``published_at`` (which alone may differ between publications)."""
    return {k: v for k, v in document.items() if k != "published_at"}


def _large(settings: Settings) -> Settings:
    port = closed_port()
    return with_devices(
        settings,
        [
            unreachable_device(f"feeder-{k:03d}", "PM5560", f"Feeder {k} of floor {k % 7}", port)
            for k in range(LARGE_FLEET)
        ],
    )


async def test_small_topology_is_put_inline_and_held_by_the_cloud(system: EmbeddedSystem) -> None:
    async with Gateway(system.settings) as gateway:
        assert gateway.status().topology_must_be_published  # never published
        await gateway.connect()
        topology = gateway.topology()
        assert not topology.needs_upload
        assert topology.size <= MAX_INLINE_BYTES
        version = await gateway.publish_topology()

        held = system.cloud.topology(system.serial)
        assert held is not None
        assert held["version"] == version
        assert [r["via"] for r in held["receipts"]] == ["hub"]  # PUT .../topology, not an upload
        assert _content(held["document"]) == _content(topology.document())
        assert {d["id"] for d in held["document"]["devices"]} == {"mb-1", "mb-2", "io-1"}
        assert system.cloud.uploads(system.serial) == []

        status = gateway.status()
        assert not status.topology_must_be_published
        assert status.topology_version == version
        # The same devices again: the same version (published_at alone differs).
        assert await gateway.publish_topology() == version


async def test_large_topology_goes_through_the_upload_service(
    system: EmbeddedSystem,
) -> None:
    settings = _large(system.settings)
    async with Gateway(settings) as gateway:
        await gateway.connect()
        topology = gateway.topology()
        assert topology.needs_upload
        assert topology.size > MAX_INLINE_BYTES
        version = await gateway.publish_topology()

        uploads = system.cloud.uploads(system.serial)
        assert len(uploads) == 1
        upload = uploads[0]
        assert upload["kind"] == "topology"
        assert upload["completed"]
        # What went up is whole and is this topology; its published_at is the
        # moment of publishing, which may be a second after `topology` was built.
        sent = system.cloud.upload_bytes(upload["upload_id"])
        assert upload["size"] == upload["received_size"] == len(sent)
        assert upload["sha256"] == hashlib.sha256(sent).hexdigest()
        assert upload["topology_version"] == version
        assert _content(json.loads(sent)) == _content(topology.document())

        held = system.cloud.topology(system.serial)
        assert held is not None
        assert held["version"] == version
        assert [r["via"] for r in held["receipts"]] == ["upload"]
        assert len(held["document"]["devices"]) == LARGE_FLEET + 3
        assert _content(held["document"]) == _content(topology.document())
        assert not gateway.status().topology_must_be_published

        # Published again (a new upload): the same devices, the same version.
        assert await gateway.publish_topology() == version
        assert len(system.cloud.uploads(system.serial)) == 2


async def test_changed_devices_must_be_published_again(system: EmbeddedSystem) -> None:
    async with Gateway(system.settings) as gateway:
        await gateway.connect()
        first = await gateway.publish_topology()

    # Restarted with the same devices: nothing to publish.
    async with Gateway(system.settings) as gateway:
        assert not gateway.status().topology_must_be_published
        assert gateway.status().topology_version == first

    # One more device (same storage): must be published again.
    added = with_devices(
        system.settings, [unreachable_device("mb-9", "iEM3255", "Spare feeder", closed_port())]
    )
    async with Gateway(added) as gateway:
        status = gateway.status()
        assert status.topology_must_be_published
        assert status.topology_version == first  # what the cloud holds until then
        await gateway.connect()
        second = await gateway.publish_topology()
        assert second != first
        assert not gateway.status().topology_must_be_published
        held = system.cloud.topology(system.serial)
        assert held is not None
        assert held["version"] == second
        assert "mb-9" in {d["id"] for d in held["document"]["devices"]}

    # A device renamed (its configuration changed, not the set of devices).
    document_devices = [d.model_dump(mode="json") for d in added.devices if d.id != "mb-2"]
    renamed = next(d for d in added.devices if d.id == "mb-2").model_dump(mode="json")
    renamed["name"] = "Lighting feeder, east wing"
    relabelled = with_devices(added, [*document_devices, renamed], keep=False)
    async with Gateway(relabelled) as gateway:
        assert gateway.status().topology_must_be_published
        await gateway.connect()
        third = await gateway.publish_topology()
        assert third not in (first, second)
        held = system.cloud.topology(system.serial)
        assert held is not None
        assert held["version"] == third
        names = {d["id"]: d["name"] for d in held["document"]["devices"]}
        assert names["mb-2"] == "Lighting feeder, east wing"

    # Back to the renamed set: published, so nothing to do.
    async with Gateway(relabelled) as gateway:
        assert not gateway.status().topology_must_be_published
