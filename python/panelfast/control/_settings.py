"""The control API's routes for the gateway's local settings: reading them,
changing one (written into the configuration file, then in force), and
reloading the whole file (live reload).

What the cloud manages (measurements, sampling, alarms, publisher) is not
changed here: it comes with the remote configuration.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from panelfast.control._answers import error, invalid_setting, json_answer, wants_text
from panelfast.control._publication import switch_publication
from panelfast.control._schema import API_TYPES
from panelfast.exceptions import ConfigError, ReloadRefused, RemoteConfigReadOnly
from panelfast.local_settings import LOCAL_SETTINGS, edit_config_file

if TYPE_CHECKING:
    from panelfast.control._app import ControlApp

__all__ = ["settings_routes"]


def settings_routes(app: ControlApp) -> list[Route]:
    """The routes, over the gateway's settings and the daemon's configuration file."""
    gateway = app.gateway

    async def settings(request: Request) -> Response:
        current = gateway.settings
        values = {}
        for key, description in LOCAL_SETTINGS.items():
            section, field = key.split(".", 1)
            value = getattr(getattr(current, section), field)
            values[key] = {"value": value, "description": description}
        return JSONResponse(
            {
                "local": values,
                "managed_by_the_cloud": ["measurements", "sampling", "alarms", "publisher"],
            }
        )

    async def change_setting(request: Request) -> Response:
        key = request.path_params["key"]
        try:
            body = await request.json()
            value = body["value"]
        except (ValueError, KeyError, TypeError):
            return error(400, "invalid_request", 'the body must be {"value": ...}')

        if key == "publication.method":
            outcome = await switch_publication(app, request, value)
            if isinstance(outcome, Response):
                return outcome
            return JSONResponse({"key": key, "value": outcome.method})

        async def do() -> object:
            # The file first: it is validated and written whole, or not at all;
            # then the running gateway takes the value as stored.
            current = gateway.remote.current
            stored = await asyncio.to_thread(
                edit_config_file,
                app.config_path,
                key,
                value if isinstance(value, str) else json.dumps(value),
                applied_version=current.version if current else None,
            )
            gateway.change_setting(key, stored)
            return stored

        try:
            stored = await app.change(request, "settings.change", {key: value}, do)
        except RemoteConfigReadOnly as exc:
            return error(403, "read_only", str(exc))
        except ConfigError as exc:
            return invalid_setting(exc)
        return JSONResponse({"key": key, "value": stored})

    async def reload(request: Request) -> Response:
        """Read the daemon's configuration file again and put it in force (live reload)."""
        named = await _named_file(request)
        if isinstance(named, Response):
            return named
        if named is not None and named.resolve() != app.config_path.resolve():
            return error(
                409,
                "other_file",
                f"the gateway runs with {app.config_path}, not {named}: "
                "edit that file, then reload",
            )
        try:
            outcome = await app.change(
                request, "config.reload", {"file": str(app.config_path)}, app.reload_file
            )
        except ConfigError as exc:
            issues = [{"path": i.key, "message": i.message} for i in exc.issues]
            message = f"{exc}\nnot reloaded; the running configuration stays"
            return error(400, "invalid_configuration", message, issues=issues)
        except ReloadRefused as exc:
            issues = [{"path": i.key, "message": i.message} for i in exc.issues]
            return error(409, "reload_refused", str(exc), issues=issues)
        if wants_text(request):
            return PlainTextResponse(outcome.text())
        return json_answer(outcome, API_TYPES["ReloadOutcome"])

    return [
        Route("/v1/settings", settings, methods=["GET"]),
        Route("/v1/settings/{key}", change_setting, methods=["PUT"]),
        Route("/v1/reload", reload, methods=["POST"]),
    ]


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
        return error(400, "invalid_request", 'the body is empty, or {"config": "<file>"}')
    return Path(named)
