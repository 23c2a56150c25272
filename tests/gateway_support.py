"""Helpers for the end-to-end gateway tests: extra configured devices, synthetic models.

Devices added here are *configured* but not served: they point at a closed
port on loopback, so the acquisition engine gets "connection refused" at once
and the gateway still describes them in its topology and validates remote
configurations against them (the cloud does not care whether they answer).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from panelfast.config import Settings, parse_settings
from panelfast.models import DeviceModel
from panelfast.simulator import synthetic_model
from waiting import PATIENCE_S, eventually


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def unreachable_device(device_id: str, model: str, name: str, port: int) -> dict[str, Any]:
    return {
        "id": device_id,
        "name": name,
        "model": model,
        "zone": "Building B",
        # Polled rarely: it never answers, and the engine need not work for nothing.
        "connection": {
            "type": "tcp",
            "host": "127.0.0.1",
            "port": port,
            "period_ms": 60_000,
            "timeout_ms": 200,
        },
    }


def settings_document(settings: Settings) -> dict[str, Any]:
    """The settings as a document parse_settings accepts again (paths already absolute)."""
    return json.loads(settings.model_dump_json())  # type: ignore[no-any-return]


def with_devices(
    settings: Settings,
    devices: Sequence[dict[str, Any]],
    *,
    keep: bool = True,
    model_dirs: Sequence[Path] = (),
) -> Settings:
    """``settings`` with ``devices`` added (or, ``keep=False``, instead of its own)."""
    document = settings_document(settings)
    document["devices"] = [*(document["devices"] if keep else []), *devices]
    if model_dirs:
        document["gateway"]["model_dirs"] = [str(d) for d in model_dirs]
    return parse_settings(document)


def write_model(folder: Path, model: DeviceModel) -> Path:
    """Write ``model`` as a device model file a ModelLibrary loads from ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        f'name = "{model.name}"',
        f'vendor = "{model.vendor}"',
        f'description = "{model.description}"',
        "measurements = [",
    ]
    for m in model.measurements:
        lines.append(
            f'  {{ id = "{m.id}", name = "{m.name}", unit = "{m.unit}", kind = "{m.kind}", '
            f'function = {m.function}, address = {m.address}, type = "{m.type}", '
            f'quantity = "{m.quantity}" }},'
        )
    lines.append("]")
    path = folder / f"{model.name}.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def synthetic_models(folder: Path, points: int) -> tuple[Path, str]:
    """A model folder holding ``synthetic-<points>``; returns (folder, model name)."""
    model = synthetic_model(points)
    write_model(folder, model)
    return folder, model.name


async def wait_for(
    condition: Callable[[], object], what: str = "condition", within_s: float = PATIENCE_S
) -> None:
    """Poll ``condition`` (without blocking the loop) until it holds."""
    await eventually(condition, what, within_s=within_s)
