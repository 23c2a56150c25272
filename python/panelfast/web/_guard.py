"""The web listener's door: nothing is read or changed without a login.

Every request but the login page and the static files needs a live session
(:mod:`._sessions`): pages without one go to the login page, API routes are
answered ``401``. Every change (any method but GET and HEAD) also needs the
session's CSRF token in ``X-CSRF-Token``, and, when the browser says where
the request comes from (``Origin``), to come from this very host. The
session's user goes into the request's scope as ``panelfast.user``, which
the audit log records as ``web:<user>``.

``/metrics`` is also readable with HTTP basic auth (the web user and
password) for scrapers such as Prometheus. A password verified once is
remembered (an HMAC of it, keyed by a per-process secret) until the
password changes, so a scrape every 15 s does not pay argon2 each time.

Every answer carries the security headers (CSP allowing this host's scripts
and styles only, no framing, no referrer, no caching). The event stream of
a session that expires is ended (its reader then finds the login page).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import logging
import secrets
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from panelfast.web._password import PasswordFile
from panelfast.web._sessions import LoginLimiter, Session, Sessions

__all__ = ["COOKIE", "CSRF_HEADER", "SECURITY_HEADERS", "Guard", "PasswordCheck"]

log = logging.getLogger("panelfast.web")

#: ``__Host-``: the browser keeps it only if Secure, for this host, on path /.
COOKIE = "__Host-panelfast"
CSRF_HEADER = "x-csrf-token"
#: Sent by the pages' own background reads (fragments, live values): not the person's activity.
BACKGROUND_HEADER = "x-panelfast-background"

SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
_NO_STORE = (b"cache-control", b"no-store")
_SAFE_METHODS = frozenset({"GET", "HEAD"})
#: Reachable without a session; their handlers check what they need.
_OPEN_PATHS = frozenset({"/login", "/logout"})
_OPEN_PREFIXES = ("/static/",)


class PasswordCheck:
    """Verifies the web user and password, one argon2 verification at a time (each
    takes ~19 MiB), off the event loop."""

    def __init__(self, user: str, passwords: PasswordFile) -> None:
        self.user = user
        self.passwords = passwords
        self._one_at_a_time = asyncio.Semaphore(1)
        self._key = secrets.token_bytes(32)
        self._remembered: tuple[bytes, str] | None = None  # (mac, password fingerprint)

    async def check(self, user: str, password: str) -> bool:
        """Whether ``user`` and ``password`` are the web login's."""
        user_ok = hmac.compare_digest(user.encode(), self.user.encode())
        async with self._one_at_a_time:
            password_ok = await asyncio.to_thread(self.passwords.verify, password)
        return user_ok and password_ok

    async def check_basic(self, user: str, password: str) -> bool:
        """:meth:`check`, remembering the last accepted pair while the password stays."""
        mac = hmac.new(self._key, f"{user}\0{password}".encode(), hashlib.sha256).digest()
        fingerprint = self.passwords.fingerprint()
        remembered = self._remembered
        if (
            remembered is not None
            and remembered[1] == fingerprint
            and hmac.compare_digest(remembered[0], mac)
        ):
            return True
        if not await self.check(user, password):
            return False
        self._remembered = (mac, fingerprint)
        return True


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def wait_text(seconds: float) -> str:
    whole = max(1, round(seconds))
    minutes, s = divmod(whole, 60)
    return f"{minutes} min {s:02d} s" if minutes else f"{s} s"


async def _send_json(send: Send, status: int, body: dict[str, Any], extra: list[Any]) -> None:
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + extra})
    await send({"type": "http.response.body", "body": data})


class Guard:
    """ASGI middleware around the web listener's application."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        sessions: Sessions,
        passwords: PasswordFile,
        check: PasswordCheck,
        limiter: LoginLimiter,
    ) -> None:
        self.app = app
        self.sessions = sessions
        self.passwords = passwords
        self.check = check
        self.limiter = limiter

    def session(self, scope: Scope, *, activity: bool) -> tuple[str | None, Session | None]:
        """The request's cookie value and its live session, if any."""
        headers = Headers(scope=scope)
        cookie = cookie_parser(headers.get("cookie", "")).get(COOKIE)
        return cookie, self.sessions.get(cookie, self.passwords.fingerprint(), activity=activity)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _with_headers(send)
        path: str = scope["path"]
        method: str = scope["method"]
        if path in _OPEN_PATHS or path.startswith(_OPEN_PREFIXES):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        background = path == "/v1/events" or headers.get(BACKGROUND_HEADER) == "1"
        _, session = self.session(scope, activity=not background)
        user = session.user if session is not None else None
        if user is None and path == "/metrics":
            user = await self._basic(scope, headers, send)
            if user is None:
                return  # answered
        if user is None:
            await self._refuse_anonymous(scope, send, path, method, headers)
            return
        if method not in _SAFE_METHODS:
            refusal = self._csrf_refusal(session, headers)
            if refusal is not None:
                await _send_json(send, 403, {"error": "csrf", "message": refusal}, [])
                return
        scope["panelfast.user"] = user
        if path == "/v1/events" and session is not None:
            receive, send = self._until_expiry(session, receive, send)
        await self.app(scope, receive, send)

    async def _refuse_anonymous(
        self, scope: Scope, send: Send, path: str, method: str, headers: Headers
    ) -> None:
        api = path.startswith("/v1/") or path in ("/openapi.json", "/metrics")
        if method == "GET" and not api and "text/html" in headers.get("accept", ""):
            wanted = path + (f"?{scope['query_string'].decode()}" if scope["query_string"] else "")
            target = "/login?" + urllib.parse.urlencode({"next": wanted})
            await send(
                {
                    "type": "http.response.start",
                    "status": 303,
                    "headers": [(b"location", target.encode()), (b"content-length", b"0")],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        extra = [(b"www-authenticate", b'Basic realm="panelfast"')] if path == "/metrics" else []
        await _send_json(
            send,
            401,
            {
                "error": "unauthorized",
                "message": "log in first: the web pages and their API need a session "
                "(/metrics also takes the web user and password as HTTP basic auth)",
            },
            extra,
        )

    def _csrf_refusal(self, session: Session | None, headers: Headers) -> str | None:
        if session is None:  # basic auth reads /metrics only
            return "changes need a web session and its CSRF token"
        token = headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(token.encode(), session.csrf.encode()):
            return "missing or wrong CSRF token (X-CSRF-Token): reload the page"
        origin = headers.get("origin")
        if origin is not None and urllib.parse.urlsplit(origin).netloc != headers.get("host"):
            return f"a change from another site ({origin}) is refused"
        return None

    async def _basic(self, scope: Scope, headers: Headers, send: Send) -> str | None:
        """The user of a valid basic-auth header, or None (a refusal is then sent)."""
        scheme, _, encoded = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            await self._refuse_anonymous(scope, send, "/metrics", "GET", headers)
            return None
        client = client_address(scope)
        wait = self.limiter.wait_s(client)
        if wait:
            message = f"too many failed log-ins from {client}: try again in {wait_text(wait)}"
            retry = [(b"retry-after", str(round(wait) + 1).encode())]
            await _send_json(send, 429, {"error": "rate_limited", "message": message}, retry)
            return None
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user, password = "", ""
        if user and await self.check.check_basic(user, password):
            self.limiter.succeeded(client)
            return user
        self.limiter.failed(client)
        log.warning("web: basic auth refused for /metrics from %s", client)
        await _send_json(
            send,
            401,
            {"error": "unauthorized", "message": "wrong user or password"},
            [(b"www-authenticate", b'Basic realm="panelfast"')],
        )
        return None

    def _until_expiry(self, session: Session, receive: Receive, send: Send) -> tuple[Receive, Send]:
        """``receive`` and ``send`` for a response that must end with the session: once
        it has ended, the response is completed (its reader sees the stream end) and
        the application is told the client left, so it stops."""
        sessions, passwords = self.sessions, self.passwords
        started = ended = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if ended:
                return  # completed already: what the stream still sends goes nowhere
            started = started or message["type"] == "http.response.start"
            await send(message)

        async def expired() -> None:
            # Looked at every few seconds: a logout ends the stream too, and so does a
            # new password, which another process writes (no event to wait for).
            while True:
                if not sessions.alive(session, passwords.fingerprint()):
                    return
                await asyncio.sleep(min(sessions.expires_at(session) - sessions.now(), 5.0))

        async def guarded_receive() -> Message:
            nonlocal ended
            message = asyncio.ensure_future(receive())
            end = asyncio.ensure_future(expired())
            try:
                await asyncio.wait({message, end}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                end.cancel()
                if not message.done():
                    message.cancel()
            if message.done() and not message.cancelled():
                return message.result()
            if started and not ended:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            ended = True
            return {"type": "http.disconnect"}

        return guarded_receive, guarded_send


def _with_headers(send: Send) -> Callable[[Message], Awaitable[None]]:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            names = {name.lower() for name, _ in headers}
            headers += [h for h in SECURITY_HEADERS if h[0] not in names]
            if b"cache-control" not in names:
                headers.append(_NO_STORE)
            message = {**message, "headers": headers}
        await send(message)

    return wrapped
