"""The operator page of the reference cloud, under ``/operator/web/``.

For the person running the cloud: the gateways and their connection, each
one's topology, remote configuration and report, alarm events, commands, and
plots of the series received. Server-side HTML (Jinja2 templates shipped in the
package), SVG plots drawn by :mod:`.plot`, one small script for drag-to-zoom;
nothing is fetched from anywhere else. Log in with the operator token (see
:mod:`.session`).
"""

from __future__ import annotations

import datetime as dt
import json
import time
import urllib.parse
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, PackageLoader, select_autoescape

from panelfast.refcloud.state import CloudState
from panelfast.refcloud.web import plot, session
from panelfast.refcloud.web.views import (
    PageError,
    gateway_detail,
    gateway_rows,
    series_view,
)

__all__ = ["PAGE_PATH", "operator_pages"]

PAGE_PATH = "/operator/web"
_STATIC = {"operator.css": "text/css", "operator.js": "text/javascript"}
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _instant(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _instant_ms(t_ms: int | None) -> str:
    return "—" if t_ms is None else plot.format_instant(t_ms) + " UTC"


def _ago(seconds: float | None, now: float) -> str:
    if seconds is None:
        return "never"
    delta = max(0, round(now - seconds))
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if delta >= size:
            return f"{delta // size} {unit} ago"
    return f"{delta} s ago"


def _command_details(body: dict[str, Any]) -> str:
    """What a command asks, beyond its id and type: ``output: "io-1/Q1", action: "on"``."""
    return ", ".join(
        f"{key}: {json.dumps(value, sort_keys=True)}"
        for key, value in body.items()
        if key not in ("id", "type")
    )


def _templates() -> Jinja2Templates:
    env = Environment(
        loader=PackageLoader("panelfast.refcloud.web", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["instant"] = _instant
    env.filters["instant_ms"] = _instant_ms
    env.filters["command_details"] = _command_details
    env.globals["page_path"] = PAGE_PATH
    return Jinja2Templates(env=env)


def _safe_next(value: str | None) -> str:
    """Where to go after logging in: a path of this page only (never another site)."""
    if value and value.startswith(f"{PAGE_PATH}/") and "//" not in value and "\\" not in value:
        return value
    return f"{PAGE_PATH}/"


def _range_links(start: int, end: int, first: int, last: int) -> list[tuple[str, str]]:
    """``(label, query)`` of the zoom and pan links around ``[start, end]``."""
    span = max(end - start, 1)
    centre = (start + end) // 2

    def query(a: int, b: int) -> str:
        return urllib.parse.urlencode({"from": a, "to": b})

    return [
        ("Zoom in ×2", query(centre - span // 4, centre + span // 4)),
        ("Zoom out ×2", query(centre - span, centre + span)),
        ("Earlier", query(start - span // 2, end - span // 2)),
        ("Later", query(start + span // 2, end + span // 2)),
        ("Last hour", query(last - 3_600_000, last)),
        ("Last day", query(last - 86_400_000, last)),
        ("Everything", query(first, last)),
    ]


def operator_pages(state: CloudState) -> APIRouter:
    """The page's routes over ``state``; not part of the published OpenAPI document."""
    templates = _templates()
    router = APIRouter(prefix=PAGE_PATH, include_in_schema=False)
    token = state.operator_token

    def logged_in(request: Request) -> bool:
        return session.valid_session(request.cookies.get(session.COOKIE), token)

    def page(request: Request, name: str, status: int = 200, **context: Any) -> Response:
        context.setdefault("now", time.time())
        context["ago"] = lambda seconds: _ago(seconds, context["now"])
        return templates.TemplateResponse(
            request, name, context, status_code=status, headers=_HEADERS
        )

    def to_login(request: Request) -> Response:
        wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        target = f"{PAGE_PATH}/login?" + urllib.parse.urlencode({"next": wanted})
        return RedirectResponse(target, status_code=303, headers=_HEADERS)

    def failure(request: Request, err: PageError) -> Response:
        return page(
            request,
            "error.html",
            err.status,
            message=err.message,
            bad_request=err.status == 400,
            logged_in=True,
        )

    @router.get("/login")
    async def login_form(
        request: Request, then: Annotated[str | None, Query(alias="next")] = None
    ) -> Response:
        if logged_in(request):
            return RedirectResponse(_safe_next(then), status_code=303, headers=_HEADERS)
        return page(request, "login.html", next=_safe_next(then), error=None, logged_in=False)

    @router.post("/login")
    async def login(request: Request) -> Response:
        form = urllib.parse.parse_qs((await request.body())[:8192].decode("utf-8", "replace"))
        given = form.get("token", [""])[0]
        target = _safe_next(form.get("next", [""])[0])
        if not session.check_token(given, token):
            message = (
                "That is not the operator token of this cloud."
                if given.strip()
                else "Enter the operator token."
            )
            return page(request, "login.html", 401, next=target, error=message, logged_in=False)
        response = RedirectResponse(target, status_code=303, headers=_HEADERS)
        response.set_cookie(
            session.COOKIE,
            session.new_session(token),
            max_age=session.SESSION_S,
            path=PAGE_PATH,
            secure=True,
            httponly=True,
            samesite="strict",
        )
        return response

    @router.post("/logout")
    async def logout() -> Response:
        response = RedirectResponse(f"{PAGE_PATH}/login", status_code=303, headers=_HEADERS)
        response.delete_cookie(
            session.COOKIE, path=PAGE_PATH, secure=True, httponly=True, samesite="strict"
        )
        return response

    @router.get("/static/{name}")
    async def static(name: str) -> Response:
        media_type = _STATIC.get(name)
        if media_type is None:
            return Response("no such file", status_code=404, media_type="text/plain")
        content = resources.files("panelfast.refcloud.web").joinpath("static", name).read_bytes()
        return Response(
            content,
            media_type=media_type,
            headers={"Cache-Control": "max-age=300", "X-Content-Type-Options": "nosniff"},
        )

    @router.get("/")
    async def gateways(request: Request) -> Response:
        if not logged_in(request):
            return to_login(request)
        return page(request, "gateways.html", rows=gateway_rows(state), logged_in=True)

    @router.get("/gateways/{serial}")
    async def gateway(request: Request, serial: str) -> Response:
        if not logged_in(request):
            return to_login(request)
        try:
            detail = gateway_detail(state, serial)
        except PageError as err:
            return failure(request, err)
        return page(request, "gateway.html", logged_in=True, **detail)

    @router.get("/gateways/{serial}/series/{device}/{measurement}")
    async def series(request: Request, serial: str, device: str, measurement: str) -> Response:
        if not logged_in(request):
            return to_login(request)
        params = request.query_params
        try:
            view = series_view(
                state, serial, device, measurement, params.get("from"), params.get("to")
            )
        except PageError as err:
            return failure(request, err)
        data = view.data
        return page(
            request,
            "series.html",
            logged_in=True,
            view=view,
            links=_range_links(data.start, data.end, view.summary.first, view.summary.last),
            from_value=_local_input(data.start),
            to_value=_local_input(data.end),
        )

    return router


def _local_input(t_ms: int) -> str:
    """A ``datetime-local`` input's value (UTC, to the second)."""
    return dt.datetime.fromtimestamp(t_ms // 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
