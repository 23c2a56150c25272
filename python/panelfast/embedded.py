"""The embedded default: a complete system on this machine, with nothing else installed.

A reference cloud (HTTPS with its own CA, on loopback), a device simulator
serving realistic meters and an IO module over Modbus TCP, and a gateway
configuration that points at both: the gateway's serial is enrolled, its
claim key written 0600. ``panelfast demo`` runs a gateway on it; the
end-to-end tests and benchmarks use it too.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from panelfast.config import Settings, parse_settings, write_secret
from panelfast.models.loader import ModelLibrary
from panelfast.refcloud import RefCloud
from panelfast.refcloud import Settings as CloudSettings
from panelfast.simulator import SimulatedDevice, Simulator

__all__ = ["DEFAULT_DEVICES", "EmbeddedDevice", "EmbeddedSystem", "embedded_system"]

SERIAL = "PS-0042-7A19"


@dataclass(frozen=True, slots=True)
class EmbeddedDevice:
    """A simulated device and how it is commissioned on the gateway."""

    id: str
    model: str
    name: str
    label: str = ""
    usage: str = ""
    zone: str = "Building A"


DEFAULT_DEVICES = (
    EmbeddedDevice("mb-1", "PM5560", "Main incomer", "Q1", "main_incomer"),
    EmbeddedDevice("mb-2", "iEM3255", "Lighting feeder", "Q4", "lighting"),
    EmbeddedDevice("io-1", "IO-C", "IO module", "K1", "hvac"),
)


@dataclass(frozen=True, slots=True)
class EmbeddedSystem:
    folder: Path
    cloud: RefCloud
    simulator: Simulator
    settings: Settings
    serial: str
    config_path: Path


@contextmanager
def embedded_system(
    folder: Path,
    *,
    devices: Sequence[EmbeddedDevice] = DEFAULT_DEVICES,
    poll_period_ms: int = 500,
    seed: int = 1,
    cloud_port: int = 0,
    storage: dict[str, Any] | None = None,
    time: dict[str, Any] | None = None,
    true_offset_s: float = 0.0,
) -> Iterator[EmbeddedSystem]:
    """Start the reference cloud and the simulator, and configure a gateway for them.

    ``time`` is the gateway's ``[time]`` section (default: manual, the system
    clock). ``true_offset_s`` sets "true time" at the system clock plus that
    offset: the cloud's clock and the simulator's :meth:`~Simulator.truth`
    follow it, as for a gateway whose system clock is wrong while its NTP
    server and its cloud agree on the time.
    """
    folder.mkdir(parents=True, exist_ok=True)
    library = ModelLibrary()
    simulated = [SimulatedDevice(id=d.id, model=library.get(d.model)) for d in devices]
    with (
        RefCloud(
            folder / "cloud",
            port=cloud_port,
            settings=CloudSettings(clock_offset_s=true_offset_s),
        ) as cloud,
        Simulator(simulated, seed=seed, clock_offset_ms=round(true_offset_s * 1000)) as sim,
    ):
        endpoints = {d.id: sim.endpoint(d.id) for d in devices}
        claim_key = cloud.enrol(SERIAL)
        write_secret(folder / "claim.key", claim_key)
        document: dict[str, Any] = {
            "identity": {
                "serial": SERIAL,
                "model": "advanced",
                "firmware": "1.0.0",
                "mac": "aa:bb:cc:00:42:19",
                "name": "Panel Server demo",
                "claim_key_file": str(folder / "claim.key"),
            },
            "cloud": {"bootstrap_url": cloud.bootstrap_url, "ca_bundle": str(cloud.ca_path)},
            # By default everything runs on this machine's clock: nothing to synchronise with.
            "time": time or {"mode": "manual"},
            "storage": {"dir": str(folder / "gateway"), **(storage or {})},
            "devices": [
                {
                    "id": d.id,
                    "name": d.name,
                    "model": d.model,
                    "label": d.label,
                    "usage": d.usage,
                    "zone": d.zone,
                    "connection": {
                        "type": "tcp",
                        "host": endpoints[d.id].host,
                        "port": endpoints[d.id].port,
                        "unit_id": endpoints[d.id].unit_id,
                        "period_ms": poll_period_ms,
                        "timeout_ms": 1000,
                    },
                }
                for d in devices
            ],
        }
        config_path = folder / "panelfast.toml"
        config_path.write_text(_toml(document), encoding="utf-8")
        yield EmbeddedSystem(
            folder=folder,
            cloud=cloud,
            simulator=sim,
            settings=parse_settings(document, str(config_path)),
            serial=SERIAL,
            config_path=config_path,
        )


def _toml(document: dict[str, Any]) -> str:
    """The configuration file a user would write for this system."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return str(v)
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'

    out = []
    for section, body in document.items():
        if isinstance(body, list):
            for item in body:
                out.append(f"[[{section}]]")
                out += [f"{k} = {value(v)}" for k, v in item.items()]
                out.append("")
        else:
            out.append(f"[{section}]")
            out += [f"{k} = {value(v)}" for k, v in body.items()]
            out.append("")
    return "\n".join(out)
