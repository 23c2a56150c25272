"""What Settings > Publication > Outputs remote control shows, and the header's
"Control scheduling" (no HTML here; see :mod:`._views` for what a section is).

Everything comes from the gateway's :class:`~panelfast.commands.CommandService`:
the page changes nothing itself, its buttons call the control API's outputs
routes (enabling sends back :data:`~panelfast.commands.RISK` as the user's
confirmation, which the pop-up shows).
"""

from __future__ import annotations

import asyncio
from typing import Any

from panelfast.commands import RISK, HistoryEntry
from panelfast.control import ControlApp
from panelfast.gateway import GatewayStatus

__all__ = ["HISTORY_SHOWN", "outputs_section", "scheduling_header"]

#: The newest history entries the section shows (the CLI and the API give the rest).
HISTORY_SHOWN = 10

#: How the history names who acted (``source``), in the page's words.
ORIGINS = {"cloud": "Cloud", "schedule": "Schedule", "local": "Local"}


def _history_row(entry: HistoryEntry) -> dict[str, Any]:
    origin = ORIGINS.get(entry.source, entry.source)
    if entry.who:
        origin += f" ({entry.who})"
    what = entry.action or entry.kind.replace("_", " ")
    # Enabling records the risk sentence as its reason: the section says it once, above.
    reason = entry.reason if entry.kind != "remote_control" else None
    result = entry.status + (f": {reason}" if reason else "")
    if entry.readback:
        result += f", read back {entry.readback}"
    return {
        "ts_ms": entry.ts_ms,
        "target": entry.target or "—",
        "action": what,
        "origin": origin,
        "result": result,
        "bad": entry.status in ("rejected", "failed"),
    }


async def outputs_section(control: ControlApp, status: GatewayStatus) -> dict[str, Any]:
    commands = control.gateway.commands
    remote, schedules, history = await asyncio.gather(
        asyncio.to_thread(commands.remote_control),
        asyncio.to_thread(commands.stored_schedules),
        asyncio.to_thread(commands.history, HISTORY_SHOWN),
    )
    names = {d.id: d.name for d in control.gateway.settings.devices}
    outputs = [
        {"info": o, "device_name": names.get(o.device, o.device), "ref": f"{o.device}/{o.id}"}
        for o in status.outputs.outputs
    ]
    return {
        "remote": remote,
        "risk": RISK,
        "outputs": outputs,
        "schedules": schedules,
        "history": [_history_row(e) for e in history],
    }


def scheduling_header(status: GatewayStatus) -> bool:
    """Whether the header shows "Control scheduling": a schedule stored and remote
    control enabled (a schedule then acts at its times, cloud or not)."""
    return status.outputs.control_scheduling
