"""The reload itself: a new configuration put in force at one sampling instant.

```
 new settings ──▶ compare with the running ones ──▶ refused (a key that cannot
                  │                                   change live): nothing applied
                  ▼ (worker thread)
                  models, new engine (not polling), sampling plan and alarm set
                  of the remote configuration in force, on the new indices
                  │
                  ▼ at the next sampling instant, in one step:
                  devices switched, plan and alarms in force (alarm states carried
                  by definition), the instants before under the old plan
                  │
                  ▼
                  old engine stopped, new one started (the unchanged devices'
                  readings carried meanwhile); local settings taken as
                  `panelfast set` takes them
```

The rings and the outbox are not touched: what was sampled before the
instant is flushed under the configuration version it was sampled under, and
the remote configuration's measurements keep their indices (a reload changes
where they are read, not what they are), so the cloud sees one series. A
remote configuration being judged meanwhile waits (they share the
:class:`~panelfast.remote_config.Switchover` lock), so none is built on one
device set and put in force on another.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from panelfast.acquisition import Acquisition
from panelfast.alarms import carry_states, watch_interval_s
from panelfast.config import DeviceSettings, Settings, load_settings
from panelfast.exceptions import (
    ConfigError,
    ConfigIssue,
    ModelError,
    PanelfastError,
    ReloadRefused,
)
from panelfast.local_settings import change_setting
from panelfast.models import DeviceModel
from panelfast.models.loader import ModelLibrary
from panelfast.reload._compare import (
    LOCAL_TAKES_EFFECT,
    DeviceChanges,
    Effect,
    refusals,
    setting_changes,
)
from panelfast.sampling import LiveSet, PointLookup, Sampler, SamplingPlan, alarm_set

if TYPE_CHECKING:
    from panelfast.device_set import DeviceSet
    from panelfast.gateway import Gateway

__all__ = ["ReloadOutcome", "Reloader", "SettingChange"]

log = logging.getLogger("panelfast.reload")

#: How long the sampling loop may take to reach the instant of the switch.
SWITCH_TIMEOUT_S = 30.0

LookupFor = Callable[[Acquisition, dict[str, DeviceModel], dict[str, DeviceSettings]], PointLookup]


@dataclass(frozen=True, slots=True)
class SettingChange:
    """A local setting the new file changed, and when it is in force."""

    key: str
    effective: Effect


@dataclass(frozen=True, slots=True)
class ReloadOutcome:
    """What a reload changed."""

    devices_added: tuple[str, ...]
    devices_removed: tuple[str, ...]
    #: Same id, other settings or model.
    devices_changed: tuple[str, ...]
    settings: tuple[SettingChange, ...]
    #: The sampling instant from which the new device set is read (None: the
    #: polling did not change).
    from_ms: int | None
    #: The devices differ from the topology published: publish it again.
    topology_must_be_published: bool

    @property
    def changed(self) -> bool:
        return (
            bool(
                self.devices_added or self.devices_removed or self.devices_changed or self.settings
            )
            or self.from_ms is not None
        )

    def lines(self) -> list[str]:
        """What changed, one line each (none: nothing)."""
        lines = []
        for label, ids in (
            ("devices added", self.devices_added),
            ("devices removed", self.devices_removed),
            ("devices changed", self.devices_changed),
        ):
            if ids:
                lines.append(f"{label}: {', '.join(ids)}")
        for s in self.settings:
            when = "in force now" if s.effective == "now" else "in force at the next start"
            lines.append(f"setting {s.key}: {when}")
        if self.from_ms is not None:
            lines.append(f"new device set sampled from instant {self.from_ms}")
        if self.devices_removed:
            lines.append("measurements of removed devices: sampled as nil")
        devices = self.devices_added or self.devices_removed or self.devices_changed
        if devices and self.topology_must_be_published:
            lines.append("the topology must be published again: panelfast topology publish")
        return lines

    def text(self) -> str:
        """The CLI's answer."""
        lines = self.lines()
        if not lines:
            return "configuration reloaded: nothing changed\n"
        return "configuration reloaded\n" + "".join(f"  {line}\n" for line in lines)


class Reloader:
    """Reloads one gateway's configuration (see the module); owned by the gateway.

    ``devices`` is the gateway's own device set, adopting the new one at the
    switch (what reads it sees the new set at once); ``library`` gives the
    models for a configuration; ``lookup_for`` makes the point lookup of a
    device set.
    """

    def __init__(
        self,
        gateway: Gateway,
        *,
        devices: DeviceSet,
        library: Callable[[Settings], ModelLibrary],
        lookup_for: LookupFor,
        ring_capacity: int,
        alarm_interval_s: float,
        switch_timeout_s: float = SWITCH_TIMEOUT_S,
    ) -> None:
        self._gateway = gateway
        self._devices = devices
        self._library = library
        self._lookup_for = lookup_for
        self._ring_capacity = ring_capacity
        self._alarm_interval_s = alarm_interval_s
        self._switch_timeout_s = switch_timeout_s
        self._finishing: asyncio.Task[None] | None = None

    async def reload_file(self, path: Path) -> ReloadOutcome:
        """Read the configuration file again and put it in force (see :meth:`reload`).

        A file with an error raises :class:`~panelfast.exceptions.ConfigError`
        naming the key; nothing changes.
        """
        try:
            new = await asyncio.to_thread(load_settings, path)
        except ConfigError as exc:
            self._log_refused(str(path), exc.issues)
            raise
        return await self.reload(new, source=str(path))

    async def reload(self, new: Settings, *, source: str = "(settings)") -> ReloadOutcome:
        """Put ``new`` in force while the gateway runs.

        Raises :class:`~panelfast.exceptions.ReloadRefused`, naming each key
        with its reason, when it changes what cannot change live; nothing of
        it is applied then.
        """
        async with self._gateway.remote.lock:
            try:
                outcome = await self._reload(new, source)
            except ReloadRefused as exc:
                self._log_refused(source, exc.issues)
                raise
        self._log_reloaded(source, outcome)
        return outcome

    # -- the steps

    async def _reload(self, new: Settings, source: str) -> ReloadOutcome:
        gateway = self._gateway
        running = gateway.settings
        issues = refusals(running, new)
        local = setting_changes(running, new)
        issues += _check_local(running, new, local)
        new_models = await asyncio.to_thread(self._models_for, new, issues)
        if issues:
            raise ReloadRefused(source, issues)
        changes = DeviceChanges.between(
            running.devices, self._devices.models, new.devices, new_models
        )
        from_ms = None
        if changes.repoll:
            from_ms = await self._repoll(new, new_models, changes, source)
        else:
            self._adopt(new, new_models)  # names, labels...: the topology only
        for key in local:
            gateway.change_setting(key, _value(new, key))
        gateway.settings = new
        return ReloadOutcome(
            devices_added=changes.added,
            devices_removed=changes.removed,
            devices_changed=changes.changed,
            settings=tuple(
                SettingChange(key, LOCAL_TAKES_EFFECT.get(key, "next start")) for key in local
            ),
            from_ms=from_ms,
            topology_must_be_published=gateway.topology_store.needs_publish(gateway.topology()),
        )

    def _models_for(self, new: Settings, issues: list[ConfigIssue]) -> dict[str, DeviceModel]:
        """Every device's model, read again (a model file may have been edited)."""
        try:
            library = self._library(new)
        except ModelError as exc:
            issues.append(ConfigIssue("gateway.model_dirs", str(exc)))
            return {}
        models: dict[str, DeviceModel] = {}
        for index, device in enumerate(new.devices):
            try:
                models[device.id] = library.get(device.model)
            except ModelError as exc:
                message = "; ".join(issue.message for issue in exc.issues)
                issues.append(ConfigIssue(f"devices[{index}].model", message))
        if new.email is not None and len(models) == len(new.devices):
            known = {(d, m.id) for d, model in models.items() for m in model.measurements}
            try:
                new.email.check_measurements(known)
            except ConfigError as exc:
                issues += exc.issues
        return models

    async def _repoll(
        self,
        new: Settings,
        new_models: dict[str, DeviceModel],
        changes: DeviceChanges,
        source: str,
    ) -> int | None:
        """Build the new device set and what the configuration in force samples and
        watches on it, then switch at one sampling instant."""
        gateway = self._gateway
        current = gateway.remote.current

        def build() -> tuple[Acquisition, LiveSet | None]:
            acquisition = Acquisition(
                ((d, new_models[d.id]) for d in new.devices), clock=gateway.clock
            )
            lookup = self._lookup_for(acquisition, new_models, {d.id: d for d in new.devices})
            if current is None:
                return acquisition, None
            sampler = Sampler(SamplingPlan.build(current, lookup), capacity=self._ring_capacity)
            return acquisition, LiveSet(current, sampler, alarm_set(current, lookup))

        try:
            # Off the event loop: thousands of points must not hold up sampling instants.
            acquisition, live = await asyncio.to_thread(build)
        except PanelfastError as exc:
            raise ReloadRefused(source, [ConfigIssue("devices", str(exc))]) from None

        def switch() -> None:
            remote = gateway.alarm_publication.remote
            if live is not None and remote is not None:
                carry_states(*remote, live.alarms, live.config)
            gateway.acquisition.switch_to(acquisition, carry=changes.unchanged_polling)
            self._adopt(new, new_models)
            # After the switch: the email alarms' lookup reads the new device set.
            gateway.alarm_publication.reindex()
            gateway.alarms.interval_s = watch_interval_s(
                (d.connection.period_ms for d in new.devices), self._alarm_interval_s
            )
            # Its own task: once switched, the new engine starts whatever befalls the caller.
            self._finishing = asyncio.get_running_loop().create_task(
                gateway.acquisition.finish_switch(), name="device set switch"
            )

        if not gateway.started:
            switch()
            if live is not None:
                gateway.sampling.hand_over(live)
            from_ms = None
        else:
            from_ms = await self._at_next_instant(live, switch, source)
        if self._finishing is not None:
            finishing, self._finishing = self._finishing, None
            await asyncio.shield(finishing)
        return from_ms

    async def _at_next_instant(
        self, live: LiveSet | None, switch: Callable[[], None], source: str
    ) -> int:
        sampling = self._gateway.sampling
        handover = sampling.switch_at_next_instant(live, switch)
        assert handover.done is not None
        try:
            return await asyncio.wait_for(asyncio.shield(handover.done), self._switch_timeout_s)
        except TimeoutError:
            if handover.done.done():  # switched as the wait ended
                return handover.done.result()
            issue = ConfigIssue(
                "devices",
                f"the sampling loop reached no instant in {self._switch_timeout_s:.0f} s; "
                "nothing changed: try again",
            )
            raise ReloadRefused(source, [issue]) from None
        finally:
            sampling.withdraw(handover)  # not in force (timed out, cancelled): taken back

    def _adopt(self, new: Settings, new_models: dict[str, DeviceModel]) -> None:
        """The gateway's device set becomes the new one (in place)."""
        self._devices.adopt(new.devices, new_models)
        gateway = self._gateway
        gateway.settings = gateway.settings.model_copy(
            update={"devices": new.devices, "gateway": new.gateway}
        )

    # -- the log

    @staticmethod
    def _log_refused(source: str, issues: list[ConfigIssue]) -> None:
        errors = [str(issue) for issue in issues]
        log.error(
            "configuration %s not reloaded, the running configuration stays: %s",
            source,
            "; ".join(errors),
            extra={"event": "config.reload_refused", "source": source, "errors": errors},
        )

    @staticmethod
    def _log_reloaded(source: str, outcome: ReloadOutcome) -> None:
        fields: dict[str, Any] = {
            "event": "config.reloaded",
            "source": source,
            "devices_added": list(outcome.devices_added),
            "devices_removed": list(outcome.devices_removed),
            "devices_changed": list(outcome.devices_changed),
            "settings": [s.key for s in outcome.settings],
            "from_ms": outcome.from_ms,
            "topology_must_be_published": outcome.topology_must_be_published,
        }
        log.info(
            "configuration %s reloaded: %s",
            source,
            "; ".join(outcome.lines()) or "nothing changed",
            extra=fields,
        )


def _value(settings: Settings, key: str) -> object:
    section, field = key.split(".", 1)
    return getattr(getattr(settings, section), field)


def _check_local(running: Settings, new: Settings, keys: list[str]) -> list[ConfigIssue]:
    """The local settings changed, judged as ``panelfast set`` judges them (a
    publication method switched straight from cloud to email is refused...)."""
    issues: list[ConfigIssue] = []
    candidate = running
    for key in keys:
        try:
            candidate = change_setting(candidate, key, _value(new, key))
        except ConfigError as exc:
            issues += exc.issues
        except PanelfastError as exc:
            issues.append(ConfigIssue(key, str(exc)))
    return issues
