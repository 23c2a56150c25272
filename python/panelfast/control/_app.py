"""The control API's routes: the one door into the running gateway.

Every route reads or changes the :class:`~panelfast.gateway.Gateway` the
daemon runs. Changes are serialised (two Connects at once make one
attempt), take effect at once, persist where the gateway keeps that state,
are recorded in the audit log and announced on the event stream. Answers
are JSON (the types of the Python API, as in ``openapi.json``), or text
when asked for ``text/plain`` (what the CLI prints).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import TypeAdapter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from panelfast.cloud import Identity, mask_secret
from panelfast.control import _text
from panelfast.control._audit import AuditEntry, AuditLog
from panelfast.control._events import EventStream, TooManySubscribers
from panelfast.control._schema import (
    API_TYPES,
    ConfigOutcome,
    DeviceStatus,
    PublicationInfo,
    PublicationSwitched,
    RefusedRecipient,
    SmtpReply,
    TestEmailSent,
    openapi_document,
)
from panelfast.exceptions import (
    CloudError,
    ConfigError,
    MailError,
    NotConnected,
    PanelfastError,
    PublicationConflict,
    ReloadRefused,
    RemoteConfigReadOnly,
)
from panelfast.gateway import Gateway, GatewayStatus
from panelfast.local_settings import LOCAL_SETTINGS, edit_config_file
from panelfast.publication import EmailSetup, PublicationChange
from panelfast.reload import ReloadOutcome
from panelfast.remote_config import ApplyProgress

__all__ = ["ControlApp"]

T = TypeVar("T")
Handler = Callable[[Request], Awaitable[Response]]

_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def encode(value: object, kind: Any) -> bytes:
    """``value`` as JSON, by its API type (see :mod:`._schema`)."""
    adapter = _ADAPTERS.get(kind)
    if adapter is None:
        adapter = _ADAPTERS[kind] = TypeAdapter(kind)
    return adapter.dump_json(value)


def _json(value: object, kind: Any, status: int = 200) -> Response:
    return Response(encode(value, kind), status, media_type="application/json")


def _error(status: int, error: str, message: str, **more: object) -> JSONResponse:
    return JSONResponse({"error": error, "message": message, **more}, status)


def _wants_text(request: Request) -> bool:
    return "text/plain" in request.headers.get("accept", "")


def caller(request: Request) -> str:
    """Who made the request, as the audit log names it."""
    user = request.scope.get("panelfast.user")
    if user:
        return f"web:{user}"
    client = request.scope.get("client")
    if client and str(client[0]).startswith("socket:"):
        return str(client[0])
    return "socket"


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
        get, post = ["GET"], ["POST"]
        self.routes = [
            Route("/v1/status", self.status, methods=get),
            Route("/v1/identification", self.identification, methods=get),
            Route("/v1/connect", self.connect, methods=post),
            Route("/v1/disconnect", self.disconnect, methods=post),
            Route("/v1/topology", self.topology, methods=get),
            Route("/v1/topology/publish", self.publish_topology, methods=post),
            Route("/v1/remote-config", self.remote_config, methods=get),
            Route("/v1/remote-config/history", self.remote_config_history, methods=get),
            Route("/v1/settings", self.settings, methods=get),
            Route("/v1/settings/{key}", self.change_setting, methods=["PUT"]),
            Route("/v1/reload", self.reload, methods=post),
            Route("/v1/firewall", self.firewall, methods=get),
            Route("/v1/devices", self.devices, methods=get),
            Route("/v1/devices/{device_id}/values", self.readings, methods=get),
            Route("/v1/backlog", self.backlog, methods=get),
            Route("/v1/audit", self.audit_log, methods=get),
            Route("/v1/publication", self.publication, methods=get),
            Route("/v1/publication", self.change_publication, methods=["PUT"]),
            Route("/v1/email/test", self.email_test, methods=post),
            Route("/v1/events", self.event_stream, methods=get),
            Route("/openapi.json", self.openapi, methods=get),
        ]
        # Imported here: that module uses this one's helpers.
        from panelfast.control._outputs import output_routes

        self.routes += output_routes(self)
        self.app = Starlette(routes=self.routes)

    # -- reading

    async def status(self, request: Request) -> Response:
        status = await asyncio.to_thread(self.gateway.status)
        if _wants_text(request):
            return PlainTextResponse(_text.status_text(status))
        return _json(status, API_TYPES["GatewayStatus"])

    async def identification(self, request: Request) -> Response:
        identity = self.gateway.identification()
        rows = identity.identification()
        if _wants_text(request):
            return PlainTextResponse(_text.rows_text(rows))
        return JSONResponse({"rows": rows, **dict(_identification_fields(identity))})

    async def topology(self, request: Request) -> Response:
        topology = self.gateway.topology()
        published = self.gateway.topology_store.load()
        return JSONResponse(
            {
                "document": topology.document(),
                "size": topology.size,
                "must_be_published": self.gateway.topology_store.needs_publish(topology),
                "published_version": published.topology_version if published else None,
                "published_at": published.published_at if published else None,
            }
        )

    async def remote_config(self, request: Request) -> Response:
        remote = self.gateway.remote
        status, applied = remote.status(), remote.current
        if _wants_text(request):
            history = remote.store.history(10)
            return PlainTextResponse(_text.remote_config_text(status, applied, history))
        body = {
            "status": json.loads(encode(status, API_TYPES["RemoteConfigStatus"])),
            "applying": json.loads(encode(remote.applying, API_TYPES["ApplyProgress | None"])),
            "applied": applied.to_document() if applied else None,
        }
        return JSONResponse(body)

    async def remote_config_history(self, request: Request) -> Response:
        history = [ConfigOutcome.of(r) for r in self.gateway.remote.store.history()]
        return _json(history, API_TYPES["RemoteConfigHistory"])

    async def settings(self, request: Request) -> Response:
        settings = self.gateway.settings
        values = {}
        for key, description in LOCAL_SETTINGS.items():
            section, field = key.split(".", 1)
            value = getattr(getattr(settings, section), field)
            values[key] = {"value": value, "description": description}
        return JSONResponse(
            {
                "local": values,
                "managed_by_the_cloud": ["measurements", "sampling", "alarms", "publisher"],
            }
        )

    async def firewall(self, request: Request) -> Response:
        rules = self.gateway.firewall()
        if _wants_text(request):
            return PlainTextResponse("".join(rule.text() + "\n" for rule in rules))
        return _json(rules, API_TYPES["FirewallRules"])

    async def devices(self, request: Request) -> Response:
        devices = [DeviceStatus.of(d) for d in self.gateway.diagnostics()]
        if _wants_text(request):
            return PlainTextResponse(_text.devices_text(devices))
        return _json(devices, API_TYPES["Devices"])

    async def readings(self, request: Request) -> Response:
        device_id = request.path_params["device_id"]
        try:
            readings = await asyncio.to_thread(self.gateway.acquisition.readings, device_id)
        except KeyError:
            return _error(404, "not_found", f"no device {device_id!r} is configured")
        return _json(readings, API_TYPES["Readings"])

    async def backlog(self, request: Request) -> Response:
        backlog = await asyncio.to_thread(self.gateway.backlog)
        if _wants_text(request):
            return PlainTextResponse(_text.backlog_text(backlog))
        return _json(backlog, API_TYPES["Backlog"])

    async def audit_log(self, request: Request) -> Response:
        try:
            limit = min(1000, max(1, int(request.query_params.get("limit", "100"))))
        except ValueError:
            return _error(400, "invalid_request", "limit: must be an integer")
        entries = await asyncio.to_thread(self.audit.recent, limit)
        return _json(entries, API_TYPES["AuditEntries"])

    async def event_stream(self, request: Request) -> Response:
        try:
            stream = self.events.subscribe()
            first = await anext(stream)
        except TooManySubscribers as exc:
            return _error(503, "busy", str(exc))

        async def body() -> Any:
            yield first
            async for chunk in stream:
                yield chunk

        return StreamingResponse(
            body(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def publication(self, request: Request) -> Response:
        info = await asyncio.to_thread(self._publication_info)
        if _wants_text(request):
            return PlainTextResponse(_text.publication_text(info))
        return _json(info, API_TYPES["PublicationInfo"])

    def _publication_info(self) -> PublicationInfo:
        status = self.gateway.publication_status()
        email = self.gateway.settings.email
        return PublicationInfo(
            status.method,
            status.cloud_services,
            EmailSetup.of(email) if email is not None else None,
            status.email,
        )

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(openapi_document())

    # -- changing

    async def _change(
        self, request: Request, action: str, detail: dict[str, Any], do: Callable[[], Awaitable[T]]
    ) -> T:
        """Run one change: serialised with the others, audited, announced."""
        return await self._change_by(caller(request), action, detail, do)

    async def _change_by(
        self, who: str, action: str, detail: dict[str, Any], do: Callable[[], Awaitable[T]]
    ) -> T:
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

    async def connect(self, request: Request) -> Response:
        try:
            status = await self._change(request, "connect", {}, self.gateway.connect)
        except PublicationConflict as exc:
            return _conflict(exc)
        return (
            _json(status, API_TYPES["CloudStatus"])
            if not _wants_text(request)
            else (PlainTextResponse(status.text() + "\n"))
        )

    async def disconnect(self, request: Request) -> Response:
        status = await self._change(request, "disconnect", {}, self.gateway.disconnect)
        return (
            _json(status, API_TYPES["CloudStatus"])
            if not _wants_text(request)
            else (PlainTextResponse(status.text() + "\n"))
        )

    async def publish_topology(self, request: Request) -> Response:
        try:
            version = await self._change(
                request, "topology.publish", {}, self.gateway.publish_topology
            )
        except NotConnected as exc:
            return _error(409, "not_connected", str(exc), hint=exc.hint)
        except CloudError as exc:
            return _error(502, "cloud", str(exc), diagnostic=exc.diagnostic, hint=exc.hint or None)
        return JSONResponse({"topology_version": version})

    async def change_setting(self, request: Request) -> Response:
        key = request.path_params["key"]
        try:
            body = await request.json()
            value = body["value"]
        except (ValueError, KeyError, TypeError):
            return _error(400, "invalid_request", 'the body must be {"value": ...}')

        if key == "publication.method":
            outcome = await self._switch_publication(request, value)
            if isinstance(outcome, Response):
                return outcome
            return JSONResponse({"key": key, "value": outcome.method})

        async def do() -> object:
            # The file first: it is validated and written whole, or not at all;
            # then the running gateway takes the value as stored.
            current = self.gateway.remote.current
            stored = await asyncio.to_thread(
                edit_config_file,
                self.config_path,
                key,
                value if isinstance(value, str) else json.dumps(value),
                applied_version=current.version if current else None,
            )
            self.gateway.change_setting(key, stored)
            return stored

        try:
            stored = await self._change(request, "settings.change", {key: value}, do)
        except RemoteConfigReadOnly as exc:
            return _error(403, "read_only", str(exc))
        except ConfigError as exc:
            issues = [{"path": i.key, "message": i.message} for i in exc.issues]
            return _error(400, "invalid_setting", str(exc), issues=issues)
        return JSONResponse({"key": key, "value": stored})

    async def reload(self, request: Request) -> Response:
        """Read the daemon's configuration file again and put it in force (live reload)."""
        named = await _named_file(request)
        if isinstance(named, Response):
            return named
        if named is not None and named.resolve() != self.config_path.resolve():
            return _error(
                409,
                "other_file",
                f"the gateway runs with {self.config_path}, not {named}: "
                "edit that file, then reload",
            )
        try:
            outcome = await self._change(
                request, "config.reload", {"file": str(self.config_path)}, self._reload_file
            )
        except ConfigError as exc:
            issues = [{"path": i.key, "message": i.message} for i in exc.issues]
            message = f"{exc}\nnot reloaded; the running configuration stays"
            return _error(400, "invalid_configuration", message, issues=issues)
        except ReloadRefused as exc:
            issues = [{"path": i.key, "message": i.message} for i in exc.issues]
            return _error(409, "reload_refused", str(exc), issues=issues)
        if _wants_text(request):
            return PlainTextResponse(outcome.text())
        return _json(outcome, API_TYPES["ReloadOutcome"])

    async def reload_on_signal(self) -> None:
        """SIGHUP: the same reload, audited as the signal's; the log says how it went."""
        detail = {"file": str(self.config_path)}
        with contextlib.suppress(PanelfastError):  # logged by the reload itself
            await self._change_by("signal:SIGHUP", "config.reload", detail, self._reload_file)

    async def _reload_file(self) -> ReloadOutcome:
        return await self.gateway.reload_file(self.config_path)

    async def change_publication(self, request: Request) -> Response:
        try:
            body = await request.json()
            method = body["method"]
        except (ValueError, KeyError, TypeError):
            return _error(400, "invalid_request", 'the body must be {"method": ...}')
        outcome = await self._switch_publication(request, method)
        if isinstance(outcome, Response):
            return outcome
        info = await asyncio.to_thread(self._publication_info)
        if _wants_text(request):
            return PlainTextResponse(outcome.audit_text() + "\n" + _text.publication_text(info))
        switched = PublicationSwitched(outcome.previous, outcome.method, outcome.changed, info)
        return _json(switched, API_TYPES["PublicationSwitched"])

    async def _switch_publication(
        self, request: Request, method: object
    ) -> PublicationChange | Response:
        """Switch the method: checked, written into the file, in force at once, audited."""
        gateway = self.gateway

        def store(checked: str) -> None:
            current = gateway.remote.current
            edit_config_file(
                self.config_path,
                "publication.method",
                checked,
                applied_version=current.version if current else None,
                cloud_on=gateway.session.connect_requested,
            )

        async def do() -> PublicationChange:
            return await gateway.change_publication_method(method, store=store)

        try:
            return await self._change(request, "publication.method", {"method": method}, do)
        except PublicationConflict as exc:
            return _conflict(exc)
        except ConfigError as exc:
            return _invalid(exc)

    async def email_test(self, request: Request) -> Response:
        try:
            delivery = await self._change(request, "email.test", {}, self.gateway.send_test_email)
        except MailError as exc:
            return _error(502, "mail", str(exc), stage=exc.stage, code=exc.code, text=exc.text)
        except ConfigError as exc:
            return _invalid(exc)
        email = self.gateway.settings.email
        assert email is not None  # send_test_email refuses a gateway without one
        sent = TestEmailSent(
            f"{email.host}:{email.smtp_port}",
            SmtpReply(delivery.answer.code, delivery.answer.text),
            delivery.recipients,
            tuple(RefusedRecipient(a, r.code, r.text) for a, r in delivery.refused),
        )
        return _json(sent, API_TYPES["TestEmailSent"])

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


async def _named_file(request: Request) -> Path | Response | None:
    """The configuration file a reload request names (``{"config": path}``), if any."""
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        body = json.loads(raw)
        named = body.get("config") if isinstance(body, dict) else None
    except ValueError:
        named = None
    if not isinstance(named, str) or not named:
        return _error(400, "invalid_request", 'the body is empty, or {"config": "<file>"}')
    return Path(named)


def _conflict(exc: PublicationConflict) -> Response:
    return _error(409, "publication_conflict", str(exc), hint=exc.hint, turn_off=exc.turn_off)


def _invalid(exc: ConfigError) -> Response:
    issues = [{"path": i.key, "message": i.message} for i in exc.issues]
    return _error(400, "invalid_setting", str(exc), issues=issues)


def _identification_fields(identity: Identity) -> list[tuple[str, object]]:
    return [
        ("serial", identity.serial),
        ("model", identity.model),
        ("firmware", identity.firmware),
        ("mac", identity.mac),
        ("name", identity.name),
        ("claim_key", mask_secret(identity.claim_key)),
        ("device_id", identity.device_id),
    ]
