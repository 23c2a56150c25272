""":class:`CommandService`: everything the gateway needs to run the cloud's commands (§9).

The gateway (:class:`panelfast.gateway.Gateway`) constructs one and runs
:meth:`CommandService.run` under its supervisor, beside its other loops::

    commands = CommandService(settings, session, acquisition, devices,
                              topology=lambda: gateway.topology().body)
    supervisor.start("commands", commands.run)
    ...
    await session.connect(); commands.wake()      # Connect resumes the long poll at once
    await supervisor.stop(); commands.close()

``run`` settles commands a crash interrupted, then runs: the commands long
poll and its results (while connected), the output state reports (while
connected), the schedules (always: they do not need the cloud), and the
watch of the outputs for changes made on the devices. The control API and the
CLI use the rest: remote control, history, schedules, outputs, local switching.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from panelfast.acquisition import Acquisition
from panelfast.clock import Clock
from panelfast.cloud import CloudSession
from panelfast.commands._bundle import (
    CONTENT_TYPE,
    BundleParts,
    RecentLogs,
    build_bundle,
    settings_secrets,
)
from panelfast.commands._cloud_loops import CommandLoop, StateReporter
from panelfast.commands._executor import Executor
from panelfast.commands._model import Action, OutputRef, Schedule
from panelfast.commands._outputs import Devices, OutputControl, OutputInfo, SwitchResult
from panelfast.commands._remote_control import (
    RemoteControlStatus,
    disable_remote_control,
    enable_remote_control,
    remote_control_status,
)
from panelfast.commands._scheduler import Scheduler, StoredSchedule, stored_schedules
from panelfast.commands._store import CommandStore, HistoryEntry
from panelfast.config import Settings
from panelfast.exceptions import PanelfastError

__all__ = ["STORE_FILE", "CommandService", "OutputsStatus", "StoredSchedule"]

log = logging.getLogger(__name__)

#: The command store, in the storage folder.
STORE_FILE = "commands.sqlite"


@dataclass(frozen=True, slots=True)
class OutputsStatus:
    """What the page header and the outputs page show (part of the gateway's status)."""

    #: Outputs remote control: whether the cloud and its schedules may switch outputs.
    remote_control: bool
    #: "Control scheduling": a schedule is stored and may act (remote control enabled).
    control_scheduling: bool
    outputs: tuple[OutputInfo, ...]
    #: The newest command history entry's number: it changes with every command,
    #: switch or refusal recorded, so that pages showing the history follow it.
    history_seq: int = 0


class CommandService:
    """See the module docstring."""

    def __init__(
        self,
        settings: Settings,
        session: CloudSession,
        acquisition: Acquisition,
        devices: Devices,
        *,
        topology: Callable[[], bytes] | None = None,
        status: Callable[[], Mapping[str, Any]] | None = None,
        logs: RecentLogs | None = None,
        log_files: Sequence[Path] = (),
        clock: Clock | None = None,
        store_path: Path | None = None,
        command_wait_s: int = 30,
        schedule_max_sleep_s: float = 30.0,
        watch_interval_s: float = 1.0,
    ) -> None:
        self.settings = settings
        self.session = session
        self.clock = clock or session.clock
        self.store = CommandStore(store_path or settings.storage.dir / STORE_FILE)
        self._acquisition = acquisition
        self._topology = topology
        self._status = status
        self._own_logs = logs is None
        self.logs = logs or RecentLogs()
        if self._own_logs:  # from now on: the bundle shows how the gateway started
            logging.getLogger("panelfast").addHandler(self.logs)
        self._log_files = tuple(log_files)
        self._reporter = StateReporter(session.hub, self.store, self._connected)
        self.outputs_control = OutputControl(
            acquisition,
            devices,
            self.store,
            self.clock,
            on_change=self._reporter.wake,
            watch_interval_s=watch_interval_s,
        )
        self.scheduler = Scheduler(
            self.store,
            self.outputs_control,
            self.clock,
            self._enabled,
            max_sleep_s=schedule_max_sleep_s,
        )
        executor = Executor(
            self.store,
            self.outputs_control,
            self.scheduler,
            self.clock,
            self._enabled,
            self.upload_logs,
        )
        self._loop = CommandLoop(
            session.hub, self.store, executor, self.clock, self._connected, wait_s=command_wait_s
        )

    def _connected(self) -> bool:
        return self.session.connect_requested

    def _enabled(self) -> bool:
        # Read from the store each time: a change made by another process counts at once.
        return remote_control_status(self.store).enabled

    # -- running

    async def run(self) -> None:
        """Run until cancelled (see the module docstring)."""
        await asyncio.to_thread(self._loop.settle_interrupted)
        async with asyncio.TaskGroup() as group:
            group.create_task(self._loop.run(), name="commands")
            group.create_task(self._reporter.run(), name="output states")
            group.create_task(self.scheduler.run(), name="schedules")
            group.create_task(self.outputs_control.watch(), name="outputs watch")

    def wake(self) -> None:
        """After Connect: poll and report at once rather than at the next check."""
        self._loop.wake()
        self._reporter.wake()

    def close(self) -> None:
        if self._own_logs:
            logging.getLogger("panelfast").removeHandler(self.logs)
        self.store.close()

    # -- what the control API and the CLI use

    # Blocking (SQLite): the control API calls these in a worker thread.

    def remote_control(self) -> RemoteControlStatus:
        return remote_control_status(self.store)

    def enable_remote_control(
        self, *, confirmed: bool, who: str | None = None
    ) -> RemoteControlStatus:
        """Enable it; refused (RemoteControlNotConfirmed) unless the user confirmed the risk."""
        status = enable_remote_control(self.store, self.clock, confirmed=confirmed, who=who)
        self.scheduler.wake()
        return status

    def disable_remote_control(self, *, who: str | None = None) -> RemoteControlStatus:
        status = disable_remote_control(self.store, self.clock, who=who)
        self.scheduler.wake()
        return status

    def scheduling_active(self) -> bool:
        """True while a schedule may act: the header's "Control scheduling"."""
        return self.remote_control().scheduling_active

    def status(self) -> OutputsStatus:
        remote = self.remote_control()
        return OutputsStatus(
            remote.enabled,
            remote.scheduling_active,
            tuple(self.outputs()),
            self.store.last_history_seq(),
        )

    def schedules(self) -> list[Schedule]:
        return [schedule for schedule, _ in self.scheduler.schedules()]

    def stored_schedules(self) -> list[StoredSchedule]:
        """The schedules with their next entry, and whether they act now."""
        return stored_schedules(self.store, self.clock)

    def history(self, limit: int = 100, before: int | None = None) -> list[HistoryEntry]:
        return self.store.history(limit, before)

    def outputs(self) -> list[OutputInfo]:
        return self.outputs_control.outputs()

    # -- async

    async def switch(self, output: str, action: Action, *, who: str | None = None) -> SwitchResult:
        """Switch an output from the local page or API (source ``local``), audited.

        Outputs remote control is not asked: it guards what the cloud and its
        schedules do with nobody at the site; a local user acts through the
        gateway's own door (the control socket, the web login), and is named
        in the history (``who``)."""
        return await self.outputs_control.switch_locally(OutputRef.parse(output), action, who)

    # -- log upload

    def bundle_parts(self) -> BundleParts:
        """What a diagnostics bundle holds now."""
        token = self.session.state.token
        secrets = settings_secrets(self.settings)
        if token is not None:
            secrets.append(token.get_secret_value())
        status: dict[str, Any] = {"cloud": dict(self.session.status().rows())}
        if self._status is not None:
            try:
                status.update(self._status())
            except Exception:  # the bundle is a diagnosis aid: go on without it
                log.exception("the gateway status could not be added to the bundle")
        topology = None
        if self._topology is not None:
            try:
                topology = self._topology()
            except PanelfastError as exc:  # why it cannot be built is worth sending too
                status["topology_error"] = str(exc)
        remote = self.remote_control()
        return BundleParts(
            settings=self.settings,
            topology=topology,
            devices=[_diagnostics_json(d) for d in self._acquisition.diagnostics()],
            status=status,
            commands={
                "remote_control": {
                    "enabled": remote.enabled,
                    "changed_at_ms": remote.changed_at_ms,
                },
                "schedules": [s.model_dump(mode="json") for s in self.schedules()],
                "history": [e.to_json() for e in self.history(200)],
            },
            log_lines=self.logs.lines(),
            log_files=self._log_files,
            secrets=secrets,
        )

    async def upload_logs(self) -> str:
        """Build the bundle and send it through the upload service; the upload id."""
        parts = await asyncio.to_thread(self.bundle_parts)
        data = await asyncio.to_thread(build_bundle, parts, self.clock.now())
        result = await self.session.hub.upload("logs", data, CONTENT_TYPE)
        log.info("diagnostics bundle uploaded (%d bytes), upload %s", len(data), result.upload_id)
        return result.upload_id


def _diagnostics_json(value: Any) -> Any:
    """A device's diagnostics (native objects with properties) as plain JSON values."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list | tuple):
        return [_diagnostics_json(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _diagnostics_json(v) for k, v in dataclasses.asdict(value).items()}
    return {
        name: _diagnostics_json(getattr(value, name))
        for name in dir(value)
        if not name.startswith("_") and not callable(getattr(value, name))
    }
