"""The control API's routes for outputs: their states, remote control, history, schedules,
and switching one from here.

``POST /v1/outputs/remote-control`` enables outputs remote control only with
``{"enabled": true, "confirmation": "<the risk sentence>"}``: the sentence
the status answers with (``risk``), sent back as the user's confirmation.
Without it the change is refused (400 ``confirmation_required``, the risk
named); disabling needs no confirmation.

``POST /v1/outputs/{device}/{output}`` switches an output from here (source
``local``). It does not need outputs remote control: that guards what the
cloud and its schedules do with nobody at the site, while a local user acts
through the gateway's own door (the control socket, the web login) and is
named in both trails. The answer comes once the state is read back (200), or
says why not (502 ``switch_failed``).

Both trails name each other's facts: the control API's audit log records
who asked (``outputs.remote_control``, ``outputs.switch``); the command
history (``GET /v1/outputs/history``) records every command of the cloud,
every schedule entry and every local action, the latter with the same
``who``.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, cast, get_args

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from panelfast.commands import (
    RISK,
    OutputRef,
    RemoteControlStatus,
    SwitchResult,
    confirms,
)
from panelfast.commands import _text as text
from panelfast.commands._model import Action
from panelfast.control._answers import answer, caller, error, json_answer, wants_text
from panelfast.control._schema import API_TYPES
from panelfast.exceptions import PanelfastError, RemoteControlNotConfirmed

if TYPE_CHECKING:
    from panelfast.control._app import ControlApp

__all__ = ["output_routes"]

_ACTIONS: tuple[str, ...] = get_args(Action)
#: Most history entries one answer carries.
MAX_HISTORY = 1000


class SwitchFailed(PanelfastError):
    """A local switch that was tried and not confirmed (the audit log's outcome says why)."""

    def __init__(self, result: SwitchResult) -> None:
        self.result = result
        super().__init__(result.reason or result.status)


async def _body(request: Request) -> dict[str, Any] | None:
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def output_routes(app: ControlApp) -> list[Route]:
    """The routes, over the gateway's :class:`~panelfast.commands.CommandService`."""
    commands = app.gateway.commands

    async def outputs(request: Request) -> Response:
        found = await asyncio.to_thread(commands.outputs)
        return answer(request, found, API_TYPES["Outputs"], text.outputs_text)

    def _remote_answer(request: Request, status: RemoteControlStatus) -> Response:
        return answer(request, status, API_TYPES["RemoteControlStatus"], text.remote_control_text)

    async def remote_control(request: Request) -> Response:
        return _remote_answer(request, await asyncio.to_thread(commands.remote_control))

    async def change_remote_control(request: Request) -> Response:
        body = await _body(request)
        enabled = None if body is None else body.get("enabled")
        if not isinstance(enabled, bool):
            return error(
                400,
                "invalid_request",
                'the body must be {"enabled": true, "confirmation": "<the risk>"} '
                'or {"enabled": false}',
            )
        who = caller(request)
        confirmed = enabled and body is not None and confirms(body.get("confirmation"))

        async def do() -> RemoteControlStatus:
            if enabled:
                return await asyncio.to_thread(
                    lambda: commands.enable_remote_control(confirmed=confirmed, who=who)
                )
            return await asyncio.to_thread(lambda: commands.disable_remote_control(who=who))

        detail = {"enabled": enabled, "confirmed": confirmed} if enabled else {"enabled": False}
        try:
            status = await app.change(request, "outputs.remote_control", detail, do)
        except RemoteControlNotConfirmed as exc:
            return error(400, "confirmation_required", str(exc), risk=RISK)
        return _remote_answer(request, status)

    async def history(request: Request) -> Response:
        try:
            limit = int(request.query_params.get("limit", "100"))
            before_text = request.query_params.get("before")
            before = None if before_text is None else int(before_text)
        except ValueError:
            return error(400, "invalid_request", "limit, before: must be integers")
        if not 1 <= limit <= MAX_HISTORY:
            return error(400, "invalid_request", f"limit: from 1 to {MAX_HISTORY}")
        entries = await asyncio.to_thread(commands.history, limit, before)
        return answer(request, entries, API_TYPES["OutputsHistory"], text.history_text)

    async def schedules(request: Request) -> Response:
        stored = await asyncio.to_thread(commands.stored_schedules)
        return answer(request, stored, API_TYPES["Schedules"], text.schedules_text)

    async def switch(request: Request) -> Response:
        ref = OutputRef(request.path_params["device"], request.path_params["output"])
        body = await _body(request)
        asked = None if body is None else body.get("action")
        if asked not in _ACTIONS:
            return error(400, "invalid_request", 'the body must be {"action": "on|off|toggle"}')
        action = cast(Action, asked)
        if not commands.outputs_control.has(ref):
            known = ", ".join(str(o.ref) for o in commands.outputs()) or "none configured"
            return error(
                404, "unknown_output", f"no output {ref} on this gateway (outputs: {known})"
            )

        async def do() -> SwitchResult:
            result = await commands.switch(str(ref), action, who=caller(request))
            if result.status != "done":
                raise SwitchFailed(result)
            return result

        try:
            result = await app.change(
                request, "outputs.switch", {"output": str(ref), "action": action}, do
            )
        except SwitchFailed as exc:
            failed = exc.result
            return error(
                502,
                "switch_failed",
                f"{ref} {action}: {failed.reason}",
                readback=failed.readback,
            )
        if wants_text(request):
            return PlainTextResponse(f"{ref}: {result.readback} (read back)\n")
        return json_answer(result, API_TYPES["SwitchResult"])

    get, post = ["GET"], ["POST"]
    return [
        Route("/v1/outputs", outputs, methods=get),
        Route("/v1/outputs/remote-control", remote_control, methods=get),
        Route("/v1/outputs/remote-control", change_remote_control, methods=post),
        Route("/v1/outputs/history", history, methods=get),
        Route("/v1/outputs/{device}/{output}", switch, methods=post),
        Route("/v1/schedules", schedules, methods=get),
    ]
