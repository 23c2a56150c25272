"""The topology (cloud protocol §5): the gateway and its devices, as the cloud sees them.

A topology is built from the gateway's identity, its configured devices and
their device models. It is serialised as canonical JSON (sorted keys, compact
separators, UTF-8), so the same devices always give the same bytes apart from
``published_at``; the cloud then answers the same ``topology_version``.

It carries no secret and no network address: the claim key, hosts, ports and
serial port paths never enter the document (only the connection *kind*,
``modbus-tcp`` or ``modbus-rtu``), and a free-text field that holds an IP
address is refused rather than published.

A document of at most 250,000 bytes is sent inline; a larger one goes through
the upload service (:attr:`Topology.needs_upload`).

:class:`PublishedTopologyStore` remembers what was last published (its
fingerprint and the ``(device, measurement)`` pairs remote configurations are
validated against), so the gateway can tell when the topology must be
published again.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from panelfast._durable import write_atomically
from panelfast.config import DeviceSettings, IdentitySettings, TcpConnection
from panelfast.exceptions import StateStoreError, TopologyError
from panelfast.models import DeviceModel

__all__ = [
    "MAX_INLINE_BYTES",
    "SCHEMA",
    "PublishedTopology",
    "PublishedTopologyStore",
    "Topology",
    "build_topology",
    "canonical_json",
]

SCHEMA = "panelfast.topology/1"
#: Largest document sent inline with ``PUT .../topology`` (§5); larger goes by upload (§10).
MAX_INLINE_BYTES = 250_000

_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
#: Tokens of free text that could be an address: split on what cannot be part of one.
_TOKEN_SPLIT = re.compile(r"[\s,;()\[\]<>\"'/]+")

MeasurementKey = tuple[str, str]


def canonical_json(document: object) -> bytes:
    """The one byte form of a document: sorted keys, no spaces, UTF-8, no NaN."""
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


@dataclass(frozen=True, slots=True)
class Topology:
    """A built topology document, ready to publish."""

    #: The document's canonical bytes, ``published_at`` included: the body to send.
    body: bytes
    #: SHA-256 (hex) of the document without ``published_at``: equal for equal topologies.
    fingerprint: str
    #: Every ``(device id, measurement id)`` the document names.
    measurements: frozenset[MeasurementKey]
    #: Every ``(device id, output id)`` the document names.
    outputs: frozenset[MeasurementKey]
    published_at: str

    @property
    def size(self) -> int:
        return len(self.body)

    @property
    def needs_upload(self) -> bool:
        """Too large to send inline (over 250,000 bytes): use the upload service."""
        return self.size > MAX_INLINE_BYTES

    def document(self) -> dict[str, Any]:
        """The document as JSON values (a fresh copy)."""
        result: dict[str, Any] = json.loads(self.body)
        return result


def _connection_kind(device: DeviceSettings) -> str:
    # RTU framing over TCP is a serial device behind a converter: to the cloud
    # it is a Modbus RTU device; the converter is plumbing.
    if isinstance(device.connection, TcpConnection) and device.connection.type == "tcp":
        return "modbus-tcp"
    return "modbus-rtu"


def _device_addresses(device: DeviceSettings) -> set[str]:
    if isinstance(device.connection, TcpConnection):
        return {device.connection.host.lower()}
    return {device.connection.port.lower()}


def _looks_like_address(text: str, addresses: set[str]) -> bool:
    lowered = text.lower()
    # Very short host names ("pm") would match ordinary words; IP literals are caught below.
    if any(len(address) >= 3 and address in lowered for address in addresses):
        return True
    for token in _TOKEN_SPLIT.split(text):
        candidate = token.strip(".:")
        if not candidate:
            continue
        try:
            ipaddress.ip_address(candidate)
        except ValueError:
            continue
        return True
    return False


def _device_entry(
    device: DeviceSettings, model: DeviceModel, problems: list[str]
) -> dict[str, Any]:
    where = f"device {device.id!r}"
    addresses = _device_addresses(device)
    for field_name in ("name", "label", "usage", "zone"):
        value: str = getattr(device, field_name)
        if _looks_like_address(value, addresses):
            problems.append(
                f"{where}: {field_name} {value!r} holds a network address or port path; "
                "the topology holds none (§5)"
            )
    measurements = []
    seen: set[str] = set()
    for measurement in model.measurements:
        if not _ID.fullmatch(measurement.id):
            problems.append(
                f"{where}: model {model.name!r} measurement id {measurement.id!r} "
                "does not match [A-Za-z0-9_.-]{1,64}"
            )
        elif measurement.id in seen:
            problems.append(
                f"{where}: model {model.name!r} lists measurement {measurement.id!r} twice"
            )
        seen.add(measurement.id)
        if measurement.type == "ASCII":
            # Text (a meter's name or model) identifies the device; it is not a
            # measurement the cloud could sample (§7 values are numbers).
            continue
        measurements.append(
            {
                "id": measurement.id,
                "name": measurement.name,
                "unit": measurement.unit,
                "kind": measurement.kind,
            }
        )
    outputs = []
    seen_outputs: set[str] = set()
    for output in model.outputs:
        if not _ID.fullmatch(output.id):
            problems.append(
                f"{where}: model {model.name!r} output id {output.id!r} "
                "does not match [A-Za-z0-9_.-]{1,64}"
            )
        elif output.id in seen_outputs:
            problems.append(f"{where}: model {model.name!r} lists output {output.id!r} twice")
        seen_outputs.add(output.id)
        outputs.append({"id": output.id, "name": output.name, "mode": output.mode})
    entry: dict[str, Any] = {
        "id": device.id,
        "name": device.name,
        "model": model.name,
        "vendor": model.vendor,
        "connection": _connection_kind(device),
        "commodity": device.commodity,
        "measurements": measurements,
        "outputs": outputs,
    }
    # Optional fields left empty by the user are left out rather than sent as "".
    for optional in ("label", "usage", "zone"):
        value = getattr(device, optional)
        if value:
            entry[optional] = value
    return entry


def _utc_stamp(when: datetime | None) -> str:
    moment = (when or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def build_topology(
    identity: IdentitySettings,
    devices: Sequence[DeviceSettings],
    models: Mapping[str, DeviceModel],
    *,
    published_at: datetime | None = None,
) -> Topology:
    """Describe the gateway and its devices; every problem is reported at once.

    ``models`` maps a device model name (``DeviceSettings.model``) to its
    model. Devices are listed by id, so reordering the configuration file does
    not make a new topology.
    """
    problems: list[str] = []
    entries: list[dict[str, Any]] = []
    seen_devices: set[str] = set()
    for device in sorted(devices, key=lambda d: d.id):
        if not _ID.fullmatch(device.id):
            problems.append(f"device id {device.id!r} does not match [A-Za-z0-9_.-]{{1,64}}")
        if device.id in seen_devices:
            problems.append(f"device id {device.id!r} is used twice")
            continue
        seen_devices.add(device.id)
        model = models.get(device.model)
        if model is None:
            problems.append(f"device {device.id!r}: unknown device model {device.model!r}")
            continue
        entries.append(_device_entry(device, model, problems))
    gateway = {
        "serial": identity.serial,
        "model": identity.model,
        "firmware": identity.firmware,
        "name": identity.name,
        "mac": identity.mac,
    }
    if _looks_like_address(identity.name, set()):
        problems.append(f"gateway name {identity.name!r} holds a network address (§5)")
    if problems:
        raise TopologyError(problems)

    content: dict[str, Any] = {"schema": SCHEMA, "gateway": gateway, "devices": entries}
    fingerprint = hashlib.sha256(canonical_json(content)).hexdigest()
    stamp = _utc_stamp(published_at)
    body = canonical_json({**content, "published_at": stamp})
    return Topology(
        body=body,
        fingerprint=fingerprint,
        measurements=frozenset(
            (entry["id"], m["id"]) for entry in entries for m in entry["measurements"]
        ),
        outputs=frozenset((entry["id"], o["id"]) for entry in entries for o in entry["outputs"]),
        published_at=stamp,
    )


@dataclass(frozen=True, slots=True)
class PublishedTopology:
    """What the gateway last published and the cloud accepted."""

    fingerprint: str
    topology_version: str
    published_at: str
    measurements: frozenset[MeasurementKey]
    outputs: frozenset[MeasurementKey]


def _pairs(value: object, what: str) -> frozenset[MeasurementKey]:
    if not isinstance(value, list):
        raise StateStoreError(f"published topology state: {what} is not a list")
    pairs: set[MeasurementKey] = set()
    for item in value:
        if not (
            isinstance(item, list)
            and len(item) == 2
            and isinstance(item[0], str)
            and isinstance(item[1], str)
        ):
            raise StateStoreError(f"published topology state: malformed {what} entry")
        pairs.add((item[0], item[1]))
    return frozenset(pairs)


def _sorted_pairs(pairs: Iterable[MeasurementKey]) -> list[list[str]]:
    return [list(pair) for pair in sorted(pairs)]


class PublishedTopologyStore:
    """A small JSON file holding the last published topology's fingerprint and names.

    Written to a temporary file, flushed to disk, then renamed over the old
    one: a crash leaves either the old state or the new, never a torn file.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def load(self) -> PublishedTopology | None:
        """The last published topology, or None if none was ever published."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateStoreError(f"cannot read {self.path}: {exc.strerror}") from None
        try:
            state = json.loads(raw)
        except ValueError:
            raise StateStoreError(f"{self.path} is not valid JSON") from None
        if not isinstance(state, dict):
            raise StateStoreError(f"{self.path} does not hold a published topology")
        fields = ("fingerprint", "topology_version", "published_at")
        if not all(isinstance(state.get(name), str) for name in fields):
            raise StateStoreError(f"{self.path} lacks a fingerprint, version or date")
        return PublishedTopology(
            fingerprint=state["fingerprint"],
            topology_version=state["topology_version"],
            published_at=state["published_at"],
            measurements=_pairs(state.get("measurements"), "measurements"),
            outputs=_pairs(state.get("outputs"), "outputs"),
        )

    def record(self, topology: Topology, topology_version: str) -> PublishedTopology:
        """Remember that ``topology`` was accepted by the cloud as ``topology_version``."""
        published = PublishedTopology(
            fingerprint=topology.fingerprint,
            topology_version=topology_version,
            published_at=topology.published_at,
            measurements=topology.measurements,
            outputs=topology.outputs,
        )
        state = {
            "fingerprint": published.fingerprint,
            "topology_version": published.topology_version,
            "published_at": published.published_at,
            "measurements": _sorted_pairs(published.measurements),
            "outputs": _sorted_pairs(published.outputs),
        }
        write_atomically(self.path, canonical_json(state), mode=0o644)
        return published

    def needs_publish(self, topology: Topology) -> bool:
        """True if ``topology`` differs from what was last published (or nothing was)."""
        last = self.load()
        return last is None or last.fingerprint != topology.fingerprint
