"""The gateway: acquisition → sampling and alarms → outbox → cloud, as one async object.

```
 devices ──Modbus──▶ Acquisition (Rust engine, own threads)
                         │ snapshot (numpy arrays)
          every second   ▼                      every 250 ms
                      Sampler ──▶ rings      AlarmSet ──▶ events ──▶ AlarmMailer ──SMTP──▶
                         │ every flush_s            │           (publication method email)
                         ▼                          ▼
                      Outbox (SQLite) ◀─────────────┘ (method cloud)
                         │ every publisher period, and at once after an outage
                         ▼
                      Publisher ──HTTPS──▶ hub        ◀── config long poll ── remote configuration
                                                      ◀── commands long poll ── CommandService
                                                          (outputs, schedules, log bundles)
```

Everything the cloud imposes arrives as a remote configuration, validated
whole and applied at one sampling instant: from that instant the new set is
sampled, the new alarms watched and the new publication period kept. The
applied configuration is stored, so a gateway restarted without its cloud
samples as before.

:class:`Gateway` is the typed API services use (an async context manager);
``panelfast run`` drives one. It only wires the parts together and answers
the user. What joins the configured devices and a remote configuration (the
point lookup, what a configuration may name, the stored one put back at
start, the topology) is :class:`~panelfast.device_set.DeviceSet`'s; each
loop lives with its job: :class:`~panelfast.sampling.SamplingLoop`,
:class:`~panelfast.alarms.AlarmWatch` (its alarms and their events' destination
chosen by :class:`~panelfast.alarm_publication.AlarmPublication`, by the
publication method, which it also switches), :class:`~panelfast.publisher.Publication`
(the cloud session kept up, alarm events recorded and published),
:class:`~panelfast.remote_config.Switchover` (a remote configuration's whole
route), :class:`~panelfast.commands.CommandService` (the cloud's commands,
outputs and schedules), all run by one :class:`~panelfast._supervisor.Supervisor`.
A configuration file edited while running is put in force by :meth:`Gateway.reload`
(:mod:`panelfast.reload`: the devices switch at one sampling instant).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from panelfast._supervisor import Supervisor
from panelfast.acquisition import Acquisition, DeviceDiagnostics
from panelfast.alarm_publication import AlarmPublication
from panelfast.alarms import AlarmWatch, watch_interval_s
from panelfast.cloud import (
    CloudSession,
    CloudStatus,
    FirewallRule,
    Identity,
    firewall_rules,
)
from panelfast.commands import CommandService, OutputsStatus, RecentLogs
from panelfast.config import PublicationMethod, Settings
from panelfast.device_set import DeviceSet, point_lookup
from panelfast.exceptions import ConfigError, ConfigIssue
from panelfast.local_settings import change_setting
from panelfast.models.loader import ModelLibrary
from panelfast.outbox import Outbox
from panelfast.publication import (
    PublicationChange,
    PublicationStatus,
    end_cloud_services_unless_cloud,
    ensure_cloud_services_allowed,
)
from panelfast.publisher import Backlog, Publication, Publisher
from panelfast.reload import Reloader, ReloadOutcome
from panelfast.remote_config import (
    ApplyPlan,
    ApplyProgress,
    ConfigStore,
    ProgressCallback,
    RemoteConfig,
    RemoteConfigStatus,
    SectionProgress,
    Switchover,
)
from panelfast.sampling import LiveSet, SamplingLoop, prepare_live_set
from panelfast.topology import PublishedTopologyStore, Topology
from panelfast.topology_publication import TopologyPublication

if TYPE_CHECKING:
    from panelfast.mail import Delivery

__all__ = ["Gateway", "GatewayStatus", "RemoteConfigStatus"]

log = logging.getLogger(__name__)


#: The outputs' part of a status that has none (no IO module, remote control off).
NO_OUTPUTS = OutputsStatus(remote_control=False, control_scheduling=False, outputs=())


@dataclass(frozen=True, slots=True)
class GatewayStatus:
    """Everything the local page and ``panelfast status`` show."""

    cloud: CloudStatus
    remote_config: RemoteConfigStatus
    #: Devices or their configuration changed since the topology was published.
    topology_must_be_published: bool
    topology_version: str | None
    backlog: Backlog
    #: While a remote configuration is being applied: where it stands.
    applying: ApplyProgress | None
    active_alarms: tuple[str, ...]
    #: The publication method, and the alarm emails' queue and last error.
    publication: PublicationStatus
    #: What the configuration in force names that is no longer configured (a
    #: device removed from the configuration file: ``mb-1``; a measurement its
    #: model lost: ``mb-2/VoltageAN``). Sampled as nil, its alarms keep their
    #: state, until the topology is published again and the cloud sends more.
    not_configured: tuple[str, ...] = ()
    #: Outputs remote control, "Control scheduling", each output's state.
    outputs: OutputsStatus = NO_OUTPUTS


class Gateway:
    """One gateway: its devices, its buffer and its cloud connection.

    ``async with Gateway(settings) as gateway:`` starts acquisition, sampling
    under the stored configuration and, if the user had connected, the cloud
    traffic; leaving the block stops it all and keeps every sample taken.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        models: ModelLibrary | None = None,
        session: CloudSession | None = None,
        flush_s: float = 2.0,
        alarm_interval_s: float = 0.25,
        ring_capacity: int = 3600,
        # Called with each step of applying a remote configuration (from a worker thread).
        on_apply_progress: ProgressCallback | None = None,
        # What a diagnostics bundle carries of the daemon's log: its recent lines, its file.
        recent_logs: RecentLogs | None = None,
        log_files: Sequence[Path] = (),
    ) -> None:
        self.settings = settings
        library = models or ModelLibrary(settings.gateway.model_dirs)
        device_models = {d.id: library.get(d.model) for d in settings.devices}
        storage = settings.storage.dir
        storage.mkdir(parents=True, exist_ok=True)
        self.session = session or CloudSession(settings)
        # The one clock of every time the gateway stamps or compares (design: "One clock").
        self.clock = self.session.clock
        self.acquisition = Acquisition(
            ((d, device_models[d.id]) for d in settings.devices), clock=self.clock
        )
        self.topology_store = PublishedTopologyStore(storage / "topology.json")
        self.devices = DeviceSet(
            settings.devices, device_models, self.acquisition, published=self.topology_store
        )
        self.topology_publication = TopologyPublication(
            self.session.hub,
            self.devices,
            lambda: self.settings.identity,
            self.clock,
            self.topology_store,
            on_published=lambda: self.remote.topology_published.set(),
        )
        self._ring_capacity = ring_capacity
        self.outbox = Outbox(
            storage / "outbox.sqlite",
            quota_bytes=settings.storage.quota_mb * 1_000_000,
            clock=self.clock,
        )
        self.remote: Switchover[LiveSet] = Switchover(
            ConfigStore(storage / "remote-config.sqlite", clock=self.clock),
            self.session.hub,
            allowed=self.devices.allowed,
            withdrawn=self.devices.withdrawn,
            prepare=self._prepare,
            hand_over=self._put_in_force,
            on_progress=on_apply_progress,
            before_judging=self.topology_publication.publish_if_unknown,
        )
        live = self.devices.restore(
            self.remote.current, self.outbox.alarm_states, capacity=ring_capacity
        )
        self.sampling = SamplingLoop(
            self.clock,
            self.acquisition.snapshot,
            self.outbox.add_samples,
            live=live,
            on_live=lambda live: self.alarm_publication.remote_live(live.alarms, live.config),
            flush_s=flush_s,
        )
        self.alarms = AlarmWatch(
            self.acquisition.snapshot,
            lambda events, states: self.alarm_publication.record(events, states),
            interval_s=watch_interval_s(
                (d.connection.period_ms for d in settings.devices), alarm_interval_s
            ),
            alarms=live.alarms if live else None,
            config=live.config if live else None,
        )
        self.publisher = Publisher(self.outbox, self.session.hub, self.clock)
        self.publication = Publication(
            self.publisher,
            self.session,
            self.clock,
            period_s=lambda: (
                self.remote.current.publisher_period_s if self.remote.current else None
            ),
            allowed=self.remote.publication_allowed,
            flush=self.sampling.flush,
        )
        # Which alarms are watched and where their events go, by the publication method.
        self.alarm_publication = AlarmPublication(
            settings,
            self.clock,
            self.alarms,
            lookup=self.devices.lookup,
            known=self.devices.measurements(),
            to_outbox=self.publication.record_alarms,
        )
        self.commands = CommandService(
            settings,
            self.session,
            self.acquisition,
            self.devices.configured,
            topology=lambda: self.topology().body,
            status=self._status_document,
            logs=recent_logs,
            log_files=log_files,
            clock=self.clock,
        )
        self._supervisor = Supervisor()
        self._started = False
        self.reloader = Reloader(
            self,
            devices=self.devices,
            library=lambda new: models or ModelLibrary(new.gateway.model_dirs),
            lookup_for=point_lookup,
            ring_capacity=ring_capacity,
            alarm_interval_s=alarm_interval_s,
        )

    # -- lifecycle ----------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        await end_cloud_services_unless_cloud(self.settings.publication.method, self.session)
        self.acquisition.start()
        self._started = True
        await self.alarm_publication.start(self._supervisor)
        run = self._supervisor.start
        run("sampling", self.sampling.run)
        run("alarms", self.alarms.run)
        run("data publication", self.publication.run_data)
        run("alarm publication", self.publication.run_events)
        run("remote configuration", lambda: self.remote.poll(self._connected))
        run("cloud session", self.publication.keep_connected)
        run("outbox compaction", self.publication.run_compaction)
        run("device states", self.acquisition.watch_states)
        run("commands", self.commands.run)
        serial, version = self.settings.identity.serial, self._applied_version()
        log.info(
            "gateway %s started: %d devices, remote configuration %s",
            serial,
            len(self.devices),
            version or "none",
            extra={
                "event": "gateway.started",
                "serial": serial,
                "devices": len(self.devices),
                "config_version": version,
            },
        )

    async def stop(self) -> None:
        self._started = False
        await self._supervisor.stop()
        await self.alarm_publication.close()
        await self.sampling.flush()
        self.acquisition.stop()
        await self.session.aclose()
        self.outbox.close()
        self.remote.store.close()
        self.commands.close()
        log.info(
            "gateway stopped; every sample taken is in the outbox",
            extra={"event": "gateway.stopped", "serial": self.settings.identity.serial},
        )

    def alive(self) -> bool:
        """Every loop of the gateway still runs (for a watchdog)."""
        return self._supervisor.alive()

    @property
    def started(self) -> bool:
        """Between :meth:`start` and :meth:`stop`: its loops take the sampling instants."""
        return self._started

    # -- what the user does ------------------------------------------------

    async def connect(self) -> CloudStatus:
        """Connect (kept across restarts): bootstrap, then cloud traffic resumes.

        Refused with :class:`~panelfast.exceptions.PublicationConflict` unless
        the publication method is cloud (see :mod:`panelfast.publication`).
        """
        ensure_cloud_services_allowed(self.settings.publication.method)
        status = await self.session.connect()
        self.publication.publish_now()
        self.commands.wake()
        return status

    async def disconnect(self) -> CloudStatus:
        """Tell the hub, then stop all cloud traffic; sampling goes on into the outbox."""
        return await self.session.disconnect()

    def topology(self) -> Topology:
        """The topology of the devices as configured now."""
        return self.topology_publication.current()

    async def publish_topology(self) -> str:
        """Publish the topology (inline, or through the upload service when large)."""
        return await self.topology_publication.publish()

    async def receive_config(self, version: str, document: object) -> bool:
        """Validate a remote configuration whole, apply it, and report; True if applied."""
        return await self.remote.receive(version, document)

    async def reload(self, settings: Settings, *, source: str = "(settings)") -> ReloadOutcome:
        """Put a new configuration in force while running (:mod:`panelfast.reload`):
        devices added, removed or changed at one sampling instant, nothing lost.

        What cannot change live (identity, storage folder...) raises
        :class:`~panelfast.exceptions.ReloadRefused` naming the key; the
        running configuration stays.
        """
        return await self.reloader.reload(settings, source=source)

    async def reload_file(self, path: Path) -> ReloadOutcome:
        """:meth:`reload` the configuration file at ``path`` (read again; a file
        with an error raises :class:`~panelfast.exceptions.ConfigError`)."""
        return await self.reloader.reload_file(path)

    def change_setting(self, key: str, value: object) -> Settings:
        """Change a local setting (:data:`~panelfast.local_settings.LOCAL_SETTINGS`).

        What the cloud manages (``sampling.*``, ``alarms.*``, ``publisher.*``...)
        is refused with :class:`~panelfast.exceptions.RemoteConfigReadOnly`; an
        unknown key or a bad value with :class:`~panelfast.exceptions.ConfigError`.
        ``storage.quota_mb`` applies at once; the others when what uses them next
        starts (``panelfast set`` keeps them in the file); ``publication.method`` is
        switched by :meth:`change_publication_method`, which applies it at once.
        """
        if key == "publication.method":
            issue = ConfigIssue(key, "switched by change_publication_method (applied at once)")
            raise ConfigError("(local setting)", [issue])
        self.settings = change_setting(
            self.settings,
            key,
            value,
            applied_version=self._applied_version(),
            cloud_on=self.session.connect_requested,
        )
        # The outbox judges its quota at each write.
        self.outbox.quota_bytes = self.settings.storage.quota_mb * 1_000_000
        return self.settings

    async def change_publication_method(
        self,
        method: object,
        *,
        store: Callable[[PublicationMethod], object] | None = None,
    ) -> PublicationChange:
        """Switch the publication method, at once (see :mod:`panelfast.publication`).

        Checked whole first: the rule (:class:`~panelfast.exceptions.PublicationConflict`),
        the value, and for email the ``[email]`` section, its alarms against the
        devices' models and its password file (:class:`~panelfast.exceptions.ConfigError`).
        Then ``store`` keeps it (the control API writes the configuration file,
        in a worker thread), and the gateway switches the alarms watched and
        their destination, starting or stopping the mailer.
        """
        change, prepared = await self.alarm_publication.prepare_change(
            self.settings,
            method,
            applied_version=self._applied_version(),
            cloud_on=self.session.connect_requested,
            store=store,
        )
        self.settings = prepared.settings
        await self.alarm_publication.switch(prepared)
        log.info(
            change.audit_text(),
            extra={"event": "publication.method", "method": change.method},
        )
        return change

    async def send_test_email(self) -> Delivery:
        """Send the test email to every recipient now; the SMTP server's answer
        (:class:`~panelfast.exceptions.MailError` with it on failure)."""
        return await self.alarm_publication.send_test_email()

    def identification(self) -> Identity:
        return self.session.identity

    def firewall(self) -> list[FirewallRule]:
        """Every host and port the site's firewall must let the gateway reach."""
        return firewall_rules(self.settings, self.session.state)

    def diagnostics(self) -> list[DeviceDiagnostics]:
        return self.acquisition.diagnostics()

    def backlog(self) -> Backlog:
        return self.publisher.backlog()

    def status(self) -> GatewayStatus:
        return GatewayStatus(
            cloud=self.session.status(),
            remote_config=self.remote.status(),
            topology_must_be_published=self.topology_publication.must_be_published(),
            topology_version=self.topology_publication.published_version(),
            backlog=self.backlog(),
            applying=self.remote.applying,
            active_alarms=self.alarms.active(),
            publication=self.publication_status(),
            not_configured=self.devices.not_configured(self.remote.current),
            outputs=self.commands.status(),
        )

    def publication_status(self) -> PublicationStatus:
        return self.alarm_publication.status(cloud_on=self.session.connect_requested)

    def _status_document(self) -> dict[str, Any]:
        """The status as JSON values, for a diagnostics bundle."""
        from pydantic import TypeAdapter

        return dict(TypeAdapter(GatewayStatus).dump_python(self.status(), mode="json"))

    # -- the parts' wiring -------------------------------------------------

    def _put_in_force(self, config: RemoteConfig, live: LiveSet) -> None:
        """A configuration was applied: sampled from the next instant; its publication
        period counts from now, and data held back by a rejected one may go at once."""
        self.sampling.hand_over(live)
        self.publication.publish_now()

    def _prepare(self, plan: ApplyPlan, progress: SectionProgress) -> LiveSet:
        return prepare_live_set(
            plan,
            progress,
            self.devices.lookup,
            previous_alarms=self.alarm_publication.remote_alarms,
            capacity=self._ring_capacity,
        )

    def _connected(self) -> bool:
        return self.session.connect_requested

    def _applied_version(self) -> str | None:
        current = self.remote.current
        return current.version if current else None
