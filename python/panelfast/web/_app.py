"""The web listener's application: the login, the pages, ``/metrics`` and the control API.

Routes:

- ``/login``, ``/logout``: the web login (:mod:`._guard` lets these through;
  they check their own tokens: a login form carries a double-submit token,
  logout the session's CSRF token).
- ``/settings/publication``, ``/devices``: the pages; ``?section=<name>``
  answers one section only (what the page's script fetches when it changes).
- ``/static/<file>``: the stylesheet and the script, from the package.
- ``/metrics``: Prometheus, as ``[metrics] listen`` serves it.
- every route of the control API (:class:`~panelfast.control._app.ControlApp`),
  the same as on the Unix socket.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import logging
import secrets
import urllib.parse
from importlib import resources
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from panelfast.config import WebSettings
from panelfast.control import ControlApp
from panelfast.gateway import GatewayStatus
from panelfast.web import _views
from panelfast.web._guard import (
    COOKIE,
    Guard,
    PasswordCheck,
    client_address,
    wait_text,
)
from panelfast.web._password import PasswordFile, WebPasswordError
from panelfast.web._sessions import LoginLimiter, Sessions

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["WebPages"]

log = logging.getLogger("panelfast.web")

LOGIN_COOKIE = "__Host-panelfast-login"
_STATIC = {
    "web.css": "text/css; charset=utf-8",
    "web.js": "text/javascript; charset=utf-8",
    "icon.svg": "image/svg+xml",
}
_PAGES = {
    "/settings/publication": ("publication.html", _views.PUBLICATION_SECTIONS, "Publication"),
    "/devices": ("devices.html", _views.DEVICES_SECTIONS, "Devices"),
}
_MAX_FORM = 8192


def _local_time(t: dt.datetime) -> str:
    return t.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def _instant_ms(t_ms: int | None) -> str:
    if t_ms is None:
        return "—"
    return _local_time(dt.datetime.fromtimestamp(t_ms / 1000, dt.UTC))


def _iso(text: str | None) -> str:
    if not text:
        return "—"
    try:
        return _local_time(dt.datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        return text


def _duration(seconds: float | None) -> str:
    """``90`` → ``1 min 30 s``, ``3600`` → ``1 h``: the two largest units, zeros left out."""
    if seconds is None:
        return "—"
    left = round(seconds)
    parts: list[str] = []
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min"), (1, "s")):
        if left >= size or (size == 1 and not parts):
            parts.append(f"{left // size} {unit}")
            left %= size
    kept = parts[:2]
    return " ".join(p for p in kept if not p.startswith("0 ") or len(kept) == 1)


def _number(value: float | int) -> str:
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.6g}" if abs(value) < 1e6 else f"{value:,.0f}"


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("panelfast.web", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(instant_ms=_instant_ms, iso=_iso, duration=_duration, number=_number)
    return env


def _safe_next(value: str | None) -> str:
    """Where to go after logging in: a path of these pages only (never another site)."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        path = urllib.parse.urlsplit(value).path
        if path in _PAGES:
            return value
    return "/settings/publication"


class WebPages:
    """The web listener's ASGI application (:attr:`app`) over a running :class:`ControlApp`."""

    def __init__(
        self,
        control: ControlApp,
        settings: WebSettings,
        passwords: PasswordFile,
        registry: CollectorRegistry,
    ) -> None:
        self.control = control
        self.settings = settings
        self.registry = registry
        self.passwords = passwords
        self.sessions = Sessions(
            idle_s=settings.session_idle_min * 60, max_s=settings.session_max_h * 3600
        )
        self.limiter = LoginLimiter()
        self.check = PasswordCheck(settings.user, passwords)
        self.env = _environment()
        routes = [
            Route("/", self.home, methods=["GET"]),
            Route("/login", self.login_form, methods=["GET"]),
            Route("/login", self.login, methods=["POST"]),
            Route("/logout", self.logout, methods=["POST"]),
            Route("/static/{name}", self.static, methods=["GET"]),
            Route("/metrics", self.metrics, methods=["GET"]),
            *(Route(path, self.page, methods=["GET"]) for path in _PAGES),
            *control.routes,
        ]
        self.guard = Guard(
            Starlette(routes=routes),
            sessions=self.sessions,
            passwords=passwords,
            check=self.check,
            limiter=self.limiter,
        )
        self.app = self.guard

    # -- rendering

    def _render(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = self.env.get_template(name).render(**context)
        return HTMLResponse(html, status)

    def _login_page(
        self, request: Request, status: int, *, error: str | None, then: str, user: str = ""
    ) -> Response:
        token = secrets.token_urlsafe(24)
        response = self._render(
            "login.html", status, error=error, next=then, token=token, user=user[:64]
        )
        response.set_cookie(
            LOGIN_COOKIE, token, max_age=3600, secure=True, httponly=True, samesite="strict"
        )
        return response

    # -- login

    async def home(self, request: Request) -> Response:
        return RedirectResponse("/settings/publication", 303)

    async def login_form(self, request: Request) -> Response:
        then = _safe_next(request.query_params.get("next"))
        _, session = self.guard.session(request.scope, activity=True)
        if session is not None:
            return RedirectResponse(then, 303)
        return self._login_page(request, 200, error=None, then=then)

    async def _form(self, request: Request) -> dict[str, str]:
        """The fields of a small form; a body past :data:`_MAX_FORM` is not read on
        (these routes are reached before logging in: nobody may make the daemon
        hold a large body)."""
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > _MAX_FORM:
                break
        text = body[:_MAX_FORM].decode("utf-8", "replace")
        return {k: v[0] for k, v in urllib.parse.parse_qs(text).items()}

    async def login(self, request: Request) -> Response:
        form = await self._form(request)
        then = _safe_next(form.get("next"))
        client = client_address(request.scope)
        expected = request.cookies.get(LOGIN_COOKIE, "")
        if not expected or not hmac.compare_digest(
            form.get("token", "").encode(), expected.encode()
        ):
            return self._login_page(
                request, 400, error="The login form expired: enter your password again.", then=then
            )
        wait = self.limiter.wait_s(client)
        if wait:
            error = (
                f"Too many failed log-ins from this address ({client}): "
                f"try again in {wait_text(wait)}."
            )
            response = self._login_page(request, 429, error=error, then=then)
            response.headers["Retry-After"] = str(round(wait) + 1)
            return response
        user, password = form.get("user", "").strip(), form.get("password", "")
        try:
            accepted = bool(user) and await self.check.check(user, password)
        except WebPasswordError as exc:
            log.error("web: %s", exc)
            return self._login_page(request, 500, error=str(exc), then=then)
        if not accepted:
            self.limiter.failed(client)
            log.warning(
                "web: log-in refused for %r from %s",
                user[:32],
                client,
                extra={"event": "web.login_refused", "client": client},
            )
            left = self.limiter.left(client)
            more = f" {left} more attempt{'s' if left != 1 else ''} before a pause." if left else ""
            return self._login_page(
                request, 401, error=f"Wrong user name or password.{more}", then=then, user=user
            )
        self.limiter.succeeded(client)
        cookie, _ = self.sessions.open(user, self.passwords.fingerprint())
        await self._audit(user, "web.login", {"client": client})
        log.info(
            "web: %s logged in from %s",
            user,
            client,
            extra={"event": "web.login", "client": client},
        )
        response = RedirectResponse(then, 303)
        response.set_cookie(
            COOKIE,
            cookie,
            max_age=int(self.sessions.max_s),
            secure=True,
            httponly=True,
            samesite="strict",
        )
        response.delete_cookie(LOGIN_COOKIE, secure=True, httponly=True, samesite="strict")
        return response

    async def logout(self, request: Request) -> Response:
        form = await self._form(request)
        cookie, session = self.guard.session(request.scope, activity=True)
        response = RedirectResponse("/login", 303)
        if session is not None and hmac.compare_digest(
            form.get("csrf", "").encode(), session.csrf.encode()
        ):
            self.sessions.close(cookie)
            await self._audit(session.user, "web.logout", {})
            response.delete_cookie(COOKIE, secure=True, httponly=True, samesite="strict")
        return response

    async def _audit(self, user: str, action: str, detail: dict[str, Any]) -> None:
        control = self.control
        entry = (control.gateway.clock.now_ms(), f"web:{user}", action, detail, "ok")
        await asyncio.to_thread(control.audit.record, *entry)
        control.events.changed()

    # -- pages

    async def page(self, request: Request) -> Response:
        """A whole page, or (``?section=``) one of its sections."""
        template, sections, title = _PAGES[request.url.path]
        _, session = self.guard.session(request.scope, activity=False)
        gateway = self.control.gateway
        status = await asyncio.to_thread(gateway.status)
        everything = (_views.HEADER, *sections)
        wanted = request.query_params.get("section")
        if wanted is not None:
            section = next((s for s in everything if s.name == wanted), None)
            if section is None:
                return Response(f"no section {wanted!r}", 404, media_type="text/plain")
            return HTMLResponse(await self._section(section, status))
        # Markup: the sections are our own templates' output, escaped by them.
        rendered = {s.name: Markup(await self._section(s, status)) for s in everything}  # noqa: S704
        # What the sections were rendered from, as the event stream sends it: the
        # script sees what changed since. ``<`` escaped: it sits in a <script> element.
        topics = await asyncio.to_thread(self.control.topics, status)
        topics_json = "{" + ",".join(f'"{k}":{v.decode()}' for k, v in topics.items()) + "}"
        return self._render(
            template,
            title=title,
            path=request.url.path,
            user=request.scope["panelfast.user"],
            csrf=session.csrf if session is not None else "",
            identity=gateway.settings.identity,
            rendered=rendered,
            topics=topics_json.replace("<", "\\u003c"),
        )

    async def _section(self, section: _views.Section, status: GatewayStatus) -> str:
        context = await section.build(self.control, status)
        return self.env.get_template(f"sections/{section.name}.html").render(
            section=section, **context
        )

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        media_type = _STATIC.get(name)
        if media_type is None:
            return Response("no such file", 404, media_type="text/plain")
        content = resources.files("panelfast.web").joinpath("static", name).read_bytes()
        return Response(content, media_type=media_type, headers={"Cache-Control": "max-age=300"})

    async def metrics(self, request: Request) -> Response:
        from panelfast.metrics import CONTENT_TYPE_LATEST, exposition

        body = await asyncio.to_thread(exposition, self.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)
