"""What ``panelfast outputs`` prints: the same words whether the daemon renders them
(the control API's ``text/plain`` answers) or the CLI does, with no daemon running."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from panelfast.commands._outputs import OutputInfo
from panelfast.commands._remote_control import RemoteControlStatus
from panelfast.commands._scheduler import StoredSchedule
from panelfast.commands._store import HistoryEntry

__all__ = ["history_text", "outputs_text", "remote_control_text", "schedules_text", "when"]


def when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def remote_control_text(status: RemoteControlStatus) -> str:
    by = f" by {status.changed_by}" if status.changed_by else ""
    scheduling = "active" if status.scheduling_active else "inactive"
    return (
        f"Outputs remote control: {'enabled' if status.enabled else 'disabled'}\n"
        f"Changed: {when(status.changed_at_ms)}{by}\n"
        f"Control scheduling: {scheduling} ({status.schedules} schedules stored)\n"
    )


def outputs_text(outputs: Sequence[OutputInfo]) -> str:
    if not outputs:
        return "no output configured (a device model with outputs: IO-C)\n"
    lines = []
    for o in outputs:
        state = o.state or "unknown (device not answering)"
        last = f"  last change {when(o.changed_at_ms)} by {o.changed_by}" if o.changed_by else ""
        lines.append(f"{o.device}/{o.id} {o.name!r} ({o.mode}): {state}{last}")
    return "\n".join(lines) + "\n"


def history_text(entries: Sequence[HistoryEntry]) -> str:
    if not entries:
        return "no command or output change recorded yet\n"
    lines = []
    for e in entries:
        what = " ".join(part for part in (e.kind, e.target, e.action) if part)
        result = e.status + (f" ({e.reason})" if e.reason else "")
        readback = f"  read back: {e.readback}" if e.readback else ""
        ident = f" [{e.command_id}]" if e.command_id else ""
        who = f" {e.who}" if e.who else ""
        lines.append(f"{when(e.ts_ms)}  {e.source:<8} {what}{ident}: {result}{readback}{who}")
    return "\n".join(lines) + "\n"


def schedules_text(schedules: Sequence[StoredSchedule]) -> str:
    if not schedules:
        return "no schedule stored\n"
    lines = []
    for s in schedules:
        acting = "" if s.acting else " (not acting: outputs remote control is disabled)"
        lines.append(f"{s.id}: {s.output}, {s.timezone}, next {when(s.next_at_ms)}{acting}")
        lines += [f"  {','.join(e.days)} {e.at} {e.action}" for e in s.entries]
    return "\n".join(lines) + "\n"
