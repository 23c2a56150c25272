"""The reference cloud's HTTP application: every route of cloud protocol v1.

The three services live under distinct base paths of one application
(``/bootstrap``, ``/hub``, ``/upload``), served on one port or on one port each
(see :mod:`panelfast.refcloud.server`); the operator API is under ``/operator``
and the operator page under ``/operator/web/``.
Bodies are parsed by hand rather than by FastAPI so that the content type, the
encoding and every malformation answer the spec's ``400 invalid_payload``; the
pydantic models still describe them in the published OpenAPI document.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from panelfast.exceptions import RefCloudError, RefCloudRequestError
from panelfast.refcloud import models as m
from panelfast.refcloud.batch import IssuedConfigs, check_batch, decode_batch
from panelfast.refcloud.documents import MAX_TOPOLOGY_BYTES, decode_topology, pydantic_issues
from panelfast.refcloud.documents import topology_version as version_of
from panelfast.refcloud.guard import Guard, error_response
from panelfast.refcloud.operator_api import operator_router
from panelfast.refcloud.state import CloudState
from panelfast.refcloud.storage import DeviceRecord
from panelfast.refcloud.tls import write_secret
from panelfast.refcloud.web import operator_pages

__all__ = ["BATCH_MEDIA_TYPE", "create_app"]

BATCH_MEDIA_TYPE = "application/vnd.panelfast.batch+msgpack"
_M = TypeVar("_M", bound=BaseModel)

#: Every data conflict (409) is logged here: a gateway that reuses a taken
#: ``seq`` with other content breaks §7, and tests watch this logger for it.
log = logging.getLogger(__name__)

_DESCRIPTIONS = {
    400: "invalid_payload: the request is malformed",
    401: "bad_credentials or token_expired",
    403: "device_not_registered",
    404: "not_found",
    409: "conflict",
    413: "payload_too_large",
    429: "rate_limited (see Retry-After)",
    503: "unavailable",
}


def _errors(*statuses: int, seq_conflict: bool = False) -> dict[int | str, dict[str, Any]]:
    """The documented error answers of a route; the data route's 409 names ``expected``."""
    faults = (429, 503)
    return {
        s: {
            "model": m.ConflictBody if s == 409 and seq_conflict else m.ErrorBody,
            "description": _DESCRIPTIONS[s],
        }
        for s in (*statuses, *faults)
    }


_HUB_ERRORS = (400, 401, 403, 404, 413)


def _json_request(model: type[BaseModel]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
            },
        }
    }


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _bad(message: str) -> RefCloudRequestError:
    return RefCloudRequestError(400, "invalid_payload", message)


def _wait_s(request: Request) -> int:
    """The long poll's ``wait``: once at most, a plain integer 0..30 (``1.0`` is not)."""
    values = request.query_params.getlist("wait")
    if not values:
        return 0
    if len(values) > 1:
        raise _bad("wait is given more than once")
    if not re.fullmatch(r"[0-9]{1,2}", values[0]) or int(values[0]) > 30:
        raise _bad(f"wait must be an integer from 0 to 30, got {values[0]!r}")
    return int(values[0])


async def _json_body(request: Request, model: type[_M]) -> _M:
    """The request's JSON body as ``model``, or ``400 invalid_payload`` saying why not."""
    if _media_type(request) != "application/json":
        raise _bad(
            f"Content-Type must be application/json, got {request.headers.get('content-type')!r}"
        )
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding != "identity":
        raise _bad(f"Content-Encoding {encoding!r} is not accepted on this route")
    raw = await request.body()
    try:
        document = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise _bad(f"body is not UTF-8: {err}") from None
    except json.JSONDecodeError as err:
        raise _bad(f"body is not JSON: {err}") from None
    try:
        return model.model_validate(document)
    except ValidationError as err:
        raise _bad(pydantic_issues(err)) from None


def _same_gateway(document: dict[str, Any], device: DeviceRecord) -> None:
    """A gateway publishes its own topology: ``gateway.serial`` is its serial."""
    serial = document["gateway"]["serial"]
    if serial != device.serial:
        raise _bad(f"gateway.serial {serial!r} is not this device's serial {device.serial!r}")


def create_app(state: CloudState) -> Guard:
    """The ASGI application of one reference cloud over ``state``.

    The FastAPI application (routes, OpenAPI document) is ``create_app(...).app``.
    """
    storage = state.storage

    def issued_config(device_id: str, version: str) -> dict[str, Any] | None:
        config = storage.config(device_id, version)
        return None if config is None else config.document

    issued = IssuedConfigs(issued_config)
    settings = state.settings

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        state.signals.bind(asyncio.get_running_loop())
        yield
        state.signals.wake_all()

    app = FastAPI(
        title="panelfast reference cloud",
        version="1",
        description="Cloud protocol v1 (spec/cloud-protocol.md), plus an operator API.",
        lifespan=lifespan,
    )

    # -- errors ---------------------------------------------------------------------

    @app.exception_handler(RefCloudRequestError)
    async def _on_request_error(_r: Request, err: RefCloudRequestError) -> Response:
        return error_response(
            err.status, err.code, err.message, extra=err.extra, headers=err.headers
        )

    @app.exception_handler(RefCloudError)
    async def _on_operator_error(_r: Request, err: RefCloudError) -> Response:
        return error_response(400, "invalid_payload", str(err))

    @app.exception_handler(RequestValidationError)
    async def _on_validation(_r: Request, err: RequestValidationError) -> Response:
        parts = []
        for issue in list(err.errors())[:5]:
            where = ".".join(str(p) for p in issue.get("loc", ())) or "request"
            parts.append(f"{where}: {issue.get('msg', 'invalid')}")
        return error_response(400, "invalid_payload", "; ".join(parts) or "invalid request")

    @app.exception_handler(Exception)
    async def _on_bug(_r: Request, err: Exception) -> Response:
        # A bug of this cloud: still the spec's error body (the traceback is logged).
        return error_response(500, "internal_error", f"{type(err).__name__} in the cloud")

    @app.exception_handler(StarletteHTTPException)
    async def _on_http(_r: Request, err: StarletteHTTPException) -> Response:
        if err.status_code == 404:
            return error_response(404, "not_found", "no such route")
        if err.status_code == 405:
            return error_response(405, "method_not_allowed", "method not allowed on this route")
        return error_response(err.status_code, "error", str(err.detail))

    # -- credentials ----------------------------------------------------------------

    def authorize(request: Request, device_id: str) -> DeviceRecord:
        """The device a bearer token stands for, checked against the path's device id."""
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise RefCloudRequestError(401, "bad_credentials", "Authorization: Bearer required")
        found = storage.token(token.strip())
        if found is None:
            raise RefCloudRequestError(401, "bad_credentials", "token not issued by this cloud")
        owner, expires_at = found
        if owner != device_id:
            raise RefCloudRequestError(
                401, "bad_credentials", f"token was not issued for device {device_id}"
            )
        device = storage.device_by_id(owner)
        if device is None or not device.enrolled:
            raise RefCloudRequestError(
                403, "device_not_registered", "this device's serial is no longer enrolled"
            )
        if expires_at <= state.now():
            raise RefCloudRequestError(401, "token_expired", "token expired: bootstrap again")
        state.presence.seen(device_id)
        return device

    # -- bootstrap (spec §3) -----------------------------------------------------------

    boot = APIRouter(prefix="/bootstrap", tags=["bootstrap"])

    @boot.post(
        "/v1/bootstrap",
        response_model=m.BootstrapResponse,
        responses=_errors(400, 401, 403, 413),
        openapi_extra=_json_request(m.BootstrapRequest),
    )
    async def bootstrap(
        request: Request,
        x_pf_serial: Annotated[str, Header()],
        x_pf_timestamp: Annotated[str, Header(pattern=r"^-?[0-9]{1,15}$")],
        x_pf_signature: Annotated[str, Header(pattern=r"^[0-9a-fA-F]{64}$")],
    ) -> m.BootstrapResponse:
        body = await _json_body(request, m.BootstrapRequest)
        if body.serial != x_pf_serial:
            raise _bad("body serial differs from X-PF-Serial")
        device = storage.device_by_serial(x_pf_serial)
        if device is None or not device.enrolled:
            raise RefCloudRequestError(
                403, "device_not_registered", f"serial {x_pf_serial} is not enrolled"
            )
        skew = state.now() - int(x_pf_timestamp)
        if abs(skew) > settings.max_skew_s:
            raise RefCloudRequestError(
                401,
                "bad_credentials",
                f"clock skew of {skew:.0f} s is over {settings.max_skew_s} s",
            )
        expected = hmac.new(
            bytes.fromhex(device.claim_key),
            f"{x_pf_serial}\n{x_pf_timestamp}".encode(),
            hashlib.sha256,
        ).hexdigest()
        if not hmac.compare_digest(expected, x_pf_signature.lower()):
            raise RefCloudRequestError(401, "bad_credentials", "claim signature does not verify")
        storage.record_bootstrap(device.device_id, body.model, body.firmware, body.mac)
        state.presence.seen(device.device_id, clock_skew_s=skew)
        token, expires_at = storage.issue_token(
            device.device_id, settings.token_lifetime_s, now=state.now()
        )
        return m.BootstrapResponse(
            device_id=device.device_id,
            hub_url=state.hub_url,
            upload_url=state.upload_url,
            token=token,
            token_expires_at=expires_at,
            ntp_server=settings.ntp_server,
            data_seq=storage.last_seq(device.device_id),
        )

    # -- hub (spec §5-§9, §11) ------------------------------------------------------------

    hub = APIRouter(prefix="/hub/v1/devices/{device_id}", tags=["hub"])

    @hub.put(
        "/topology",
        status_code=202,
        response_model=m.TopologyVersion,
        responses=_errors(*_HUB_ERRORS),
        openapi_extra=_json_request(m.Topology),
    )
    async def put_topology(request: Request, device_id: str) -> m.TopologyVersion:
        device = authorize(request, device_id)
        if _media_type(request) != "application/json":
            raise _bad("Content-Type must be application/json")
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("identity", "zstd"):
            raise _bad(f"Content-Encoding {encoding!r}: only zstd is accepted")
        document = decode_topology(
            await request.body(), zstd=encoding == "zstd", limit=MAX_TOPOLOGY_BYTES
        )
        _same_gateway(document, device)
        version = version_of(document)
        storage.store_topology(device_id, version, json.dumps(document), "hub")
        return m.TopologyVersion(topology_version=version)

    def _if_none_match(request: Request) -> str | None:
        header = request.headers.get("if-none-match")
        if header is None:
            return None
        value = header.strip()
        if value.startswith("W/"):
            value = value[2:]
        if len(value) < 2 or value[0] != '"' or value[-1] != '"' or '"' in value[1:-1]:
            raise _bad(f'If-None-Match must be "<version>", got {header!r}')
        return value[1:-1]

    @hub.get(
        "/config",
        response_model=None,
        responses={
            200: {
                "description": "the latest remote configuration",
                "content": {"application/json": {"schema": {"type": "object"}}},
                "headers": {"ETag": {"schema": {"type": "string"}}},
            },
            204: {"description": "no configuration exists yet"},
            304: {"description": "nothing newer than If-None-Match"},
            **_errors(400, 401, 403, 404),
        },
    )
    async def get_config(
        request: Request,
        device_id: str,
        wait: Annotated[int, Query(ge=0, le=30)] = 0,
        if_none_match: Annotated[str | None, Header()] = None,
    ) -> Response:
        authorize(request, device_id)
        held = _if_none_match(request)
        deadline = time.monotonic() + min(_wait_s(request), settings.max_wait_s)
        with state.presence.polling(device_id):
            while True:
                event = state.signals.event(device_id, "config")
                latest = storage.latest_config(device_id)
                remaining = 0.0 if state.signals.closing else deadline - time.monotonic()
                if latest is not None and latest.version != held:
                    return JSONResponse(latest.document, headers={"ETag": f'"{latest.version}"'})
                if remaining <= 0:
                    if latest is None:
                        return Response(status_code=204)
                    return Response(status_code=304, headers={"ETag": f'"{latest.version}"'})
                await state.signals.wait(event, remaining)
                authorize(request, device_id)

    @hub.post(
        "/config/report",
        status_code=204,
        response_class=Response,
        responses=_errors(*_HUB_ERRORS),
        openapi_extra=_json_request(m.ConfigReport),
    )
    async def config_report(request: Request, device_id: str) -> Response:
        authorize(request, device_id)
        report = await _json_body(request, m.ConfigReport)
        storage.record_report(
            device_id, report.version, report.status, [e.model_dump() for e in report.errors]
        )
        return Response(status_code=204)

    @hub.post(
        "/data",
        response_model=m.DataAck,
        response_model_exclude_none=True,
        responses=_errors(*_HUB_ERRORS, 409, seq_conflict=True),
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {BATCH_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
            }
        },
    )
    async def post_data(request: Request, device_id: str) -> m.DataAck:
        authorize(request, device_id)
        if _media_type(request) != BATCH_MEDIA_TYPE:
            raise _bad(f"Content-Type must be {BATCH_MEDIA_TYPE}")
        if request.headers.get("content-encoding", "").strip().lower() != "zstd":
            raise _bad("Content-Encoding must be zstd")
        body = await request.body()
        batch = decode_batch(body)
        version = batch.get("config_version")
        config = issued.get(device_id, version) if isinstance(version, str) else None
        if config is None:
            raise _bad(f"config_version {version!r} was never issued to this device")
        checked = check_batch(batch, config)
        # No await from here on: the check of the sequence and the store are atomic.
        expected = storage.last_seq(device_id) + 1
        if checked.seq < expected:
            if storage.batch_digest(device_id, checked.seq) == checked.digest:
                storage.count_duplicate(device_id, checked.seq)
                return m.DataAck(ack=checked.seq, duplicate=True)
            log.warning(
                "device %s: data seq %d is taken by other content (expected %d)",
                device_id,
                checked.seq,
                expected,
            )
            raise RefCloudRequestError(
                409,
                "conflict",
                f"seq {checked.seq} is taken by other content",
                extra={"expected": expected},
            )
        if checked.seq > expected:
            log.warning(
                "device %s: data seq %d is beyond the expected %d",
                device_id,
                checked.seq,
                expected,
            )
            raise RefCloudRequestError(
                409,
                "conflict",
                f"seq {checked.seq} is beyond the expected {expected}",
                extra={"expected": expected},
            )
        storage.store_batch(
            device_id, checked.seq, checked.digest, body, checked.config_version, checked.groups
        )
        return m.DataAck(ack=checked.seq)

    @hub.post(
        "/alarms",
        response_model=m.AckBody,
        responses=_errors(*_HUB_ERRORS, 409),
        openapi_extra=_json_request(m.AlarmsRequest),
    )
    async def post_alarms(request: Request, device_id: str) -> m.AckBody:
        authorize(request, device_id)
        body = await _json_body(request, m.AlarmsRequest)
        events: dict[str, str] = {}
        for i, event in enumerate(body.events):
            content = json.dumps(event.model_dump(), sort_keys=True)
            if events.get(event.id, content) != content:
                raise RefCloudRequestError(
                    409, "conflict", f"events[{i}]: id {event.id} twice with other content"
                )
            events[event.id] = content
        stored = storage.alarm_event_contents(list(events))
        for event_id, (owner, content) in stored.items():
            if owner != device_id or content != events[event_id]:
                raise RefCloudRequestError(
                    409, "conflict", f"event {event_id} is already stored with other content"
                )
        storage.store_alarm_events(device_id, list(events.items()))
        return m.AckBody(ack=len(body.events))

    @hub.get(
        "/commands",
        response_model=m.CommandsResponse,
        responses=_errors(400, 401, 403, 404),
    )
    async def get_commands(
        request: Request, device_id: str, wait: Annotated[int, Query(ge=0, le=30)] = 0
    ) -> m.CommandsResponse:
        authorize(request, device_id)
        deadline = time.monotonic() + min(_wait_s(request), settings.max_wait_s)
        with state.presence.polling(device_id):
            while True:
                event = state.signals.event(device_id, "commands")
                commands = storage.pending_commands(device_id)
                remaining = 0.0 if state.signals.closing else deadline - time.monotonic()
                if commands or remaining <= 0:
                    return m.CommandsResponse(commands=commands)
                await state.signals.wait(event, remaining)
                authorize(request, device_id)

    @hub.post(
        "/commands/{command_id}/result",
        status_code=204,
        response_class=Response,
        responses=_errors(*_HUB_ERRORS, 409),
        openapi_extra=_json_request(m.CommandResult),
    )
    async def command_result(request: Request, device_id: str, command_id: str) -> Response:
        authorize(request, device_id)
        result = await _json_body(request, m.CommandResult)
        if result.status != "done" and result.reason is None:
            raise _bad(f"reason is required when status is {result.status}")
        command = storage.command(device_id, command_id)
        if command is None:
            raise RefCloudRequestError(404, "not_found", f"no command {command_id}")
        if command.result_status is not None:
            if (command.result_status, command.result_reason) == (result.status, result.reason):
                return Response(status_code=204)
            raise RefCloudRequestError(
                409,
                "conflict",
                f"command {command_id} already has result {command.result_status}",
            )
        storage.set_result(device_id, command_id, result.status, result.reason)
        return Response(status_code=204)

    @hub.post(
        "/outputs",
        status_code=204,
        response_class=Response,
        responses=_errors(*_HUB_ERRORS),
        openapi_extra=_json_request(m.OutputsRequest),
    )
    async def post_outputs(request: Request, device_id: str) -> Response:
        authorize(request, device_id)
        body = await _json_body(request, m.OutputsRequest)
        storage.store_output_states(device_id, [s.model_dump() for s in body.states])
        return Response(status_code=204)

    @hub.post(
        "/disconnect",
        status_code=204,
        response_class=Response,
        responses=_errors(401, 403, 404, 413),
    )
    async def disconnect(request: Request, device_id: str) -> Response:
        authorize(request, device_id)
        storage.record_disconnect(device_id)
        return Response(status_code=204)

    # -- upload service (spec §10) --------------------------------------------------------

    upload = APIRouter(prefix="/upload/v1", tags=["upload"])

    def _signature(upload_id: str, expires: int) -> str:
        message = f"{upload_id}\n{expires}".encode()
        return hmac.new(state.upload_secret, message, hashlib.sha256).hexdigest()

    @upload.post(
        "/devices/{device_id}/uploads",
        status_code=201,
        response_model=m.UploadCreated,
        responses=_errors(400, 401, 403, 404, 413),
        openapi_extra=_json_request(m.UploadRequest),
    )
    async def create_upload(request: Request, device_id: str) -> m.UploadCreated:
        authorize(request, device_id)
        body = await _json_body(request, m.UploadRequest)
        upload_id = storage.create_upload(
            device_id, body.kind, body.size, body.sha256, body.content_type
        )
        expires = int(state.now()) + settings.upload_url_lifetime_s
        put_url = (
            f"{state.upload_url}/v1/blobs/{upload_id}"
            f"?expires={expires}&sig={_signature(upload_id, expires)}"
        )
        return m.UploadCreated(upload_id=upload_id, put_url=put_url)

    @upload.put(
        "/blobs/{upload_id}",
        status_code=201,
        response_class=Response,
        responses={
            201: {"description": "bytes stored"},
            **_errors(400, 401, 404, 409, 413),
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
            }
        },
    )
    async def put_blob(
        request: Request,
        upload_id: str,
        expires: Annotated[int, Query()],
        sig: Annotated[str, Query()],
    ) -> Response:
        given = sig.lower().encode("utf-8", "replace")
        if not hmac.compare_digest(_signature(upload_id, expires).encode(), given):
            raise RefCloudRequestError(401, "bad_credentials", "put_url signature does not verify")
        if expires < state.now():
            raise RefCloudRequestError(
                401, "token_expired", "put_url expired: create the upload again"
            )
        record = storage.upload(upload_id)
        if record is None:
            raise RefCloudRequestError(404, "not_found", f"no upload {upload_id}")
        if record.completed:
            raise RefCloudRequestError(409, "conflict", f"upload {upload_id} is already complete")
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if encoding != "identity":
            raise _bad(f"upload bytes go as they are, not with Content-Encoding {encoding!r}")
        data = await request.body()
        write_secret(state.upload_dir / upload_id, data)  # logs may say more than they should
        storage.record_upload_bytes(upload_id, len(data), hashlib.sha256(data).hexdigest())
        return Response(status_code=201)

    @upload.post(
        "/devices/{device_id}/uploads/{upload_id}/complete",
        response_model=m.UploadComplete,
        response_model_exclude_none=True,
        responses=_errors(400, 401, 403, 404, 413),
    )
    async def complete_upload(request: Request, device_id: str, upload_id: str) -> m.UploadComplete:
        device = authorize(request, device_id)
        record = storage.upload(upload_id)
        if record is None or record.device_id != device_id:
            raise RefCloudRequestError(404, "not_found", f"no upload {upload_id} for this device")
        if record.completed:
            return m.UploadComplete(upload_id=upload_id, topology_version=record.topology_version)
        if record.received_size is None:
            raise _bad(f"nothing was PUT to upload {upload_id}")
        if record.received_size != record.size:
            raise _bad(f"received {record.received_size} bytes, announced {record.size}")
        if record.received_sha256 != record.sha256:
            raise _bad("sha256 of the received bytes differs from the announced one")
        version = None
        if record.kind == "topology":
            data = (state.upload_dir / upload_id).read_bytes()
            document = decode_topology(data, zstd=False, limit=None)
            _same_gateway(document, device)
            version = version_of(document)
            storage.store_topology(device_id, version, json.dumps(document), "upload")
        storage.complete_upload(upload_id, version)
        return m.UploadComplete(upload_id=upload_id, topology_version=version)

    app.include_router(boot)
    app.include_router(hub)
    app.include_router(upload)

    app.include_router(operator_router(state))
    app.include_router(operator_pages(state))
    _publish_openapi(app)
    return Guard(app, state)


def _publish_openapi(app: FastAPI) -> None:
    """Add the hand-parsed bodies' schemas, and drop FastAPI's unused 422 answers."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (
            m.BootstrapRequest,
            m.Topology,
            m.ConfigReport,
            m.AlarmsRequest,
            m.CommandResult,
            m.OutputsRequest,
            m.UploadRequest,
        ):
            doc = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, definition in doc.pop("$defs", {}).items():
                components.setdefault(name, definition)
            components[model.__name__] = doc
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                operation.get("responses", {}).pop("422", None)
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
