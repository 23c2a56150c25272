"""Typed calls to the hub and the upload service (cloud protocol §5–§11).

:class:`HubClient` is what publication, remote configuration and commands
build on. Every method sends one logical request (retried by the transport),
carries the bearer token, and on ``401`` from the hub bootstraps again and
retries once (§3). Success and failure are reported to the connection's
:class:`HubAccessProvider` so the Connection status and diagnostics follow the
last attempt (§4). Failures raise the :class:`~panelfast.exceptions.CloudError`
subclass of the cloud's answer.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import httpx
import zstandard

from panelfast.cloud._transport import Transport
from panelfast.exceptions import BadCredentials, CloudError, CloudProtocolError, PayloadTooLarge

__all__ = [
    "MAX_HUB_BODY",
    "MAX_TOPOLOGY_JSON",
    "Command",
    "ConfigAnswer",
    "DataAck",
    "HubAccess",
    "HubAccessProvider",
    "HubClient",
    "TopologyAccepted",
    "UploadResult",
]

#: No request body sent to the hub may exceed this on the wire (§1).
MAX_HUB_BODY = 256_000
#: A topology larger than this (before compression) goes through the upload service (§5).
MAX_TOPOLOGY_JSON = 250_000
#: The longest long-poll the protocol allows (§6, §9).
MAX_WAIT_S = 30

JSON = "application/json"
BATCH_CONTENT_TYPE = "application/vnd.panelfast.batch+msgpack"


@dataclass(frozen=True)
class HubAccess:
    """Where the hub is and the token to use there (from the last bootstrap)."""

    device_id: str
    hub_url: str
    upload_url: str
    token: str = field(repr=False)


class HubAccessProvider(Protocol):
    """The connection: gives hub access, renews it, hears how each call went."""

    async def hub_access(self) -> HubAccess: ...

    async def renew(self, stale: HubAccess) -> HubAccess: ...

    def outcome(self, error: CloudError | None) -> None: ...

    @property
    def transport(self) -> Transport: ...


@dataclass(frozen=True)
class TopologyAccepted:
    topology_version: str


@dataclass(frozen=True)
class ConfigAnswer:
    """``new``: a document (200); ``unchanged``: 304; ``none``: no configuration yet (204)."""

    status: Literal["new", "unchanged", "none"]
    version: str | None = None
    document: dict[str, Any] | None = None


@dataclass(frozen=True)
class DataAck:
    seq: int
    duplicate: bool = False


@dataclass(frozen=True)
class Command:
    """One command of §9: ``id``, ``type`` and the whole object as sent."""

    id: str
    type: str
    body: dict[str, Any]


@dataclass(frozen=True)
class UploadResult:
    upload_id: str
    topology_version: str | None = None


def _json_body(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _json_object(response: httpx.Response, what: str) -> dict[str, Any]:
    try:
        doc = response.json()
    except ValueError:
        raise CloudProtocolError(f"the answer to {what} is not JSON") from None
    if not isinstance(doc, dict):
        raise CloudProtocolError(f"the answer to {what} is not a JSON object")
    return doc


def _int_field(doc: Mapping[str, Any], key: str, what: str) -> int:
    value = doc.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise CloudProtocolError(f"the answer to {what} has no integer {key!r}")
    return value


def _str_field(doc: Mapping[str, Any], key: str, what: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value:
        raise CloudProtocolError(f"the answer to {what} has no string {key!r}")
    return value


def _check_wait(wait_s: int) -> int:
    if not 0 <= wait_s <= MAX_WAIT_S:
        raise ValueError(f"wait_s must be 0..{MAX_WAIT_S}, not {wait_s}")
    return wait_s


class HubClient:
    """Typed hub and upload calls; see the module docstring."""

    def __init__(self, provider: HubAccessProvider) -> None:
        self._provider = provider

    async def _call(
        self,
        method: str,
        path: str,
        *,
        service: Literal["hub", "upload"] = "hub",
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        ok: Sequence[int] = (200,),
        wait_s: int | None = None,
    ) -> httpx.Response:
        if service == "hub" and content is not None and len(content) > MAX_HUB_BODY:
            raise PayloadTooLarge(
                f"a {len(content)}-byte body exceeds the hub's {MAX_HUB_BODY} bytes",
                hint="split the payload, or send it through the upload service",
            )
        try:
            access = await self._provider.hub_access()
            try:
                response = await self._send(
                    access, method, path, service, content, headers, ok, wait_s
                )
            except BadCredentials as exc:
                if exc.status != 401:  # a certificate problem: bootstrapping again cannot help
                    raise
                access = await self._provider.renew(access)
                try:
                    response = await self._send(
                        access, method, path, service, content, headers, ok, wait_s
                    )
                except BadCredentials as again:
                    if again.status == 401 and not again.hint:
                        again.hint = (
                            "the hub refused the token bootstrap just issued: the cloud's "
                            "bootstrap and hub services disagree (a cloud-side problem)"
                        )
                    raise
        except CloudError as exc:
            self._provider.outcome(exc)
            raise
        self._provider.outcome(None)
        return response

    async def _send(
        self,
        access: HubAccess,
        method: str,
        path: str,
        service: Literal["hub", "upload"],
        content: bytes | None,
        headers: Mapping[str, str] | None,
        ok: Sequence[int],
        wait_s: int | None,
    ) -> httpx.Response:
        transport = self._provider.transport
        # A long poll may take its wait on top of the usual answer time.
        timeout_s = None if wait_s is None else wait_s + transport.settings.request_timeout_s
        base = access.hub_url if service == "hub" else access.upload_url
        url = f"{base}/v1/devices/{access.device_id}{path}"
        all_headers = {"Authorization": f"Bearer {access.token}", **(headers or {})}
        return await transport.request(
            method, url, headers=all_headers, content=content, ok=ok, timeout_s=timeout_s
        )

    # §5 — topology

    async def put_topology(self, document: bytes, *, compress: bool = False) -> TopologyAccepted:
        """``PUT topology`` with the UTF-8 JSON document (≤ 250,000 bytes), optionally zstd."""
        if len(document) > MAX_TOPOLOGY_JSON:
            raise PayloadTooLarge(
                f"the topology is {len(document)} bytes, over {MAX_TOPOLOGY_JSON}",
                hint="send it with upload(kind='topology')",
            )
        headers = {"Content-Type": JSON}
        body = document
        if compress:
            body = zstandard.ZstdCompressor().compress(document)
            headers["Content-Encoding"] = "zstd"
        response = await self._call("PUT", "/topology", content=body, headers=headers, ok=(202,))
        doc = _json_object(response, "PUT topology")
        return TopologyAccepted(_str_field(doc, "topology_version", "PUT topology"))

    # §6 — remote configuration

    async def get_config(self, *, have_version: str | None, wait_s: int = 0) -> ConfigAnswer:
        """Long-poll the remote configuration newer than ``have_version``."""
        headers = {"If-None-Match": f'"{have_version}"'} if have_version is not None else {}
        response = await self._call(
            "GET",
            f"/config?wait={_check_wait(wait_s)}",
            headers=headers,
            ok=(200, 204, 304),
            wait_s=wait_s,
        )
        if response.status_code == 304:
            return ConfigAnswer("unchanged", version=have_version)
        if response.status_code == 204:
            return ConfigAnswer("none")
        doc = _json_object(response, "GET config")
        version = doc.get("version")
        if not isinstance(version, str):
            # The gateway validates the rest; without a version it cannot even report.
            raise CloudProtocolError("the remote configuration has no string 'version'")
        return ConfigAnswer("new", version=version, document=doc)

    async def report_config(
        self,
        version: str,
        status: Literal["applied", "rejected"],
        errors: Sequence[tuple[str, str]] = (),
    ) -> None:
        """Report a configuration applied or rejected, with (path, message) errors."""
        body = {
            "version": version,
            "status": status,
            "errors": [{"path": path, "message": message} for path, message in errors],
        }
        await self._call(
            "POST",
            "/config/report",
            content=_json_body(body),
            headers={"Content-Type": JSON},
            ok=(200, 204),
        )

    # §7 — data

    async def post_data(self, batch: bytes) -> DataAck:
        """Post one encoded batch (a zstd frame of MessagePack). 409 raises Conflict(expected)."""
        response = await self._call(
            "POST",
            "/data",
            content=batch,
            headers={"Content-Type": BATCH_CONTENT_TYPE, "Content-Encoding": "zstd"},
        )
        doc = _json_object(response, "POST data")
        return DataAck(_int_field(doc, "ack", "POST data"), duplicate=doc.get("duplicate") is True)

    # §8 — alarms

    async def post_alarms(self, events: Sequence[Mapping[str, Any]]) -> int:
        """Post alarm events; returns the number the cloud acknowledged."""
        response = await self._call(
            "POST",
            "/alarms",
            content=_json_body({"events": list(events)}),
            headers={"Content-Type": JSON},
        )
        return _int_field(_json_object(response, "POST alarms"), "ack", "POST alarms")

    # §9 — commands and outputs

    async def get_commands(self, *, wait_s: int = 0) -> list[Command]:
        """Long-poll the commands with no result yet, oldest first."""
        response = await self._call(
            "GET",
            f"/commands?wait={_check_wait(wait_s)}",
            wait_s=wait_s,
        )
        raw = _json_object(response, "GET commands").get("commands")
        if not isinstance(raw, list):
            raise CloudProtocolError("the answer to GET commands has no 'commands' list")
        commands: list[Command] = []
        for item in raw:
            if not isinstance(item, dict):
                raise CloudProtocolError("a command is not a JSON object")
            commands.append(
                Command(
                    id=_str_field(item, "id", "GET commands"),
                    type=_str_field(item, "type", "GET commands"),
                    body=item,
                )
            )
        return commands

    async def post_command_result(
        self,
        command_id: str,
        status: Literal["done", "rejected", "failed"],
        reason: str | None = None,
    ) -> None:
        """Post a command's result; ``reason`` is required unless ``done``."""
        if status != "done" and not reason:
            raise ValueError(f"a {status!r} result needs a reason")
        body: dict[str, str] = {"status": status}
        if reason:
            body["reason"] = reason
        await self._call(
            "POST",
            f"/commands/{_path_segment(command_id)}/result",
            content=_json_body(body),
            headers={"Content-Type": JSON},
            ok=(204, 200),
        )

    async def post_outputs(self, states: Sequence[Mapping[str, Any]]) -> None:
        """Report output state changes: ``{"output", "state", "ts", "source"}`` each."""
        await self._call(
            "POST",
            "/outputs",
            content=_json_body({"states": list(states)}),
            headers={"Content-Type": JSON},
            ok=(204, 200),
        )

    # §11 — disconnect

    async def disconnect(self) -> None:
        """Tell the hub the user disconnected (the caller makes it best effort)."""
        await self._call("POST", "/disconnect", ok=(204, 200))

    # §10 — upload service

    async def upload(
        self, kind: Literal["topology", "logs"], data: bytes, content_type: str
    ) -> UploadResult:
        """The three steps: announce (size, sha256), PUT the bytes, complete."""
        announce = {
            "kind": kind,
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "content_type": content_type,
        }
        response = await self._call(
            "POST",
            "/uploads",
            service="upload",
            content=_json_body(announce),
            headers={"Content-Type": JSON},
            ok=(201,),
        )
        doc = _json_object(response, "POST uploads")
        upload_id = _str_field(doc, "upload_id", "POST uploads")
        put_url = _str_field(doc, "put_url", "POST uploads")
        try:
            # put_url authorises the request itself: no bearer token goes with it.
            await self._provider.transport.request(
                "PUT", put_url, content=data, headers={"Content-Type": content_type}, ok=(201,)
            )
        except CloudError as exc:
            self._provider.outcome(exc)
            raise
        response = await self._call(
            "POST", f"/uploads/{_path_segment(upload_id)}/complete", service="upload"
        )
        done = _json_object(response, "POST uploads complete")
        version = done.get("topology_version")
        return UploadResult(upload_id, str(version) if version is not None else None)


def _path_segment(value: str) -> str:
    """An id from the cloud, safe as one URL path segment."""
    if not value or "/" in value or value in (".", "..") or any(c in value for c in "?#%"):
        raise CloudProtocolError(f"{value!r} cannot be used in a URL path")
    return value
