"""The ASGI layer in front of the spec routes: which service a request is for,
the body size limits (spec §1: 413 over 256,000 bytes on the wire for the hub),
the port each service listens on, and injected faults (503, 429, delay, drop).

It runs before the body is read, so an oversized body is refused without being
buffered, and a dropped connection is closed without any answer.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from fastapi import FastAPI
from starlette.responses import JSONResponse
from starlette.types import Message, Receive, Scope, Send

from panelfast.refcloud.state import CloudState

__all__ = ["HUB_BODY_LIMIT", "UPLOAD_BODY_LIMIT", "Guard", "classify", "error_response"]

HUB_BODY_LIMIT = 256_000
UPLOAD_BODY_LIMIT = 64 * 1024 * 1024
_SMALL_BODY_LIMIT = 256_000

_DEV = r"/v1/devices/[^/]+"
_ROUTES: tuple[tuple[str, str, re.Pattern[str]], ...] = tuple(
    (service, route, re.compile(pattern))
    for service, route, pattern in (
        ("bootstrap", "bootstrap", r"^/bootstrap/v1/bootstrap$"),
        ("hub", "topology", rf"^/hub{_DEV}/topology$"),
        ("hub", "config", rf"^/hub{_DEV}/config$"),
        ("hub", "config_report", rf"^/hub{_DEV}/config/report$"),
        ("hub", "data", rf"^/hub{_DEV}/data$"),
        ("hub", "alarms", rf"^/hub{_DEV}/alarms$"),
        ("hub", "commands", rf"^/hub{_DEV}/commands$"),
        ("hub", "command_result", rf"^/hub{_DEV}/commands/[^/]+/result$"),
        ("hub", "outputs", rf"^/hub{_DEV}/outputs$"),
        ("hub", "disconnect", rf"^/hub{_DEV}/disconnect$"),
        ("upload", "upload_create", rf"^/upload{_DEV}/uploads$"),
        ("upload", "upload_complete", rf"^/upload{_DEV}/uploads/[^/]+/complete$"),
        ("upload", "upload_put", r"^/upload/v1/blobs/[^/]+$"),
    )
)


def classify(path: str) -> tuple[str, str] | None:
    """``(service, route)`` of a spec path; ``(service, "")`` for an unknown one; else None."""
    for service, route, pattern in _ROUTES:
        if pattern.match(path):
            return service, route
    for service in ("bootstrap", "hub", "upload"):
        if path.startswith(f"/{service}/"):
            return service, ""
    return None


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """The spec's error body ``{"error": CODE, "message": TEXT}`` (plus ``extra``)."""
    return JSONResponse({"error": code, "message": message, **(extra or {})}, status, headers)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class Guard:
    """ASGI middleware: routing checks, faults and size limits for the spec routes."""

    def __init__(self, app: FastAPI, state: CloudState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        kind = classify(scope["path"])
        if kind is None:
            await self.app(scope, receive, send)
            return
        service, route = kind
        self.state.requests.append((time.time(), service, route, scope["path"]))
        port_services = self.state.port_services
        server = scope.get("server")
        if port_services and server is not None:
            served = port_services.get(server[1])
            if served is not None and served != service:
                await error_response(404, "not_found", f"this port serves {served}, not {service}")(
                    scope, receive, send
                )
                return
        fault = self.state.faults.take(service, route)
        if fault is not None:
            if fault.kind == "unavailable":
                await error_response(503, "unavailable", "injected fault: service unavailable")(
                    scope, receive, send
                )
                return
            if fault.kind == "rate_limited":
                await error_response(
                    429,
                    "rate_limited",
                    f"injected fault: retry after {fault.retry_after_s} s",
                    headers={"Retry-After": str(fault.retry_after_s)},
                )(scope, receive, send)
                return
            if fault.kind == "drop":
                await self._drop(send)
                return
            await asyncio.sleep(fault.delay_s)
        limit = (
            UPLOAD_BODY_LIMIT
            if route == "upload_put"
            else HUB_BODY_LIMIT
            if service == "hub"
            else _SMALL_BODY_LIMIT
        )
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await self._too_large(limit, scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            size += len(body)
            if size > limit:
                await self._too_large(limit, scope, receive, send)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        whole = b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": whole, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def _too_large(limit: int, scope: Scope, receive: Receive, send: Send) -> None:
        await error_response(
            413,
            "payload_too_large",
            f"request body over {limit} bytes",
            headers={"Connection": "close"},
        )(scope, receive, send)

    @staticmethod
    async def _drop(send: Send) -> None:
        """Close the connection without answering.

        uvicorn's ``send`` is a method of the request cycle, which holds the
        connection's transport; aborting it resets the TCP connection mid-request.
        """
        cycle = getattr(send, "__self__", None)
        transport = getattr(cycle, "transport", None)
        if transport is None:
            raise RuntimeError("dropping a connection needs the uvicorn server")
        transport.abort()
        # Let the server see the connection is gone before the app returns, so it
        # does not try to answer on it.
        await asyncio.sleep(0.05)
