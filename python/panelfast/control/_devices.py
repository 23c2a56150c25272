"""The control API's routes for the configured devices: their diagnostics
(connection, last poll, errors) and the values last read from one.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from panelfast.control import _text
from panelfast.control._answers import answer, error, json_answer
from panelfast.control._schema import API_TYPES, DeviceStatus

if TYPE_CHECKING:
    from panelfast.control._app import ControlApp

__all__ = ["device_routes"]


def device_routes(app: ControlApp) -> list[Route]:
    """The routes, over the gateway's diagnostics and acquisition."""
    gateway = app.gateway

    async def devices(request: Request) -> Response:
        found = [DeviceStatus.of(d) for d in gateway.diagnostics()]
        return answer(request, found, API_TYPES["Devices"], _text.devices_text)

    async def readings(request: Request) -> Response:
        device_id = request.path_params["device_id"]
        try:
            found = await asyncio.to_thread(gateway.acquisition.readings, device_id)
        except KeyError:
            return error(404, "not_found", f"no device {device_id!r} is configured")
        return json_answer(found, API_TYPES["Readings"])

    get = ["GET"]
    return [
        Route("/v1/devices", devices, methods=get),
        Route("/v1/devices/{device_id}/values", readings, methods=get),
    ]
