"""The control API's types and its OpenAPI document, generated from them.

The answers are the Python API's own types (``GatewayStatus``,
``CloudStatus``, ``Backlog``...): the document below is derived from them by
pydantic, so the schema, the server and the typed client cannot drift apart.
``python -m panelfast.control._schema`` writes ``openapi.json`` beside this
module; a test checks the committed file is the generated one.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import TypeAdapter

from panelfast.acquisition import DeviceDiagnostics, MeasurementReading
from panelfast.cloud import CloudStatus, FirewallRule
from panelfast.commands import (
    RISK,
    HistoryEntry,
    OutputInfo,
    RemoteControlStatus,
    StoredSchedule,
    SwitchResult,
)
from panelfast.config import PublicationMethod
from panelfast.control._audit import AuditEntry
from panelfast.gateway import GatewayStatus
from panelfast.publication import EmailSetup, MailStatus
from panelfast.publisher import Backlog
from panelfast.reload import ReloadOutcome
from panelfast.remote_config import ApplyProgress, ReceivedVersion, RemoteConfigStatus

__all__ = [
    "API_TYPES",
    "ConfigOutcome",
    "DeviceStatus",
    "PublicationInfo",
    "PublicationSwitched",
    "SmtpReply",
    "TestEmailSent",
    "openapi_document",
]

OPENAPI_FILE = Path(__file__).with_name("openapi.json")


@dataclass(frozen=True, slots=True)
class PathError:
    path: str
    message: str


@dataclass(frozen=True, slots=True)
class ConfigOutcome:
    """One remote configuration received, and what became of it."""

    version: str
    status: Literal["applied", "rejected"]
    errors: tuple[PathError, ...]
    received_at: str

    @classmethod
    def of(cls, received: ReceivedVersion) -> ConfigOutcome:
        errors = tuple(PathError(e.path, e.message) for e in received.errors)
        return cls(received.version, received.status, errors, received.received_at)


@dataclass(frozen=True, slots=True)
class RegisterSpan:
    """Registers (or bits) of one function code: ``count`` from ``address``."""

    function: int
    address: int
    count: int


@dataclass(frozen=True, slots=True)
class DeviceError:
    kind: Literal["exception", "timeout", "transport", "protocol"]
    code: int | None
    name: str
    message: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """A device's polling, as :class:`panelfast.acquisition.DeviceDiagnostics` has it
    (the same attribute names: that one is built by the Rust core)."""

    device_id: str
    state: Literal["unknown", "ok", "degraded", "offline"]
    last_error: DeviceError | None
    rtt_last_ms: float
    rtt_mean_ms: float
    rtt_max_ms: float
    requests: int
    errors: int
    timeouts: int
    exceptions: int
    cycles: int
    overruns: int
    reads_per_cycle: int
    last_cycle_ms: int | None
    last_cycle_duration_ms: float
    last_answer_ms: int | None
    #: What the device said it does not have (exception 0x02, or 0x01 for a function).
    lacking: tuple[RegisterSpan, ...]

    @classmethod
    def of(cls, d: DeviceDiagnostics) -> DeviceStatus:
        e = d.last_error
        return cls(
            d.device_id,
            d.state,
            None if e is None else DeviceError(e.kind, e.code, e.name, e.message, e.at_ms),
            d.rtt_last_ms,
            d.rtt_mean_ms,
            d.rtt_max_ms,
            d.requests,
            d.errors,
            d.timeouts,
            d.exceptions,
            d.cycles,
            d.overruns,
            d.reads_per_cycle,
            d.last_cycle_ms,
            d.last_cycle_duration_ms,
            d.last_answer_ms,
            tuple(RegisterSpan(r.function, r.address, r.count) for r in d.lacking),
        )


@dataclass(frozen=True, slots=True)
class PublicationInfo:
    """The publication method, the email setup (no secret) and the alarm emails' status."""

    method: PublicationMethod
    #: The user's Connect holds (only ever with method cloud).
    cloud_services: bool
    #: The ``[email]`` section, if any (the password and its file are never shown).
    email: EmailSetup | None
    #: The alarm emails: queued, sent, dropped, the last error with the server's answer.
    mail: MailStatus | None


@dataclass(frozen=True, slots=True)
class PublicationSwitched:
    """A switch of the publication method, done (or the method it already had)."""

    previous: PublicationMethod
    method: PublicationMethod
    changed: bool
    publication: PublicationInfo


@dataclass(frozen=True, slots=True)
class SmtpReply:
    code: int
    text: str


@dataclass(frozen=True, slots=True)
class RefusedRecipient:
    address: str
    code: int
    text: str


@dataclass(frozen=True, slots=True)
class TestEmailSent:
    """The SMTP server took the test email: its answer, and the recipients it refused."""

    server: str
    answer: SmtpReply
    recipients: tuple[str, ...]
    refused: tuple[RefusedRecipient, ...]


#: Each answer's type, by the name the routes and the schema give it.
API_TYPES: dict[str, Any] = {
    "GatewayStatus": GatewayStatus,
    "CloudStatus": CloudStatus,
    "RemoteConfigStatus": RemoteConfigStatus,
    "ApplyProgress | None": ApplyProgress | None,
    "RemoteConfigHistory": list[ConfigOutcome],
    "FirewallRules": list[FirewallRule],
    "Devices": list[DeviceStatus],
    "Readings": list[MeasurementReading],
    "Backlog": Backlog,
    "AuditEntries": list[AuditEntry],
    "Outputs": list[OutputInfo],
    "RemoteControlStatus": RemoteControlStatus,
    "OutputsHistory": list[HistoryEntry],
    "Schedules": list[StoredSchedule],
    "SwitchResult": SwitchResult,
    "ReloadOutcome": ReloadOutcome,
    "PublicationInfo": PublicationInfo,
    "PublicationSwitched": PublicationSwitched,
    "TestEmailSent": TestEmailSent,
}

_ERROR = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
}
_ANY_OBJECT: dict[str, Any] = {"type": "object"}
_MAIL_ERROR = {
    "type": "object",
    "required": ["error", "message", "stage", "code", "text"],
    "properties": {
        "error": {"const": "mail"},
        "message": {"type": "string"},
        "stage": {"type": "string"},
        "code": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
        "text": {"anyOf": [{"type": "string"}, {"type": "null"}]},
    },
}
#: Request bodies, by route.
_BODIES: dict[str, dict[str, Any]] = {
    "/v1/settings/{key}": {
        "type": "object",
        "required": ["value"],
        "properties": {"value": {}},
    },
    "/v1/publication": {
        "type": "object",
        "required": ["method"],
        "properties": {"method": {"enum": ["cloud", "email", "none"]}},
    },
}

# (method, path, summary, answer type name or an inline schema, error statuses)
_ROUTES: list[tuple[str, str, str, str | dict[str, Any], tuple[int, ...]]] = [
    ("get", "/v1/status", "Connection, remote configuration, topology, backlog, alarms",
     "GatewayStatus", ()),
    ("get", "/v1/identification", "Panel Server identification (claim key masked)",
     _ANY_OBJECT, ()),
    ("post", "/v1/connect", "Connect (kept across restarts) and make one attempt",
     "CloudStatus", ()),
    ("post", "/v1/disconnect", "Tell the cloud, then stop all cloud traffic", "CloudStatus", ()),
    ("get", "/v1/topology", "The topology as configured now, and whether to publish it again",
     _ANY_OBJECT, ()),
    ("post", "/v1/topology/publish", "Publish the topology",
     {"type": "object", "required": ["topology_version"],
      "properties": {"topology_version": {"type": "string"}}}, (409, 502)),
    ("get", "/v1/remote-config", "The remote configuration in force (read-only)",
     _ANY_OBJECT, ()),
    ("get", "/v1/remote-config/history", "The versions received and their outcome",
     "RemoteConfigHistory", ()),
    ("get", "/v1/settings", "Local settings, and what the cloud manages", _ANY_OBJECT, ()),
    ("put", "/v1/settings/{key}", "Change a local setting (refused for what the cloud manages)",
     {"type": "object", "required": ["key", "value"],
      "properties": {"key": {"type": "string"}, "value": {}}}, (400, 403)),
    ("get", "/v1/firewall", "Every host and port the firewall must allow", "FirewallRules", ()),
    ("get", "/v1/devices", "Each device's state, last error and round trips", "Devices", ()),
    ("get", "/v1/devices/{device_id}/values",
     "A device's measurements and their latest values (from one snapshot)", "Readings", (404,)),
    ("get", "/v1/backlog", "What waits for the cloud, and how fast it drains", "Backlog", ()),
    ("get", "/v1/audit", "The most recent changes: who, what, when, outcome",
     "AuditEntries", (400,)),
    ("get", "/v1/outputs", "Each output: device, id, name, mode, state, last change and its "
     "source", "Outputs", ()),
    ("get", "/v1/outputs/remote-control", "Whether the cloud and its schedules may switch "
     "outputs (off by default), and the risk enabling it asks to confirm",
     "RemoteControlStatus", ()),
    ("post", "/v1/outputs/remote-control", "Enable outputs remote control (with the risk "
     "sentence as confirmation) or disable it", "RemoteControlStatus", (400,)),
    ("get", "/v1/outputs/history", "The command history, newest first: every command, "
     "schedule entry and local action, its source, result and read-back",
     "OutputsHistory", (400,)),
    ("post", "/v1/outputs/{device}/{output}", "Switch an output from here (source local; "
     "outputs remote control not needed): the state read back", "SwitchResult",
     (400, 404, 502)),
    ("get", "/v1/schedules", "The schedules the cloud sent, their next entry, whether they act",
     "Schedules", ()),
    ("post", "/v1/reload", "Read the configuration file again and put it in force (400: the "
     "file has an error; 409: it changes what cannot change live)", "ReloadOutcome", (400, 409)),
    ("get", "/v1/publication", "The publication method, the email setup and the alarm emails",
     "PublicationInfo", ()),
    ("put", "/v1/publication",
     "Switch the publication method (refused while what it excludes is on)",
     "PublicationSwitched", (400, 409)),
    ("post", "/v1/email/test", "Send a test email; the SMTP server's exact answer",
     "TestEmailSent", (400, 502)),
]  # fmt: skip


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


# Parameters and bodies of the routes that take some, by (method, path).
_OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("post", "/v1/outputs/remote-control"): {
        "requestBody": _body(
            {
                "type": "object",
                "required": ["enabled"],
                "properties": {
                    "enabled": {"type": "boolean"},
                    "confirmation": {
                        "type": "string",
                        "description": "to enable: the risk sentence, as the user confirmed it",
                        "examples": [RISK],
                    },
                },
            }
        )
    },
    ("get", "/v1/outputs/history"): {
        "parameters": [
            {"name": "limit", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}},
            {"name": "before", "in": "query", "required": False,
             "description": "only entries older than this seq (paging)",
             "schema": {"type": "integer"}},
        ]
    },
    ("post", "/v1/outputs/{device}/{output}"): {
        "requestBody": _body(
            {
                "type": "object",
                "required": ["action"],
                "properties": {"action": {"enum": ["on", "off", "toggle"]}},
            }
        ),
    },
}  # fmt: skip


def openapi_document() -> dict[str, Any]:
    """The committed document (generated by :func:`generate`)."""
    return _committed()


@cache
def _committed() -> dict[str, Any]:
    return json.loads(OPENAPI_FILE.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def generate() -> dict[str, Any]:
    names = sorted(API_TYPES)
    refs, defs = TypeAdapter.json_schemas(
        [(name, "serialization", TypeAdapter(API_TYPES[name])) for name in names],
        ref_template="#/components/schemas/{model}",
    )
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    schemas["Error"] = _ERROR
    paths: dict[str, Any] = {}
    for method, path, summary, answer, errors in _ROUTES:
        schema = refs[(answer, "serialization")] if isinstance(answer, str) else answer
        responses: dict[str, Any] = {
            "200": {
                "description": "OK",
                "content": {"application/json": {"schema": schema}},
            }
        }
        for status in errors:
            error = _MAIL_ERROR if status == 502 and path == "/v1/email/test" else None
            responses[str(status)] = {
                "description": "refused; the message says why",
                "content": {
                    "application/json": {"schema": error or {"$ref": "#/components/schemas/Error"}}
                },
            }
        operation: dict[str, Any] = {"summary": summary, "responses": responses}
        parameters = re.findall(r"\{(\w+)\}", path)
        if parameters:
            operation["parameters"] = [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                for name in parameters
            ]
        if method == "put" and path in _BODIES:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _BODIES[path]}},
            }
        if path == "/v1/reload":
            operation["requestBody"] = {
                "required": False,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["config"],
                            "properties": {"config": {"type": "string"}},
                            "description": "the file the caller means: refused (409) if the "
                            "gateway runs with another",
                        }
                    }
                },
            }
        operation.update(_OPERATIONS.get((method, path), {}))
        paths.setdefault(path, {})[method] = operation
    paths["/v1/events"] = {
        "get": {
            "summary": "Server-sent events: status, devices and audit at every change; "
            "applying: each step of applying a remote configuration",
            "responses": {
                "200": {"description": "an event stream", "content": {"text/event-stream": {}}}
            },
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "panelfast control API",
            "version": "1",
            "description": "The running gateway's one door: a Unix socket for local users "
            "(mode 0660), and the web listener behind the web login.",
        },
        "paths": paths,
        "components": {"schemas": schemas},
    }


def render() -> str:
    return json.dumps(generate(), indent=1, sort_keys=True, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    OPENAPI_FILE.write_text(render(), encoding="utf-8")
    print(f"wrote {OPENAPI_FILE}")
