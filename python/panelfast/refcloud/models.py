"""The JSON bodies of cloud protocol v1, as pydantic models (spec sections in the docstrings).

They are strict: a number where a string is due, a string where a number is
due, or a value outside its set is a ``400 invalid_payload``. Unknown members
are ignored, so a newer gateway adding one still talks to this cloud.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "NAME_PATTERN",
    "AckBody",
    "AlarmEvent",
    "AlarmsRequest",
    "BootstrapRequest",
    "BootstrapResponse",
    "CommandResult",
    "CommandsResponse",
    "ConfigReport",
    "ConflictBody",
    "DataAck",
    "ErrorBody",
    "OutputState",
    "OutputsRequest",
    "ReportIssue",
    "Topology",
    "TopologyDevice",
    "TopologyGateway",
    "TopologyMeasurement",
    "TopologyOutput",
    "TopologyVersion",
    "UploadComplete",
    "UploadCreated",
    "UploadRequest",
]

# Device, measurement, output and alarm ids (spec §5, §6).
NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
# ``<device id>/<output id>`` (spec §9).
OutputRef = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}/[A-Za-z0-9_.-]{1,64}$")]
UnixMs = Annotated[int, Field(ge=0, le=2**63 - 1)]  # stored as SQLite integers


class _Body(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


class ErrorBody(_Body):
    """Every error response (spec §1)."""

    error: str
    message: str


class ConflictBody(ErrorBody):
    """``409`` of the data route: the sequence number the cloud expects (spec §7)."""

    expected: int


class BootstrapRequest(_Body):
    """``POST /v1/bootstrap`` body (spec §3)."""

    serial: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
    model: Literal["entry", "universal", "advanced"]
    firmware: Annotated[str, Field(min_length=1, max_length=64)]
    mac: Annotated[str, Field(pattern=r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")]


class BootstrapResponse(_Body):
    """``200`` of bootstrap (spec §3)."""

    device_id: str
    hub_url: str
    upload_url: str
    token: str
    token_expires_at: int
    ntp_server: str
    data_seq: int


class TopologyMeasurement(_Body):
    id: Name
    name: str
    unit: str
    kind: Literal["instantaneous", "cumulative"]


class TopologyOutput(_Body):
    id: Name
    name: str | None = None
    mode: Literal["contactor", "impulse"] | None = None


class TopologyDevice(_Body):
    id: Name
    name: str
    model: str
    label: str | None = None
    vendor: str | None = None
    connection: str | None = None
    usage: str | None = None
    zone: str | None = None
    commodity: str | None = None
    measurements: list[TopologyMeasurement]
    outputs: list[TopologyOutput] = Field(default_factory=list)


class TopologyGateway(_Body):
    serial: str
    model: str | None = None
    firmware: str | None = None
    name: str | None = None
    mac: str | None = None


class Topology(_Body):
    """The topology document (spec §5); unique ids are checked by the cloud after parsing."""

    schema_: Annotated[Literal["panelfast.topology/1"], Field(alias="schema")]
    gateway: TopologyGateway
    published_at: str | None = None
    devices: list[TopologyDevice]


class TopologyVersion(_Body):
    topology_version: str


class ReportIssue(_Body):
    path: str
    message: str


class ConfigReport(_Body):
    """``POST .../config/report`` body (spec §6)."""

    version: str
    status: Literal["applied", "rejected"]
    errors: list[ReportIssue] = Field(default_factory=list)


class DataAck(_Body):
    """``200`` of the data route (spec §7)."""

    ack: int
    duplicate: bool | None = None


class AlarmEvent(_Body):
    id: Annotated[
        str,
        Field(
            pattern=r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        ),
    ]
    alarm: Name
    state: Literal["active", "inactive"]
    ts: UnixMs
    value: float


class AlarmsRequest(_Body):
    """``POST .../alarms`` body (spec §8)."""

    events: list[AlarmEvent]


class AckBody(_Body):
    ack: int


class CommandsResponse(_Body):
    """``200`` of the commands long poll (spec §9); each command as the operator queued it."""

    commands: list[dict[str, object]]


class CommandResult(_Body):
    """``POST .../commands/{id}/result`` body (spec §9); ``reason`` checked by the route."""

    status: Literal["done", "rejected", "failed"]
    reason: Annotated[str, Field(min_length=1)] | None = None


class OutputState(_Body):
    output: OutputRef
    state: Literal["on", "off"]
    ts: UnixMs
    source: Literal["cloud", "schedule", "local"]


class OutputsRequest(_Body):
    """``POST .../outputs`` body (spec §9)."""

    states: list[OutputState]


class UploadRequest(_Body):
    """``POST .../uploads`` body (spec §10)."""

    kind: Literal["topology", "logs"]
    size: Annotated[int, Field(ge=0, le=64 * 1024 * 1024)]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")]
    content_type: Annotated[str, Field(min_length=1, max_length=255)]


class UploadCreated(_Body):
    upload_id: str
    put_url: str


class UploadComplete(_Body):
    """``200`` of ``.../complete``: the topology version for a topology upload."""

    upload_id: str
    topology_version: str | None = None
