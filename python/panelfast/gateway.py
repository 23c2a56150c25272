"""The gateway: acquisition → sampling and alarms → outbox → cloud, as one async object.

```
 devices ──Modbus──▶ Acquisition (Rust engine, own threads)
                         │ snapshot (numpy arrays)
          every second   ▼                      every 250 ms
                      Sampler ──▶ rings      AlarmSet ──▶ events
                         │ every flush_s            │
                         ▼                          ▼
                      Outbox (SQLite) ◀─────────────┘
                         │ every publisher period, and at once after an outage
                         ▼
                      Publisher ──HTTPS──▶ hub        ◀── config long poll ── remote configuration
```

Everything the cloud imposes arrives as a remote configuration, validated
whole and applied at one sampling instant: from that instant the new set is
sampled, the new alarms watched and the new publication period kept. The
applied configuration is stored, so a gateway restarted without its cloud
samples as before.

:class:`Gateway` is the typed API services use (an async context manager);
``panelfast run`` drives one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, Self

from panelfast._durable import write_atomically
from panelfast._native import AlarmEvent, AlarmSet
from panelfast.acquisition import Acquisition, DeviceDiagnostics
from panelfast.cloud import CloudSession, CloudStatus, ConnectionStatus, HubClient, Identity
from panelfast.config import DeviceSettings, Settings
from panelfast.exceptions import (
    CloudError,
    CloudProtocolError,
    ConfigPathError,
    NotConnected,
    PanelfastError,
    RemoteConfigRejected,
    TopologyError,
)
from panelfast.local_settings import change_setting
from panelfast.models import DeviceModel
from panelfast.models.loader import ModelLibrary
from panelfast.outbox import Outbox
from panelfast.publisher import Backlog, Publisher
from panelfast.remote_config import (
    AppliedConfig,
    ApplyPlan,
    ApplyProgress,
    ConfigStore,
    ProgressCallback,
    RemoteConfig,
    validate,
)
from panelfast.sampling import Sampler, SamplingPlan, alarm_set
from panelfast.topology import PublishedTopologyStore, Topology, build_topology

__all__ = ["Gateway", "GatewayStatus", "RemoteConfigStatus", "publish_topology"]

log = logging.getLogger(__name__)

#: A publication period before any remote configuration (none is sampled then).
DEFAULT_PUBLISHER_PERIOD_S = 600
#: Longest wait of a configuration long poll (§6 allows 0..30).
CONFIG_WAIT_S = 30
#: How late the sampling loop may be and still take every instant it missed
#: (with the readings of now); later than that it resumes at the next instant.
MAX_CATCH_UP_MS = 5000
_INTEGER_TYPES = {"INT16", "UINT16", "INT32", "UINT32", "INT64", "UINT64", "BITMAP"}


@dataclass(frozen=True, slots=True)
class RemoteConfigStatus:
    """The remote configuration as the user sees it (read-only)."""

    #: The version in force, if any.
    applied_version: str | None
    #: The last version received, applied or rejected.
    received_version: str | None
    #: Cloud service icon: True green (valid), False orange (invalid), None nothing yet.
    valid: bool | None
    #: Why the last one was rejected: (path, message).
    errors: tuple[tuple[str, str], ...]
    measurements: int
    alarms: int
    publisher_period_s: int | None


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
    log.info("topology published (%d bytes), version %s", topology.size, version)
    return version


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
    ) -> None:
        self.settings = settings
        self._on_apply_progress = on_apply_progress
        library = models or ModelLibrary(settings.gateway.model_dirs)
        self._models: dict[str, DeviceModel] = {
            d.id: library.get(d.model) for d in settings.devices
        }
        self._devices: dict[str, DeviceSettings] = {d.id: d for d in settings.devices}
        storage = settings.storage.dir
        storage.mkdir(parents=True, exist_ok=True)
        self.session = session or CloudSession(settings)
        self.clock = self.session.clock
        self.acquisition = Acquisition((d, self._models[d.id]) for d in settings.devices)
        self.outbox = Outbox(
            storage / "outbox.sqlite", quota_bytes=settings.storage.quota_mb * 1_000_000
        )
        self.config_store = ConfigStore(storage / "remote-config.sqlite")
        self.applied = AppliedConfig(self.config_store)
        self.topology_store = PublishedTopologyStore(storage / "topology.json")
        self._report_due = storage / "config-report.due"
        self.publisher = Publisher(self.outbox, self.session.hub)
        self._flush_s = flush_s
        # Every reading must be evaluated once: look at least twice per poll
        # period of the fastest device (each reading is evaluated only once).
        fastest_ms = min((d.connection.period_ms for d in settings.devices), default=1000)
        self._alarm_interval_s = min(alarm_interval_s, fastest_ms / 2000)
        self._ring_capacity = ring_capacity
        self._sampler: Sampler | None = None
        self._alarms: AlarmSet | None = None
        # The configuration the live alarm set was built from: until the next
        # sampling instant it is not yet the applied one (status names alarms by it).
        self._alarms_config: RemoteConfig | None = None
        # Made by the apply preparers, made live by the sampling loop at the next instant.
        self._prepared: tuple[Sampler | None, AlarmSet | None] = (None, None)
        self._switch: tuple[RemoteConfig, Sampler, AlarmSet] | None = None
        self._applying: ApplyProgress | None = None
        self._events_ready = asyncio.Event()
        self._publish_now = asyncio.Event()
        self._topology_published = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.applied.add_preparer("measurements", self._prepare_sampling)
        self.applied.add_preparer("alarms", self._prepare_alarms)
        current = self.applied.current
        if current is not None:
            try:
                self._sampler = Sampler(self._plan(current), capacity=ring_capacity)
                self._alarms = alarm_set(current, self._lookup)
                self._alarms_config = current
            except PanelfastError as exc:
                log.error(
                    "the stored remote configuration %s no longer fits the devices: %s",
                    current.version,
                    exc,
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
        self.acquisition.start()
        loops: list[Callable[[], Awaitable[None]]] = [
            self._sampling_loop,
            self._alarm_loop,
            self._publish_loop,
            self._events_loop,
            self._config_loop,
            self._session_loop,
            self._compaction_loop,
        ]
        self._tasks = [asyncio.create_task(self._guard(loop), name=loop.__name__) for loop in loops]
        version = self.applied.current.version if self.applied.current else "none"
        log.info(
            "gateway %s started: %d devices, remote configuration %s",
            self.settings.identity.serial,
            len(self._devices),
            version,
        )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self._flush()
        self.acquisition.stop()
        await self.session.aclose()
        self.outbox.close()
        self.config_store.close()
        log.info("gateway stopped; every sample taken is in the outbox")

    async def _guard(self, loop: Callable[[], Awaitable[None]]) -> None:
        """Keep a loop alive: a bug in one must not stop sampling in another."""
        while True:
            try:
                await loop()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s failed; restarting it in 1 s", loop.__name__)
                await asyncio.sleep(1)

    # -- what the user does ------------------------------------------------

    async def connect(self) -> CloudStatus:
        """Connect (kept across restarts): bootstrap, then cloud traffic resumes."""
        status = await self.session.connect()
        self._publish_now.set()
        return status

    async def disconnect(self) -> CloudStatus:
        """Tell the hub, then stop all cloud traffic; sampling goes on into the outbox."""
        return await self.session.disconnect()

    def topology(self) -> Topology:
        """The topology of the devices as configured now."""
        return build_topology(
            self.settings.identity,
            list(self._devices.values()),
            {d.model: self._models[d.id] for d in self._devices.values()},
        )

    async def publish_topology(self) -> str:
        """Publish the topology (inline, or through the upload service when large)."""
        version = await publish_topology(self.session.hub, self.topology(), self.topology_store)
        self._topology_published.set()
        return version

    def change_setting(self, key: str, value: object) -> Settings:
        """Change a local setting (:data:`~panelfast.local_settings.LOCAL_SETTINGS`).

        What the cloud manages (``sampling.*``, ``alarms.*``, ``publisher.*``...)
        is refused with :class:`~panelfast.exceptions.RemoteConfigReadOnly`; an
        unknown key or a bad value with :class:`~panelfast.exceptions.ConfigError`.
        ``cloud.alarm_publication`` applies at once; the others when what uses
        them next starts (``panelfast set`` keeps them in the file).
        """
        current = self.applied.current
        self.settings = change_setting(
            self.settings, key, value, applied_version=current.version if current else None
        )
        return self.settings

    def identification(self) -> Identity:
        return self.session.identity

    def diagnostics(self) -> list[DeviceDiagnostics]:
        return self.acquisition.diagnostics()

    def backlog(self) -> Backlog:
        return self.publisher.backlog()

    def status(self) -> GatewayStatus:
        current = self.applied.current
        received = self.config_store.last_received()
        published = self.topology_store.load()
        alarms, alarms_config = self._alarms, self._alarms_config
        active: tuple[str, ...] = ()
        if alarms is not None and alarms_config is not None:
            active = tuple(
                a.id for a, on in zip(alarms_config.alarms, alarms.active(), strict=True) if on
            )
        return GatewayStatus(
            cloud=self.session.status(),
            remote_config=RemoteConfigStatus(
                applied_version=current.version if current else None,
                received_version=received.version if received else None,
                valid=received.valid if received else None,
                errors=tuple((e.path, e.message) for e in received.errors) if received else (),
                measurements=len(current.measurements) if current else 0,
                alarms=len(current.alarms) if current else 0,
                publisher_period_s=current.publisher_period_s if current else None,
            ),
            topology_must_be_published=self.topology_store.needs_publish(self.topology()),
            topology_version=published.topology_version if published else None,
            backlog=self.backlog(),
            applying=self._applying,
            active_alarms=active,
        )

    # -- remote configuration ------------------------------------------------

    def _lookup(self, device_id: str, measurement_id: str) -> tuple[int, bool, int]:
        """A measurement's snapshot index, exactness and freshness limit."""
        model = self._models[device_id]
        definition = next((m for m in model.measurements if m.id == measurement_id), None)
        if definition is None:
            raise TopologyError([f"device {device_id!r} has no measurement {measurement_id!r}"])
        exact = definition.type == "DATETIME" or (
            definition.type in _INTEGER_TYPES and definition.scale == 1 and definition.offset == 0
        )
        connection = self._devices[device_id].connection
        # A reading older than two poll periods plus a timeout is stale: the
        # device missed at least one whole cycle.
        max_age = 2 * connection.period_ms + connection.timeout_ms
        return self.acquisition.index(device_id, measurement_id), exact, max_age

    def _plan(self, config: RemoteConfig) -> SamplingPlan:
        return SamplingPlan.build(config, self._lookup)

    def _prepare_sampling(self, plan: ApplyPlan, tick: Callable[[int], None]) -> None:
        sampler = Sampler(self._plan(plan.new), capacity=self._ring_capacity)
        tick(plan.changes("measurements"))
        self._prepared = (sampler, self._prepared[1])

    def _prepare_alarms(self, plan: ApplyPlan, tick: Callable[[int], None]) -> None:
        spec = [
            (
                a.id,
                self._lookup(a.device, a.measurement)[0],
                a.condition,
                a.threshold,
                a.hysteresis,
                a.delay_s * 1000,
            )
            for a in plan.new.alarms
        ]
        alarms = self._alarms.carry_over(spec) if self._alarms is not None else AlarmSet(spec)
        tick(plan.changes("alarms"))
        self._prepared = (self._prepared[0], alarms)

    def _measurement_pairs(self) -> set[tuple[str, str]]:
        """What a remote configuration may name: published, and still configured."""
        published = self.topology_store.load()
        if published is None:
            return set()
        configured = {(d, m.id) for d, model in self._models.items() for m in model.measurements}
        return set(published.measurements) & configured

    async def receive_config(self, version: str, document: object) -> bool:
        """Validate a remote configuration whole, apply it, and report; True if applied."""
        # Marked before anything is recorded: a crash from here on leaves
        # either this version unrecorded (the cloud serves it again) or
        # recorded with its report still due (sent after the restart).
        write_atomically(self._report_due, version.encode())
        try:
            config = validate(document, self._measurement_pairs())
            await self._apply(config)
        except RemoteConfigRejected as rejection:
            return await self._rejected(version, rejection)
        except PanelfastError as exc:
            # Valid on paper, yet it cannot be put in force here (e.g. a point
            # the devices do not have): refused whole, like an invalid one.
            unusable = RemoteConfigRejected([ConfigPathError("(document)", str(exc))], version)
            return await self._rejected(version, unusable)
        log.info(
            "remote configuration %s applied: %d measurements (%s samples/min), "
            "%d alarms, publication every %d s",
            config.version,
            len(config.measurements),
            config.samples_per_minute,
            len(config.alarms),
            config.publisher_period_s,
        )
        await self._report(version, config)
        self._publish_now.set()  # data held back by a rejected configuration may go now
        return True

    async def _apply(self, config: RemoteConfig) -> None:
        """Prepare every section, persist, then hand the new set to the sampling loop."""

        def progress(p: ApplyProgress) -> None:
            self._applying = p
            if self._on_apply_progress is not None:
                self._on_apply_progress(p)

        try:
            # In a worker thread: preparing thousands of measurements must not hold
            # up sampling instants, and status().applying shows progress meanwhile.
            await asyncio.to_thread(self.applied.apply, config, progress)
            sampler, alarms = self._prepared
            if sampler is not None and alarms is not None:
                self._switch = (config, sampler, alarms)
        finally:
            self._applying = None
            self._prepared = (None, None)

    async def _rejected(self, version: str, rejection: RemoteConfigRejected) -> bool:
        self.applied.reject(rejection, version)
        shown = "; ".join(f"{e.path}: {e.message}" for e in rejection.errors[:5])
        log.error("remote configuration %s rejected: %s", version, shown)
        await self._report(version, rejection)
        return False

    async def _report(self, version: str, outcome: RemoteConfig | RemoteConfigRejected) -> None:
        """Report the outcome (§6); the version is the one the hub served."""
        if isinstance(outcome, RemoteConfig):
            errors: list[tuple[str, str]] = []
        else:
            errors = [(e.path, e.message) for e in outcome.errors]
        await self._send_report(version, "applied" if not errors else "rejected", errors)

    async def _send_report(
        self, version: str, status: Literal["applied", "rejected"], errors: list[tuple[str, str]]
    ) -> bool:
        try:
            await self.session.hub.report_config(version, status, errors)
        except CloudError as exc:
            log.warning("configuration report not delivered (sent again later): %s", exc)
            return False
        self._report_due.unlink(missing_ok=True)
        return True

    async def _report_if_due(self) -> bool:
        """Send the report of the last configuration received if it never went
        (a failure, or a crash between applying and reporting); False if still due."""
        try:
            due = self._report_due.read_text(encoding="utf-8")
        except FileNotFoundError:
            return True
        received = self.config_store.last_received()
        if received is None or received.version != due:
            self._report_due.unlink(missing_ok=True)  # never recorded: it will be served again
            return True
        errors = [(e.path, e.message) for e in received.errors]
        return await self._send_report(received.version, received.status, errors)

    # -- the loops -----------------------------------------------------------

    def _now_ms(self) -> int:
        return int(self.clock.now() * 1000)

    async def _sleep_until(self, t_ms: int) -> None:
        await asyncio.sleep(max(0.0, (t_ms - self._now_ms()) / 1000))

    async def _sampling_loop(self) -> None:
        last_flush = self._now_ms()
        t = last_flush // 1000 * 1000
        while True:
            # The instant after the last one: a loop woken a hair early must not
            # take an instant twice, nor a late one skip any; only after a long
            # hold-up (a suspended machine, a clock step) it resumes at the next.
            t += 1000
            if self._now_ms() - t > MAX_CATCH_UP_MS:
                t = (self._now_ms() // 1000 + 1) * 1000
            await self._sleep_until(t)
            if self._switch is not None:
                await self._make_live(t)
            sampler = self._sampler
            if sampler is not None:
                snap = self.acquisition.snapshot()
                sampler.sample(t, snap.values, snap.integers, snap.valid, snap.read_at_ms)
            if t - last_flush >= self._flush_s * 1000:
                await self._flush()
                last_flush = t

    async def _make_live(self, t_ms: int) -> None:
        """Switch to the applied configuration at instant ``t_ms``: everything
        sampled before it stays under the old version, from it on the new."""
        assert self._switch is not None
        config, sampler, alarms = self._switch
        self._switch = None
        await self._flush()
        self._sampler, self._alarms, self._alarms_config = sampler, alarms, config
        log.info("sampling under remote configuration %s from %d", config.version, t_ms)

    async def _flush(self) -> None:
        """Move what the rings hold into the outbox (durable from then on)."""
        sampler = self._sampler
        if sampler is None:
            return
        series = sampler.drain()
        if series.samples:
            await asyncio.to_thread(self.outbox.add_samples, series, sampler.plan.version)

    async def _alarm_loop(self) -> None:
        while True:
            await asyncio.sleep(self._alarm_interval_s)
            alarms = self._alarms
            if alarms is None or len(alarms) == 0:
                continue
            snap = self.acquisition.snapshot()
            events: list[AlarmEvent] = alarms.evaluate(snap.values, snap.valid, snap.read_at_ms)
            if events:
                if self.settings.cloud.alarm_publication == "cloud":
                    await asyncio.to_thread(self.outbox.add_events, events)
                    self._events_ready.set()
                for e in events:
                    log.info(
                        "alarm %s %s at %d (value %g)",
                        e.alarm,
                        "active" if e.active else "inactive",
                        e.ts_ms,
                        e.value,
                    )

    def _connected(self) -> bool:
        return self.session.connect_requested

    def _publication_allowed(self) -> bool:
        """A rejected remote configuration stops data publication (§6)."""
        received = self.config_store.last_received()
        return received is None or received.valid

    async def _publish_loop(self) -> None:
        failures = 0
        while True:
            current = self.applied.current
            period_ms = (
                current.publisher_period_s if current else DEFAULT_PUBLISHER_PERIOD_S
            ) * 1000
            due = (self._now_ms() // period_ms + 1) * period_ms
            if failures:  # after a failure, retry sooner than a whole period
                due = min(due, self._now_ms() + int(1000 * min(60.0, 2.0 ** min(failures, 6))))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._publish_now.wait(), (due - self._now_ms()) / 1000)
            self._publish_now.clear()
            await self._flush()
            if not self._connected() or not self._publication_allowed():
                continue
            try:
                # Bootstrapped first, so the cloud's last acknowledged seq is
                # known: a gateway that lost its disk continues after it (§3).
                await self.session.hub_access()
                await asyncio.to_thread(self.outbox.resume_from, self.session.state.data_seq or 0)
                await self.publisher.publish_data()
                failures = 0
            except NotConnected:
                continue
            except CloudError as exc:
                failures += 1
                log.warning("data publication failed (%s); everything is kept", exc)

    async def _events_loop(self) -> None:
        failures = 0
        while True:
            timeout = min(60.0, 2.0**failures) if failures else 30.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._events_ready.wait(), timeout)
            self._events_ready.clear()
            if not self._connected():
                continue
            try:
                await self.publisher.publish_events()
                failures = 0
            except NotConnected:
                continue
            except CloudError as exc:
                failures = min(failures + 1, 6)
                log.warning("alarm publication failed (%s); events are kept", exc)

    async def _config_loop(self) -> None:
        failures = 0
        while True:
            if not self._connected():
                await asyncio.sleep(1)
                continue
            if not await self._report_if_due():
                failures = min(failures + 1, 6)
                await asyncio.sleep(min(60.0, 2.0**failures))
                continue
            received = self.config_store.last_received()
            try:
                answer = await self.session.hub.get_config(
                    have_version=received.version if received else None, wait_s=CONFIG_WAIT_S
                )
                failures = 0
            except NotConnected:
                await asyncio.sleep(1)
                continue
            except CloudError as exc:
                failures = min(failures + 1, 6)
                log.info("remote configuration poll failed: %s", exc)
                await asyncio.sleep(min(60.0, 2.0**failures))
                continue
            if answer.status == "new" and answer.version is not None:
                await self.receive_config(answer.version, answer.document)
            elif answer.status == "none":
                # No configuration yet: wait for a topology publication or the long poll.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._topology_published.wait(), 1.0)
                self._topology_published.clear()

    async def _session_loop(self) -> None:
        """Keep the connection up while the user wants it; once it is (back) up,
        publish at once: the backlog of an outage does not wait for a period."""
        runner: asyncio.Task[None] | None = None
        was = self.session.status().connection
        try:
            while True:
                if self.session.connect_requested and (runner is None or runner.done()):
                    runner = asyncio.create_task(self.session.run(), name="cloud session")
                now = self.session.status().connection
                if now is ConnectionStatus.CONNECTED and was is not ConnectionStatus.CONNECTED:
                    self._publish_now.set()
                    self._events_ready.set()
                was = now
                await asyncio.sleep(1)
        finally:
            if runner is not None:
                runner.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await runner

    async def _compaction_loop(self) -> None:
        """While the cloud is unreachable, gather small chunks into full batches."""
        while True:
            await asyncio.sleep(60)
            if self.session.status().connection is not ConnectionStatus.CONNECTED:
                merged = await asyncio.to_thread(self.outbox.compact)
                if merged:
                    log.info("outbox: %d chunks compacted while offline", merged)
