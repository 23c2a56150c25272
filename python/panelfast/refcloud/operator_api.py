"""The operator's HTTP API, ``/operator/...``: what the CLI and out-of-process tests use.

Protected by the operator token (``<state>/operator_token``, 0600), which is
not a device token: a gateway's token gets ``401`` here and this token gets
``401`` on the hub.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from panelfast.exceptions import RefCloudRequestError
from panelfast.refcloud.faults import FaultKind
from panelfast.refcloud.operator import Operator
from panelfast.refcloud.state import CloudState

__all__ = ["operator_router"]


class EnrolRequest(BaseModel):
    serial: str
    claim_key: str | None = None


class ConfigRequest(BaseModel):
    document: dict[str, Any]
    raw: bool = False
    check: bool = False


class GenerateRequest(BaseModel):
    period_s: Annotated[int, Field(ge=1)]
    publisher_period_s: Annotated[int, Field(ge=1)] | None = None
    devices: list[str] | None = None
    alarms: list[dict[str, Any]] = Field(default_factory=list)


class FaultRequest(BaseModel):
    kind: FaultKind
    target: str = "*"
    count: Annotated[int, Field(ge=1)] = 1
    retry_after_s: Annotated[int, Field(ge=0)] = 1
    delay_s: Annotated[float, Field(ge=0)] = 1.0


class ExpireRequest(BaseModel):
    serial: str | None = None


def operator_router(state: CloudState) -> APIRouter:
    operator = Operator(state)

    def authorized(request: Request) -> None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), state.operator_token.encode()
        ):
            raise RefCloudRequestError(401, "bad_credentials", "operator token required")

    router = APIRouter(prefix="/operator", tags=["operator"], dependencies=[Depends(authorized)])

    @router.get("/status")
    async def status() -> dict[str, Any]:
        return {
            "bootstrap_url": state.bootstrap_url,
            "hub_url": state.hub_url,
            "upload_url": state.upload_url,
            "faults": operator.faults(),
        }

    @router.post("/enrolments", status_code=201)
    async def enrol(body: EnrolRequest) -> dict[str, str]:
        key = operator.enrol(body.serial, body.claim_key)
        return {
            "serial": body.serial,
            "claim_key": key,
            "device_id": operator.device_id(body.serial),
        }

    @router.get("/enrolments")
    async def enrolments() -> list[dict[str, Any]]:
        return operator.enrolments()

    @router.delete("/enrolments/{serial}", status_code=204, response_class=Response)
    async def de_enrol(serial: str) -> Response:
        operator.de_enrol(serial)
        return Response(status_code=204)

    @router.post("/tokens/expire")
    async def expire(body: ExpireRequest) -> dict[str, int]:
        return {"expired": operator.expire_tokens(body.serial)}

    @router.post("/devices/{serial}/config")
    async def set_config(serial: str, body: ConfigRequest) -> dict[str, Any]:
        return operator.set_config(serial, body.document, raw=body.raw, check=body.check)

    @router.post("/devices/{serial}/config/generate")
    async def generate(serial: str, body: GenerateRequest) -> dict[str, Any]:
        return operator.generate_config(
            serial,
            period_s=body.period_s,
            publisher_period_s=body.publisher_period_s,
            devices=body.devices,
            alarms=body.alarms,
        )

    @router.post("/devices/{serial}/commands", status_code=201)
    async def queue_command(serial: str, body: dict[str, Any], raw: bool = False) -> dict[str, Any]:
        return operator.queue_command(serial, body, raw=raw)

    @router.get("/devices/{serial}")
    async def inspect(serial: str) -> dict[str, Any]:
        return operator.inspect(serial)

    @router.get("/devices/{serial}/sample-counts")
    async def sample_counts(serial: str) -> list[tuple[str, int, int]]:
        counts = operator.sample_counts(serial)
        return [(name, t, n) for (name, t), n in sorted(counts.items())]

    @router.get("/devices/{serial}/samples")
    async def samples(serial: str) -> dict[str, list[tuple[int, float | int | None]]]:
        return operator.samples(serial)

    @router.get("/devices/{serial}/batches")
    async def batches(serial: str) -> list[dict[str, Any]]:
        return operator.batches(serial)

    @router.get("/requests")
    async def requests(since: float = 0.0) -> list[tuple[float, str, str, str]]:
        """The spec requests received since ``since`` (unix s): time, service, route, path."""
        return operator.requests(since)

    @router.get("/uploads/{upload_id}", response_class=Response)
    async def upload_bytes(upload_id: str) -> Response:
        return Response(operator.upload_bytes(upload_id), media_type="application/octet-stream")

    @router.post("/faults", status_code=201)
    async def inject_fault(body: FaultRequest) -> dict[str, Any]:
        return operator.inject_fault(
            body.kind,
            body.target,
            body.count,
            retry_after_s=body.retry_after_s,
            delay_s=body.delay_s,
        )

    @router.get("/faults")
    async def faults() -> list[dict[str, Any]]:
        return operator.faults()

    @router.delete("/faults", status_code=204, response_class=Response)
    async def clear_faults() -> Response:
        operator.clear_faults()
        return Response(status_code=204)

    return router
