"""What each part of the web pages shows, gathered from the running gateway (no HTML here).

Every page is made of *sections*; each section has a template
(``templates/sections/<name>.html``), the builder below that gathers what it
shows, and what it follows on the event stream (``watch``): the page's script
fetches a section again when one of those changes, or when the audit log
records one of the actions it names.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from panelfast.cloud import ConnectionStatus, Diagnostic
from panelfast.control import ControlApp, DeviceStatus
from panelfast.gateway import GatewayStatus
from panelfast.local_settings import LOCAL_SETTINGS
from panelfast.publication import EmailSetup
from panelfast.web._outputs_view import outputs_section, scheduling_header

__all__ = [
    "DEVICES_SECTIONS",
    "HEADER",
    "PUBLICATION_SECTIONS",
    "CloudIcon",
    "Section",
    "cloud_icon",
]

Context = dict[str, Any]
Builder = Callable[[ControlApp, GatewayStatus], Awaitable[Context]]


@dataclass(frozen=True, slots=True)
class Section:
    name: str
    #: ``status:<dotted path>`` into the status event, ``devices:`` (the whole devices
    #: event), ``audit:<action>`` (an audit entry of that action).
    watch: tuple[str, ...]
    build: Builder


@dataclass(frozen=True, slots=True)
class CloudIcon:
    state: Literal["valid", "invalid", "off"]
    label: str


def cloud_icon(status: GatewayStatus) -> CloudIcon:
    """The header's Cloud service icon: green valid, orange invalid, grey not connected."""
    if status.cloud.connection is not ConnectionStatus.CONNECTED:
        return CloudIcon("off", "Cloud service: not connected")
    valid = status.remote_config.valid
    if valid is True:
        return CloudIcon("valid", "Cloud service: valid remote configuration")
    if valid is False:
        return CloudIcon("invalid", "Cloud service: invalid remote configuration")
    return CloudIcon("off", "Cloud service: connected, no remote configuration received yet")


#: Connection diagnostics (spec §4) and the fix for each, in the seed's words.
DIAGNOSTIC_FIXES: tuple[tuple[Diagnostic, str], ...] = (
    (Diagnostic.ACTIVATED, "The gateway is connected to the cloud: nothing to do."),
    (
        Diagnostic.NOT_REGISTERED,
        "The cloud does not know this gateway: claim it in the cloud application with its "
        "serial number and claim key (see Identification).",
    ),
    (
        Diagnostic.NETWORK_UNREACHABLE,
        "The cloud cannot be reached: check the proxy (if the site uses one), the DNS "
        "server, and that the firewall lets the gateway reach the hosts and ports listed "
        "under Firewall.",
    ),
    (
        Diagnostic.BAD_CREDENTIALS,
        "The cloud refused the gateway's credentials: set the time synchronisation mode to "
        "Cloud (the gateway's clock must be within 300 s of the cloud's), check the claim "
        "key, and, if the cloud's certificate was not verified, the CA bundle.",
    ),
)

METHODS: tuple[tuple[str, str, str], ...] = (
    ("cloud", "Cloud services", "Data and alarms go to the cloud once connected (Connect)."),
    ("email", "Email for alarms", "The alarms of the configuration file go by email; no data "
     "leaves the gateway."),
    ("none", "None", "Nothing is published; the gateway goes on sampling, alarms are logged."),
)  # fmt: skip


async def _header(control: ControlApp, status: GatewayStatus) -> Context:
    return {"icon": cloud_icon(status), "scheduling": scheduling_header(status)}


async def _method(control: ControlApp, status: GatewayStatus) -> Context:
    email = control.gateway.settings.email
    return {
        "publication": status.publication,
        "methods": METHODS,
        "email": EmailSetup.of(email) if email is not None else None,
    }


async def _cloud(control: ControlApp, status: GatewayStatus) -> Context:
    return {
        "cloud": status.cloud,
        "method": status.publication.method,
        "fixes": DIAGNOSTIC_FIXES,
        "time_mode": control.gateway.settings.time.mode,
    }


async def _firewall(control: ControlApp, status: GatewayStatus) -> Context:
    rules = control.gateway.firewall()
    return {"rules": rules, "rules_text": "".join(rule.text() + "\n" for rule in rules)}


async def _identification(control: ControlApp, status: GatewayStatus) -> Context:
    identity = control.gateway.identification()
    # The claim key is shown masked and never copied (spec §2).
    rows = [(label, value, label != "Claim key") for label, value in identity.identification()]
    return {"rows": rows, "text": identity.identification_text() + "\n"}


def _names(control: ControlApp) -> tuple[dict[str, str], dict[tuple[str, str], tuple[str, str]]]:
    """Device names, and each measurement's (name, unit), from the topology as configured."""
    document = control.gateway.topology().document()
    devices, measurements = {}, {}
    for device in document["devices"]:
        devices[device["id"]] = device["name"]
        for m in device["measurements"]:
            measurements[(device["id"], m["id"])] = (m["name"], m.get("unit", ""))
    return devices, measurements


async def _topology(control: ControlApp, status: GatewayStatus) -> Context:
    gateway = control.gateway
    topology = await asyncio.to_thread(gateway.topology)
    document = topology.document()
    published = gateway.topology_store.load()
    return {
        "devices": len(document["devices"]),
        "measurements": sum(len(d["measurements"]) for d in document["devices"]),
        "size": topology.size,
        "published": published,
        "must_publish": status.topology_must_be_published,
        "not_configured": status.not_configured,
        "connected": status.cloud.connection is ConnectionStatus.CONNECTED,
    }


async def _remote_config(control: ControlApp, status: GatewayStatus) -> Context:
    gateway = control.gateway
    current = gateway.remote.current
    devices, names = await asyncio.to_thread(_names, control)
    groups: dict[str, list[dict[str, Any]]] = {}
    if current is not None:
        for m in current.measurements:
            name, unit = names.get((m.device, m.measurement), (m.measurement, ""))
            groups.setdefault(m.device, []).append(
                {"id": m.measurement, "name": name, "unit": unit, "period_s": m.period_s}
            )
    alarms = []
    if current is not None:
        for a in current.alarms:
            name, unit = names.get((a.device, a.measurement), (a.measurement, ""))
            alarms.append({"rule": a, "device": devices.get(a.device, a.device), "name": name,
                           "unit": unit})  # fmt: skip
    history = await asyncio.to_thread(gateway.remote.store.history, 5)
    # In the order of the configuration file (as the Devices page), then what it lost.
    order = {d.id: k for k, d in enumerate(gateway.settings.devices)}
    ordered = sorted(groups.items(), key=lambda item: order.get(item[0], len(order)))
    return {
        "rc": status.remote_config,
        "icon": cloud_icon(status),
        "current": current,
        "groups": [(d, devices.get(d, d), rows) for d, rows in ordered],
        "alarms": alarms,
        "history": history[::-1],
    }


async def _backlog(control: ControlApp, status: GatewayStatus) -> Context:
    return {"backlog": status.backlog}


async def _settings(control: ControlApp, status: GatewayStatus) -> Context:
    settings = control.gateway.settings
    rows = []
    for key, description in LOCAL_SETTINGS.items():
        section, field = key.split(".", 1)
        rows.append((key, getattr(getattr(settings, section), field), description))
    return {"local": rows}


async def _devices(control: ControlApp, status: GatewayStatus) -> Context:
    gateway = control.gateway
    diagnostics = {d.device_id: DeviceStatus.of(d) for d in gateway.diagnostics()}
    rows = []
    for device in gateway.settings.devices:
        connection = device.connection
        if connection.type == "rtu":
            where = f"Modbus RTU {connection.port}, unit id {connection.unit_id}"
        else:
            kind = "Modbus TCP" if connection.type == "tcp" else "Modbus RTU over TCP"
            where = f"{kind} {connection.host}:{connection.port}, unit id {connection.unit_id}"
        rows.append(
            {
                "settings": device,
                "where": where,
                "period_ms": connection.period_ms,
                "status": diagnostics.get(device.id),
            }
        )
    return {"devices": rows}


PUBLICATION_SECTIONS: tuple[Section, ...] = (
    Section(
        "method", ("status:publication", "audit:publication.method", "audit:email.test"), _method
    ),
    Section(
        "cloud",
        ("status:cloud", "status:publication.method", "audit:settings.change"),
        _cloud,
    ),
    Section("firewall", ("status:cloud.connection", "status:cloud.device_id"), _firewall),
    Section("identification", ("status:cloud.device_id",), _identification),
    Section(
        "topology",
        (
            "status:topology_must_be_published",
            "status:topology_version",
            "status:not_configured",
            "status:cloud.connection",
        ),
        _topology,
    ),
    Section("remote-config", ("status:remote_config", "status:cloud.connection"), _remote_config),
    Section(
        "outputs",
        ("status:outputs", "audit:outputs.remote_control", "audit:outputs.switch"),
        outputs_section,
    ),
    Section("backlog", ("status:backlog",), _backlog),
    Section("settings", ("audit:settings.change",), _settings),
)
DEVICES_SECTIONS: tuple[Section, ...] = (Section("devices", ("devices:",), _devices),)
HEADER = Section(
    "header",
    (
        "status:cloud.connection",
        "status:remote_config.valid",
        "status:remote_config.applied_version",
        "status:outputs.control_scheduling",
    ),
    _header,
)
