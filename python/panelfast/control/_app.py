"""The control API: the one door into the running gateway.

Every route reads or changes the :class:`~panelfast.gateway.Gateway` the
daemon runs. Changes are serialised (two Connects at once make one
attempt), take effect at once, persist where the gateway keeps that state,
are recorded in the audit log and announced on the event stream. Answers
are JSON (the types of the Python API, as in ``openapi.json``), or text
when asked for ``text/plain`` (what the CLI prints).

:class:`ControlApp` is the wiring: the gateway, the audit log, the event
stream, the one lock changes take, and the route list. The routes live by
family in their own modules (:mod:`._status`, :mod:`._devices`,
:mod:`._cloud`, :mod:`._settings`, :mod:`._publication`, :mod:`._outputs`),
each a function of the app that returns its routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from panelfast.control._answers import caller, encode
from panelfast.control._audit import AuditEntry, AuditLog
from panelfast.control._cloud import cloud_routes
from panelfast.control._devices import device_routes
from panelfast.control._events import EventStream
from panelfast.control._outputs import output_routes
from panelfast.control._publication import publication_routes
from panelfast.control._schema import API_TYPES, DeviceStatus
from panelfast.control._settings import settings_routes
from panelfast.control._status import status_routes
from panelfast.exceptions import PanelfastError
from panelfast.gateway import Gateway, GatewayStatus
from panelfast.reload import ReloadOutcome
from panelfast.remote_config import ApplyProgress

__all__ = ["ControlApp"]

T = TypeVar("T")


class ControlApp:
    """The routes over one gateway; :attr:`app` is the ASGI application."""

    def __init__(self, gateway: Gateway, *, config_path: Path, audit: AuditLog) -> None:
        """Made on the daemon's event loop (announcements from other threads go to it)."""
        self.gateway = gateway
        self.config_path = config_path
        self.audit = audit
        self.events = EventStream(self.topics, self._audit_after)
        self._loop = asyncio.get_running_loop()
        self._changes = asyncio.Lock()
        self.routes: list[Route] = [
            *status_routes(self),
            *cloud_routes(self),
            *settings_routes(self),
            *device_routes(self),
            *publication_routes(self),
            *output_routes(self),
        ]
        self.app = Starlette(routes=self.routes)

    # -- changing: what every family's changes go through

    async def change(
        self, request: Request, action: str, detail: dict[str, Any], do: Callable[[], Awaitable[T]]
    ) -> T:
        """Run one change: serialised with the others, audited, announced."""
        return await self.change_by(caller(request), action, detail, do)

    async def change_by(
        self, who: str, action: str, detail: dict[str, Any], do: Callable[[], Awaitable[T]]
    ) -> T:
        """:meth:`change` for a change nobody requested over HTTP (``who``: the signal)."""
        async with self._changes:
            outcome = "ok"
            try:
                return await do()
            except PanelfastError as exc:
                outcome = f"{type(exc).__name__}: {exc}"
                raise
            finally:
                entry = (self.gateway.clock.now_ms(), who, action, detail, outcome)
                await asyncio.to_thread(self.audit.record, *entry)
                self.events.changed()

    async def reload_file(self) -> ReloadOutcome:
        """Put the daemon's configuration file in force again (``POST /v1/reload``, SIGHUP)."""
        return await self.gateway.reload_file(self.config_path)

    async def reload_on_signal(self) -> None:
        """SIGHUP: the same reload, audited as the signal's; the log says how it went."""
        detail = {"file": str(self.config_path)}
        with contextlib.suppress(PanelfastError):  # logged by the reload itself
            await self.change_by("signal:SIGHUP", "config.reload", detail, self.reload_file)

    # -- the event stream's topics

    def apply_progress(self, progress: ApplyProgress) -> None:
        """Announce a step of applying a remote configuration (from any thread)."""
        step = {
            "section": progress.section,
            "done": progress.done,
            "total": progress.total,
            "fraction": progress.fraction,
        }
        data = json.dumps(step).encode()
        self._loop.call_soon_threadsafe(self.events.announce, "applying", data)

    def topics(self, status: GatewayStatus | None = None) -> dict[str, bytes]:
        """Every topic of the event stream as it would send it now (``status``: the
        gateway's status just read, if the caller has it)."""
        status = status if status is not None else self.gateway.status()
        return {
            "status": encode(status, API_TYPES["GatewayStatus"]),
            "devices": encode(
                [DeviceStatus.of(d) for d in self.gateway.diagnostics()], API_TYPES["Devices"]
            ),
        }

    def _audit_after(self, after_id: int) -> list[tuple[int, bytes]]:
        entries = self.audit.recent(100, after_id=after_id)
        return [(e.id, encode(e, AuditEntry)) for e in entries]
