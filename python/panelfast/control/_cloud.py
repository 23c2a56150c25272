"""The control API's routes for the cloud: connecting and disconnecting, the
topology the cloud is told about (and publishing it), and the configuration
the cloud sent (in force, being applied, its history).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from panelfast.control import _text
from panelfast.control._answers import (
    encode,
    error,
    json_answer,
    publication_conflict,
    wants_text,
)
from panelfast.control._schema import API_TYPES, ConfigOutcome
from panelfast.exceptions import CloudError, NotConnected, PublicationConflict

if TYPE_CHECKING:
    from panelfast.cloud import CloudStatus
    from panelfast.control._app import ControlApp

__all__ = ["cloud_routes"]


def cloud_routes(app: ControlApp) -> list[Route]:
    """The routes, over the gateway's cloud session, topology and remote configuration."""
    gateway = app.gateway

    def cloud_answer(request: Request, status: CloudStatus) -> Response:
        if wants_text(request):
            return PlainTextResponse(status.text() + "\n")
        return json_answer(status, API_TYPES["CloudStatus"])

    async def connect(request: Request) -> Response:
        try:
            status = await app.change(request, "connect", {}, gateway.connect)
        except PublicationConflict as exc:
            return publication_conflict(exc)
        return cloud_answer(request, status)

    async def disconnect(request: Request) -> Response:
        status = await app.change(request, "disconnect", {}, gateway.disconnect)
        return cloud_answer(request, status)

    async def topology(request: Request) -> Response:
        current = gateway.topology()
        published = gateway.topology_store.load()
        return JSONResponse(
            {
                "document": current.document(),
                "size": current.size,
                "must_be_published": gateway.topology_store.needs_publish(current),
                "published_version": published.topology_version if published else None,
                "published_at": published.published_at if published else None,
            }
        )

    async def publish_topology(request: Request) -> Response:
        try:
            version = await app.change(request, "topology.publish", {}, gateway.publish_topology)
        except NotConnected as exc:
            return error(409, "not_connected", str(exc), hint=exc.hint)
        except CloudError as exc:
            return error(502, "cloud", str(exc), diagnostic=exc.diagnostic, hint=exc.hint or None)
        return JSONResponse({"topology_version": version})

    async def remote_config(request: Request) -> Response:
        remote = gateway.remote
        status, applied = remote.status(), remote.current
        if wants_text(request):
            history = remote.store.history(10)
            return PlainTextResponse(_text.remote_config_text(status, applied, history))
        body = {
            "status": json.loads(encode(status, API_TYPES["RemoteConfigStatus"])),
            "applying": json.loads(encode(remote.applying, API_TYPES["ApplyProgress | None"])),
            "applied": applied.to_document() if applied else None,
        }
        return JSONResponse(body)

    async def remote_config_history(request: Request) -> Response:
        history = [ConfigOutcome.of(r) for r in gateway.remote.store.history()]
        return json_answer(history, API_TYPES["RemoteConfigHistory"])

    get, post = ["GET"], ["POST"]
    return [
        Route("/v1/connect", connect, methods=post),
        Route("/v1/disconnect", disconnect, methods=post),
        Route("/v1/topology", topology, methods=get),
        Route("/v1/topology/publish", publish_topology, methods=post),
        Route("/v1/remote-config", remote_config, methods=get),
        Route("/v1/remote-config/history", remote_config_history, methods=get),
    ]
