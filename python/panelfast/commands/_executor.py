"""One cloud command, executed: what it did, and the result to post (§9).

The checks, in order, each ending the command with ``rejected``:

1. an ``output`` or ``schedule`` command while outputs remote control is
   disabled: ``remote_control_disabled`` (nothing else is looked at, nothing
   written);
2. a command that is not a valid §9 command: ``invalid_command: <field>: ...``
   or ``unknown_command_type: ...``;
3. ``expires_at`` passed by the gateway's synchronised clock: ``expired``
   (an output command is checked again just before its write);
4. an output this gateway does not have: ``unknown_output: ...``; a
   schedule to delete that is not stored: ``unknown_schedule: ...``.

Then ``output`` switches and reads back (``done``, or ``failed`` with why);
``schedule`` stores (or replaces) the schedule; ``schedule_delete`` removes
it (allowed while remote control is disabled: it only takes control away);
``upload_logs`` builds the diagnostics bundle and sends it through the
upload service, ``done`` once ``complete`` succeeded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from panelfast.clock import Clock
from panelfast.commands._model import (
    CONTROL_TYPES,
    InvalidCommand,
    OutputCommand,
    ScheduleCommand,
    ScheduleDeleteCommand,
    UploadLogsCommand,
    parse_command,
)
from panelfast.commands._outputs import OutputControl
from panelfast.commands._scheduler import Scheduler
from panelfast.commands._store import CommandStore
from panelfast.exceptions import CloudError

__all__ = ["Executor", "Outcome"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Outcome:
    status: Literal["done", "rejected", "failed"]
    reason: str | None = None
    target: str | None = None
    action: str | None = None
    readback: str | None = None


def _target(body: dict[str, Any]) -> tuple[str | None, str | None]:
    """What a command is about and what it asks, as far as its body says (for the audit)."""
    kind = body.get("type")
    if kind == "output":
        return str(body.get("output")), str(body.get("action"))
    if kind == "schedule":
        schedule = body.get("schedule")
        if isinstance(schedule, dict):
            return f"{schedule.get('output')} (schedule {schedule.get('id')})", "store"
        return None, "store"
    if kind == "schedule_delete":
        return f"schedule {body.get('schedule_id')}", "delete"
    return None, None


class Executor:
    """Executes one command; see the module docstring for the rules."""

    def __init__(
        self,
        store: CommandStore,
        outputs: OutputControl,
        scheduler: Scheduler,
        clock: Clock,
        enabled: Callable[[], bool],
        upload_logs: Callable[[], Awaitable[object]],
    ) -> None:
        self._store = store
        self._outputs = outputs
        self._scheduler = scheduler
        self._clock = clock
        self._enabled = enabled
        self._upload_logs = upload_logs

    async def execute(self, body: dict[str, Any]) -> Outcome:
        target, action = _target(body)
        if body.get("type") in CONTROL_TYPES and not await asyncio.to_thread(self._enabled):
            return Outcome("rejected", "remote_control_disabled", target, action)
        try:
            command = parse_command(body)
        except InvalidCommand as exc:
            return Outcome("rejected", exc.reason, target, action)
        if command.expires_at is not None and self._clock.now() >= command.expires_at:
            return Outcome("rejected", "expired", target, action)
        if isinstance(command, OutputCommand):
            result = await self._outputs.switch(
                command.ref, command.action, source="cloud", expires_at=command.expires_at
            )
            return Outcome(result.status, result.reason, target, action, result.readback)
        if isinstance(command, ScheduleCommand):
            schedule = command.schedule
            if not self._outputs.has(schedule.ref):
                reason = f"unknown_output: no output {schedule.output} on this gateway"
                return Outcome("rejected", reason, target, action)
            await asyncio.to_thread(
                self._store.put_schedule,
                schedule.id,
                schedule.model_dump(mode="json"),
                command.id,
                self._clock.now(),
            )
            self._scheduler.wake()
            return Outcome("done", None, target, action)
        if isinstance(command, ScheduleDeleteCommand):
            deleted = await asyncio.to_thread(self._store.delete_schedule, command.schedule_id)
            self._scheduler.wake()
            if not deleted:
                reason = f"unknown_schedule: no schedule {command.schedule_id} is stored"
                return Outcome("rejected", reason, target, action)
            return Outcome("done", None, target, action)
        assert isinstance(command, UploadLogsCommand)
        try:
            await self._upload_logs()
        except CloudError as exc:
            return Outcome("failed", f"upload_failed: {exc}", "logs", "upload")
        return Outcome("done", None, "logs", "upload")
