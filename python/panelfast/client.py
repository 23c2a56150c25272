"""A typed Python client of the running gateway, for services.

```python
from panelfast.client import GatewayClient

async with GatewayClient.from_config("panelfast.toml") as gw:
    status = await gw.status()          # the same GatewayStatus as Gateway.status()
    await gw.disconnect()
    async for event, data in gw.events():
        ...
    await gw.enable_remote_control(RISK)   # the risk, as the user confirmed it
    result = await gw.switch("io-1/Q1", "on")   # SwitchResult: the state read back
```

It speaks the control API (:mod:`panelfast.control`) on the daemon's Unix
socket and answers with the Python API's own types, decoded from the JSON
the daemon sends. A refusal raises :class:`ControlRefused` with the
daemon's reason; no daemon raises :class:`GatewayNotRunning`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote

import httpx
from pydantic import TypeAdapter

from panelfast.cloud import CloudStatus, FirewallRule
from panelfast.commands import (
    RISK,
    HistoryEntry,
    OutputInfo,
    RemoteControlStatus,
    StoredSchedule,
    SwitchResult,
)
from panelfast.commands._model import Action
from panelfast.control import (
    AuditEntry,
    ConfigOutcome,
    DeviceStatus,
    PublicationInfo,
    PublicationSwitched,
    TestEmailSent,
)
from panelfast.control.wire import GatewayNotRunning, socket_for
from panelfast.exceptions import PanelfastError
from panelfast.gateway import GatewayStatus
from panelfast.publisher import Backlog
from panelfast.reload import ReloadOutcome

__all__ = ["RISK", "ControlRefused", "GatewayClient", "GatewayNotRunning"]

T = TypeVar("T")


class ControlRefused(PanelfastError):
    """The daemon refused a request; ``error`` is its code, the message its reason."""

    def __init__(self, status: int, error: str, message: str, hint: str | None = None) -> None:
        self.status = status
        self.error = error
        self.hint = hint
        super().__init__(message)


class GatewayClient:
    """``async with GatewayClient(socket) as gw:`` — one connection pool to the daemon."""

    def __init__(self, socket_path: Path, *, timeout_s: float = 120.0) -> None:
        self.socket_path = socket_path
        self._timeout_s = timeout_s
        self._http: httpx.AsyncClient | None = None

    @classmethod
    def from_config(cls, config_path: str | Path, *, timeout_s: float = 120.0) -> GatewayClient:
        """The daemon serving the gateway that ``config_path`` configures."""
        path = socket_for(Path(config_path))
        if path is None:
            raise PanelfastError(f"{config_path}: cannot read the configuration file")
        return cls(path, timeout_s=timeout_s)

    async def __aenter__(self) -> Self:
        self._http = httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=str(self.socket_path)),
            base_url="http://gateway",
            timeout=self._timeout_s,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def _request(self, method: str, route: str, body: object = None) -> httpx.Response:
        if self._http is None:
            raise RuntimeError("use GatewayClient in `async with`")
        try:
            response = await self._http.request(method, route, json=body)
        except (httpx.ConnectError, FileNotFoundError):
            raise GatewayNotRunning(self.socket_path) from None
        if response.status_code >= 400:
            try:
                error = response.json()
            except ValueError:
                error = {"error": "http", "message": response.text}
            raise ControlRefused(
                response.status_code,
                str(error.get("error", "")),
                str(error.get("message", "")),
                error.get("hint"),
            )
        return response

    async def _typed(self, kind: type[T] | Any, method: str, route: str, body: object = None) -> T:
        response = await self._request(method, route, body)
        return TypeAdapter(kind).validate_json(response.content)  # type: ignore[no-any-return]

    # -- reading

    async def status(self) -> GatewayStatus:
        return await self._typed(GatewayStatus, "GET", "/v1/status")

    async def identification(self) -> dict[str, Any]:
        return (await self._request("GET", "/v1/identification")).json()  # type: ignore[no-any-return]

    async def topology(self) -> dict[str, Any]:
        return (await self._request("GET", "/v1/topology")).json()  # type: ignore[no-any-return]

    async def remote_config(self) -> dict[str, Any]:
        return (await self._request("GET", "/v1/remote-config")).json()  # type: ignore[no-any-return]

    async def remote_config_history(self) -> list[ConfigOutcome]:
        return await self._typed(list[ConfigOutcome], "GET", "/v1/remote-config/history")

    async def settings(self) -> dict[str, Any]:
        return (await self._request("GET", "/v1/settings")).json()  # type: ignore[no-any-return]

    async def firewall(self) -> list[FirewallRule]:
        return await self._typed(list[FirewallRule], "GET", "/v1/firewall")

    async def devices(self) -> list[DeviceStatus]:
        return await self._typed(list[DeviceStatus], "GET", "/v1/devices")

    async def backlog(self) -> Backlog:
        return await self._typed(Backlog, "GET", "/v1/backlog")

    async def publication(self) -> PublicationInfo:
        """The publication method, the email setup (no secret), the alarm emails."""
        return await self._typed(PublicationInfo, "GET", "/v1/publication")

    async def audit(self, limit: int = 100) -> list[AuditEntry]:
        return await self._typed(list[AuditEntry], "GET", f"/v1/audit?limit={limit}")

    async def outputs(self) -> list[OutputInfo]:
        """Each output: its state, mode, and last change (when, by which source)."""
        return await self._typed(list[OutputInfo], "GET", "/v1/outputs")

    async def remote_control(self) -> RemoteControlStatus:
        return await self._typed(RemoteControlStatus, "GET", "/v1/outputs/remote-control")

    async def output_history(
        self, limit: int = 100, before: int | None = None
    ) -> list[HistoryEntry]:
        """The command history, newest first (``before``: older than that ``seq``)."""
        route = f"/v1/outputs/history?limit={limit}"
        if before is not None:
            route += f"&before={before}"
        return await self._typed(list[HistoryEntry], "GET", route)

    async def schedules(self) -> list[StoredSchedule]:
        return await self._typed(list[StoredSchedule], "GET", "/v1/schedules")

    async def events(self) -> AsyncIterator[tuple[str, Any]]:
        """Every state change, as (topic, JSON data), for as long as you iterate."""
        if self._http is None:
            raise RuntimeError("use GatewayClient in `async with`")
        async with self._http.stream("GET", "/v1/events", timeout=None) as response:
            event, data = "message", ""
            async for line in response.aiter_lines():
                if not line:
                    if data:
                        yield event, json.loads(data)
                    event, data = "message", ""
                elif line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data += line[5:].strip()

    # -- changing

    async def connect(self) -> CloudStatus:
        return await self._typed(CloudStatus, "POST", "/v1/connect")

    async def disconnect(self) -> CloudStatus:
        return await self._typed(CloudStatus, "POST", "/v1/disconnect")

    async def publish_topology(self) -> str:
        answer = await self._request("POST", "/v1/topology/publish")
        return str(answer.json()["topology_version"])

    async def enable_remote_control(self, confirmation: str) -> RemoteControlStatus:
        """Let the cloud and its schedules switch outputs. ``confirmation`` is the risk
        (:data:`panelfast.commands.RISK`) as the user confirmed it; anything else is
        refused (``confirmation_required``)."""
        body = {"enabled": True, "confirmation": confirmation}
        return await self._typed(RemoteControlStatus, "POST", "/v1/outputs/remote-control", body)

    async def disable_remote_control(self) -> RemoteControlStatus:
        body = {"enabled": False}
        return await self._typed(RemoteControlStatus, "POST", "/v1/outputs/remote-control", body)

    async def switch(self, output: str, action: Action) -> SwitchResult:
        """Switch ``device/output`` from here; refused with ``switch_failed`` (and why)
        unless its state was read back as asked."""
        device, _, output_id = output.partition("/")
        route = f"/v1/outputs/{quote(device, safe='')}/{quote(output_id, safe='')}"
        return await self._typed(SwitchResult, "POST", route, {"action": action})

    async def reload(self) -> ReloadOutcome:
        """Put the daemon's configuration file in force, live; a file with an error
        (``invalid_configuration``) or a change of what cannot change live
        (``reload_refused``) raises :class:`ControlRefused` naming the key."""
        return await self._typed(ReloadOutcome, "POST", "/v1/reload")

    async def change_setting(self, key: str, value: object) -> object:
        """Change a local setting; what the cloud manages is refused (``read_only``)."""
        answer = await self._request("PUT", f"/v1/settings/{key}", {"value": value})
        return answer.json()["value"]

    async def change_publication_method(self, method: str) -> PublicationSwitched:
        """Switch the publication method; refused (``publication_conflict``, with the
        hint) while what it excludes is on (see :mod:`panelfast.publication`)."""
        return await self._typed(PublicationSwitched, "PUT", "/v1/publication", {"method": method})

    async def send_test_email(self) -> TestEmailSent:
        """The test email to every recipient; ``ControlRefused`` with ``error`` "mail"
        and the SMTP server's answer in its message when it was not sent."""
        return await self._typed(TestEmailSent, "POST", "/v1/email/test")
