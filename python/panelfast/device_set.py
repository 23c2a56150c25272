"""The devices configured now, their models, and what a remote configuration means on them.

A remote configuration names measurements by (device, measurement); the
configuration file names the devices. The two drift apart: a device removed
from the file, a model that lost a measurement. This object answers every
question that joins them, in one place:

- where a measurement is read in the acquisition's snapshot (its point
  lookup; one no longer configured is read nowhere, sampled nil);
- what a new remote configuration may name (published, and still configured)
  and which published devices were withdrawn since;
- what the configuration in force names that is no longer configured;
- the stored configuration put back on these devices at start;
- the topology the devices make.

A live reload (:mod:`panelfast.reload`) changes the set in place
(:meth:`DeviceSet.adopt`), at one sampling instant: everything holding this
object, or its lookup, reads the new set at once.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from panelfast.acquisition import Acquisition
from panelfast.alarms import SavedAlarm, restore_states
from panelfast.config import DeviceSettings, IdentitySettings
from panelfast.exceptions import PanelfastError
from panelfast.models import DeviceModel
from panelfast.register_types import is_exact
from panelfast.remote_config import RemoteConfig
from panelfast.sampling import LiveSet, PointLookup, Sampler, SamplingPlan, alarm_set
from panelfast.topology import PublishedTopologyStore, Topology, build_topology

__all__ = ["DeviceSet", "point_lookup"]

# What is logged here is the gateway starting (the configuration it restores): its
# lines keep the gateway's logger name, as log readers knew them before the split.
log = logging.getLogger("panelfast.gateway")


def point_lookup(
    acquisition: Acquisition,
    models: dict[str, DeviceModel],
    devices: dict[str, DeviceSettings],
) -> PointLookup:
    """A measurement's snapshot index, exactness and freshness limit.

    A measurement no longer configured (its device was removed from the
    configuration file, or its model lost it) gets the index past the last
    point: never read, sampled nil (see :data:`~panelfast.sampling.PointLookup`).
    A new configuration cannot name one: it is validated against what is configured.
    """

    def lookup(device_id: str, measurement_id: str) -> tuple[int, bool, int]:
        model = models.get(device_id)
        definition = (
            None
            if model is None
            else next((m for m in model.measurements if m.id == measurement_id), None)
        )
        if definition is None:
            return acquisition.size, False, 0
        exact = is_exact(definition.type, definition.scale, definition.offset)
        connection = devices[device_id].connection
        # A reading older than two poll periods plus a timeout is stale: the
        # device missed at least one whole cycle.
        max_age = 2 * connection.period_ms + connection.timeout_ms
        return acquisition.index(device_id, measurement_id), exact, max_age

    return lookup


class DeviceSet:
    """The configured devices with their models, read by one acquisition (see the module).

    ``published`` is the record of the topology last published: what a remote
    configuration may name is judged against it.
    """

    def __init__(
        self,
        devices: Sequence[DeviceSettings],
        models: Mapping[str, DeviceModel],
        acquisition: Acquisition,
        *,
        published: PublishedTopologyStore,
    ) -> None:
        # Updated in place by adopt(): the lookup closes over these very tables.
        self._devices: dict[str, DeviceSettings] = {d.id: d for d in devices}
        self._models: dict[str, DeviceModel] = dict(models)
        # The devices in the configuration file's order, swapped whole: read from
        # worker threads while a reload refills the tables.
        self._order: tuple[DeviceSettings, ...] = tuple(devices)
        self._published = published
        #: Where each measurement is read in the acquisition's snapshot.
        self.lookup: PointLookup = point_lookup(acquisition, self._models, self._devices)

    def __len__(self) -> int:
        return len(self._devices)

    @property
    def models(self) -> Mapping[str, DeviceModel]:
        """Each device's model, by device id."""
        return self._models

    def adopt(self, devices: Sequence[DeviceSettings], models: Mapping[str, DeviceModel]) -> None:
        """The set becomes ``devices`` (a live reload, at its switch)."""
        self._devices.clear()
        self._devices.update((d.id, d) for d in devices)
        self._models.clear()
        self._models.update(models)
        self._order = tuple(devices)

    def configured(self) -> list[tuple[DeviceSettings, DeviceModel]]:
        """The devices now, with their models (a live reload changes them; any thread)."""
        models = self._models
        return [(d, m) for d in self._order if (m := models.get(d.id)) is not None]

    def measurements(self) -> set[tuple[str, str]]:
        """Every (device, measurement) the devices' models have."""
        return {(d, m.id) for d, model in self._models.items() for m in model.measurements}

    def topology(self, identity: IdentitySettings, *, published_at: datetime) -> Topology:
        """The topology of the devices as configured now."""
        devices = list(self._devices.values())
        return build_topology(
            identity,
            devices,
            {d.model: self._models[d.id] for d in devices},
            published_at=published_at,
        )

    # -- a remote configuration on these devices -----------------------------

    def allowed(self) -> set[tuple[str, str]]:
        """What a remote configuration may name: published, and still configured."""
        published = self._published.load()
        if published is None:
            return set()
        return set(published.measurements) & self.measurements()

    def withdrawn(self) -> set[str]:
        """Devices of the published topology removed from the configuration file since."""
        published = self._published.load()
        if published is None:
            return set()
        return {d for d, _ in published.measurements} - self._models.keys()

    def not_configured(self, config: RemoteConfig | None) -> tuple[str, ...]:
        """What ``config`` names that the devices no longer have (see
        :attr:`~panelfast.gateway.GatewayStatus.not_configured`)."""
        if config is None:
            return ()
        gone: dict[str, None] = {}  # ordered, each once
        known: dict[str, set[str]] = {}
        named = itertools.chain(
            ((m.device, m.measurement) for m in config.measurements),
            ((a.device, a.measurement) for a in config.alarms),
        )
        for device, measurement in named:
            model = self._models.get(device)
            if model is None:
                gone[device] = None
                continue
            ids = known.get(device)
            if ids is None:
                ids = known[device] = {m.id for m in model.measurements}
            if measurement not in ids:
                gone[f"{device}/{measurement}"] = None
        return tuple(gone)

    def restore(
        self,
        config: RemoteConfig | None,
        saved: Callable[[], Mapping[str, SavedAlarm]],
        *,
        capacity: int,
    ) -> LiveSet | None:
        """The stored configuration, sampled again from the start (no cloud needed),
        its alarms in the states ``saved()`` left them in; None if there is none,
        or it no longer fits the devices (logged: the gateway samples nothing then)."""
        if config is None:
            return None
        gone = self.not_configured(config)
        if gone:
            log.warning(
                "the remote configuration %s names what is no longer configured (%s): "
                "sampled as nil, its alarms keep their state; publish the topology again",
                config.version,
                ", ".join(gone[:10]) + (f" and {len(gone) - 10} more" if len(gone) > 10 else ""),
            )
        try:
            sampler = Sampler(SamplingPlan.build(config, self.lookup), capacity=capacity)
            alarms = alarm_set(config, self.lookup)
            restored = restore_states(alarms, config, saved())
            if restored:
                log.info(
                    "alarm states restored: %s",
                    ", ".join(f"{a.id} {'active' if a.active else 'pending'}" for a in restored),
                )
            return LiveSet(config, sampler, alarms)
        except PanelfastError as exc:
            log.error(
                "the stored remote configuration %s no longer fits the devices: %s",
                config.version,
                exc,
                extra={
                    "event": "config.unusable",
                    "config_version": config.version,
                    "error": str(exc),
                },
            )
            return None
