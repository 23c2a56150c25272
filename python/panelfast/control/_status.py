"""The control API's routes that show the gateway as it is: its status, its
identification, its firewall, the publisher's backlog, the audit log, the
event stream, and the API's own OpenAPI document.

None of them changes anything, so none takes the change lock.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from panelfast.cloud import Identity, mask_secret
from panelfast.control import _text
from panelfast.control._answers import answer, error, json_answer, wants_text
from panelfast.control._events import TooManySubscribers
from panelfast.control._schema import API_TYPES, openapi_document

if TYPE_CHECKING:
    from panelfast.control._app import ControlApp

__all__ = ["status_routes"]


def status_routes(app: ControlApp) -> list[Route]:
    """The routes, over the app's gateway, audit log and event stream."""
    gateway = app.gateway

    async def status(request: Request) -> Response:
        found = await asyncio.to_thread(gateway.status)
        return answer(request, found, API_TYPES["GatewayStatus"], _text.status_text)

    async def identification(request: Request) -> Response:
        identity = gateway.identification()
        rows = identity.identification()
        if wants_text(request):
            return PlainTextResponse(_text.rows_text(rows))
        return JSONResponse({"rows": rows, **dict(_identification_fields(identity))})

    async def firewall(request: Request) -> Response:
        rules = gateway.firewall()
        if wants_text(request):
            return PlainTextResponse("".join(rule.text() + "\n" for rule in rules))
        return json_answer(rules, API_TYPES["FirewallRules"])

    async def backlog(request: Request) -> Response:
        found = await asyncio.to_thread(gateway.backlog)
        return answer(request, found, API_TYPES["Backlog"], _text.backlog_text)

    async def audit_log(request: Request) -> Response:
        try:
            limit = min(1000, max(1, int(request.query_params.get("limit", "100"))))
        except ValueError:
            return error(400, "invalid_request", "limit: must be an integer")
        entries = await asyncio.to_thread(app.audit.recent, limit)
        return json_answer(entries, API_TYPES["AuditEntries"])

    async def event_stream(request: Request) -> Response:
        try:
            stream = app.events.subscribe()
            first = await anext(stream)
        except TooManySubscribers as exc:
            return error(503, "busy", str(exc))

        async def body() -> Any:
            yield first
            async for chunk in stream:
                yield chunk

        return StreamingResponse(
            body(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def openapi(request: Request) -> Response:
        return JSONResponse(openapi_document())

    get = ["GET"]
    return [
        Route("/v1/status", status, methods=get),
        Route("/v1/identification", identification, methods=get),
        Route("/v1/firewall", firewall, methods=get),
        Route("/v1/backlog", backlog, methods=get),
        Route("/v1/audit", audit_log, methods=get),
        Route("/v1/events", event_stream, methods=get),
        Route("/openapi.json", openapi, methods=get),
    ]


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
