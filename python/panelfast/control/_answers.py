"""How the control API's routes answer: JSON by the API's types, errors, text when asked.

Its own module so that every family of routes (:mod:`._outputs`,
:mod:`._cloud`, …) and :class:`~panelfast.control._app.ControlApp`, which
gathers them, import it without importing each other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import TypeAdapter
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from panelfast.exceptions import ConfigError, PublicationConflict

__all__ = [
    "answer",
    "caller",
    "encode",
    "error",
    "invalid_setting",
    "json_answer",
    "publication_conflict",
    "wants_text",
]

# One adapter per API type, made on first use: building one costs more than
# the answers it serves.
_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def encode(value: object, kind: Any) -> bytes:
    """``value`` as JSON, by its API type (see :mod:`._schema`)."""
    adapter = _ADAPTERS.get(kind)
    if adapter is None:
        adapter = _ADAPTERS[kind] = TypeAdapter(kind)
    return adapter.dump_json(value)


def json_answer(value: object, kind: Any, status: int = 200) -> Response:
    """``value`` as the JSON answer of its API type."""
    return Response(encode(value, kind), status, media_type="application/json")


T = TypeVar("T")


def answer(request: Request, value: T, kind: Any, text: Callable[[T], str]) -> Response:
    """``value`` as the CLI prints it (``text``) when the client asks for text, else as
    the JSON answer of its API type: every reading route answers both ways."""
    if wants_text(request):
        return PlainTextResponse(text(value))
    return json_answer(value, kind)


def error(status: int, error: str, message: str, **more: object) -> JSONResponse:
    """An error answer: a machine-readable ``error``, a ``message`` for people, and details."""
    return JSONResponse({"error": error, "message": message, **more}, status)


def invalid_setting(exc: ConfigError) -> Response:
    """A refused value, with each issue's setting path (400 ``invalid_setting``)."""
    issues = [{"path": i.key, "message": i.message} for i in exc.issues]
    return error(400, "invalid_setting", str(exc), issues=issues)


def publication_conflict(exc: PublicationConflict) -> Response:
    """A change the publication method forbids (409), with what to turn off first."""
    return error(409, "publication_conflict", str(exc), hint=exc.hint, turn_off=exc.turn_off)


def wants_text(request: Request) -> bool:
    """Whether the client asked for what the CLI prints rather than JSON."""
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
