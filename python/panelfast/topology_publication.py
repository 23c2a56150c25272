"""Publishing the topology to the cloud (§5): what the user's Publish topology does.

The topology itself is built from the configured devices
(:meth:`~panelfast.device_set.DeviceSet.topology`); what was published last is
remembered in the storage folder (:class:`~panelfast.topology.PublishedTopologyStore`),
which says when it must be published again. A gateway with no such record (new,
or after a factory reset: the cloud may still hold a configuration for it)
publishes before it judges a configuration against the topology (§5, §6).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from panelfast.clock import Clock
from panelfast.cloud import HubClient
from panelfast.config import IdentitySettings
from panelfast.device_set import DeviceSet
from panelfast.exceptions import CloudProtocolError, TopologyError
from panelfast.topology import PublishedTopologyStore, Topology

__all__ = ["TopologyPublication", "publish_topology"]

# Its lines keep the gateway's logger name, as log readers knew them before the split.
log = logging.getLogger("panelfast.gateway")


async def publish_topology(
    hub: HubClient, topology: Topology, store: PublishedTopologyStore
) -> str:
    """Publish a topology (§5): inline up to 250,000 bytes, else through the upload
    service (§10); remember what was published. Returns the topology version."""
    if topology.needs_upload:
        result = await hub.upload("topology", topology.body, "application/json")
        if result.topology_version is None:
            raise CloudProtocolError("the upload service accepted the topology without a version")
        version = result.topology_version
    else:
        version = (await hub.put_topology(topology.body, compress=True)).topology_version
    store.record(topology, version)
    log.info(
        "topology published (%d bytes), version %s",
        topology.size,
        version,
        extra={"event": "topology.published", "topology_version": version, "bytes": topology.size},
    )
    return version


class TopologyPublication:
    """The gateway's topology as configured now, and its publication."""

    def __init__(
        self,
        hub: HubClient,
        devices: DeviceSet,
        identity: Callable[[], IdentitySettings],
        clock: Clock,
        store: PublishedTopologyStore,
        *,
        on_published: Callable[[], None],
    ) -> None:
        self._hub = hub
        self._devices = devices
        self._identity = identity
        self._clock = clock
        self.store = store
        self._on_published = on_published

    def current(self) -> Topology:
        """The topology of the devices as configured now, stamped with the gateway's clock."""
        published_at = datetime.fromtimestamp(self._clock.now(), UTC)
        return self._devices.topology(self._identity(), published_at=published_at)

    async def publish(self) -> str:
        """Publish it (inline, or through the upload service when large); its version."""
        version = await publish_topology(self._hub, self.current(), self.store)
        self._on_published()
        return version

    async def publish_if_unknown(self) -> None:
        """Publish unless a publication is on record (see the module docstring)."""
        if self.store.load() is not None:
            return
        log.info("no record of a published topology: publishing it")
        try:
            await self.publish()
        except TopologyError as exc:  # the user's to fix; configurations wait meanwhile
            log.error("the topology cannot be published: %s", exc)

    def must_be_published(self) -> bool:
        """The devices changed since the last publication (or none is on record)."""
        return self.store.needs_publish(self.current())

    def published_version(self) -> str | None:
        published = self.store.load()
        return published.topology_version if published else None
