"""What each operator page shows, gathered from the cloud's state (no HTML here)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from panelfast.refcloud.state import CloudState
from panelfast.refcloud.storage import DeviceRecord, SeriesSummary
from panelfast.refcloud.web import plot

__all__ = ["PageError", "gateway_detail", "gateway_rows", "parse_instant", "series_view"]

#: The most recent rows shown of the lists that only grow (events, commands, states).
RECENT_ROWS = 200
_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class PageError(Exception):
    """A page cannot be shown: ``status`` and a sentence for the operator."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _device(state: CloudState, serial: str) -> DeviceRecord:
    device = state.storage.device_by_serial(serial)
    if device is None:
        raise PageError(404, f"No gateway with serial {serial} was ever enrolled.")
    return device


def _connection(state: CloudState, device: DeviceRecord) -> Any:
    disconnects = state.storage.disconnects(device.device_id)
    return state.presence.connection(
        device.device_id, last_disconnect=disconnects[-1] if disconnects else None
    )


def _config_state(state: CloudState, device_id: str) -> dict[str, Any] | None:
    """The latest configuration issued and what the gateway reported of it."""
    config = state.storage.latest_config(device_id)
    if config is None:
        return None
    reports = state.storage.reports(device_id)
    report = next((r for r in reversed(reports) if r["version"] == config.version), None)
    applied = next((r for r in reversed(reports) if r["status"] == "applied"), None)
    in_force = None
    if applied is not None:
        in_force = state.storage.config(device_id, applied["version"])
    return {"record": config, "report": report, "reports": reports[::-1], "in_force": in_force}


def gateway_rows(state: CloudState) -> list[dict[str, Any]]:
    """One row per gateway ever enrolled, for the list page."""
    rows = []
    for device in state.storage.devices():
        connection = _connection(state, device)
        rows.append(
            {
                "device": device,
                "connection": connection,
                "data_seq": state.storage.last_seq(device.device_id),
                "config": _config_state(state, device.device_id),
                "last_error": connection.errors[0] if connection.errors else None,
            }
        )
    return rows


def _measurement_names(topology: dict[str, Any] | None) -> dict[tuple[str, str], dict[str, Any]]:
    if topology is None:
        return {}
    return {
        (d.get("id"), m.get("id")): m
        for d in topology["document"].get("devices", [])
        for m in d.get("measurements", [])
    }


def gateway_detail(state: CloudState, serial: str) -> dict[str, Any]:
    """Everything the gateway page shows of ``serial``."""
    device = _device(state, serial)
    storage = state.storage
    device_id = device.device_id
    latest = storage.latest_topology(device_id)
    topology = None
    if latest is not None:
        receipts = storage.topology_receipts(device_id)
        topology = {"version": latest[0], "document": latest[1], "receipt": receipts[-1]}
    batches, duplicates, last_batch_at = storage.batch_summary(device_id)
    commands = storage.commands(device_id)
    events = storage.alarm_events(device_id)
    states = storage.output_states(device_id)
    return {
        "device": device,
        "connection": _connection(state, device),
        "token_expires_at": storage.token_expiry(device_id),
        "disconnects": storage.disconnects(device_id)[::-1][:10],
        "topology": topology,
        "config": _config_state(state, device_id),
        "data": {
            "last_seq": storage.last_seq(device_id),
            "batches": batches,
            "duplicates": duplicates,
            "last_batch_at": last_batch_at,
        },
        "series": _series_rows(storage.series_summaries(device_id), topology),
        "alarm_events": events[::-1][:RECENT_ROWS],
        "alarm_event_count": len(events),
        "commands": commands[::-1][:RECENT_ROWS],
        "command_count": len(commands),
        "output_states": states[::-1][:RECENT_ROWS],
        "uploads": storage.uploads(device_id)[::-1][:RECENT_ROWS],
    }


def _series_rows(
    summaries: list[SeriesSummary], topology: dict[str, Any] | None
) -> list[dict[str, Any]]:
    names = _measurement_names(topology)
    return [{"summary": s, "meta": names.get((s.device, s.measurement), {})} for s in summaries]


def parse_instant(text: str, name: str) -> int:
    """A time given in a query (unix ms, or ISO 8601; UTC when no offset), as unix ms."""
    value = text.strip()
    if re.fullmatch(r"-?[0-9]{1,15}", value):
        return int(value)
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise PageError(
            400,
            f"{name}={text!r} is not a time: give unix milliseconds or a date and time "
            "such as 2026-11-22T10:00:00 (UTC)",
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return round(when.timestamp() * 1000)


@dataclass(frozen=True)
class SeriesPage:
    device: DeviceRecord
    summary: SeriesSummary
    meta: dict[str, Any]
    data: plot.Reduced
    plots: list[Any]


def series_view(
    state: CloudState,
    serial: str,
    device_ref: str,
    measurement: str,
    start_text: str | None,
    end_text: str | None,
) -> SeriesPage:
    """One measurement's samples over the asked range (all of it when none is asked)."""
    device = _device(state, serial)
    if not (_ID.match(device_ref) and _ID.match(measurement)):
        raise PageError(404, f"{device_ref}/{measurement} is not a measurement name.")
    summary = next(
        (
            s
            for s in state.storage.series_summaries(device.device_id)
            if (s.device, s.measurement) == (device_ref, measurement)
        ),
        None,
    )
    if summary is None:
        raise PageError(404, f"{serial} has sent no samples of {device_ref}/{measurement}.")
    start = parse_instant(start_text, "from") if start_text else summary.first
    end = parse_instant(end_text, "to") if end_text else summary.last
    if end < start:
        raise PageError(400, "The end of the range (to) is before its start (from).")
    if end == start:
        # One instant: show a little on each side so the sample sits in the middle.
        start, end = start - 30_000, end + 30_000
    rows = state.storage.series_between(device.device_id, device_ref, measurement, start, end)
    data = plot.reduce(rows, start, end)
    meta = _measurement_names(_latest_topology(state, device.device_id)).get(
        (device_ref, measurement), {}
    )
    title = f"{device_ref}/{measurement}" + (f" ({meta['name']})" if meta.get("name") else "")
    unit = str(meta.get("unit", ""))
    plots = [
        plot.render(data, layout, title=title, unit=unit, plot_id=f"plot-{layout.name}")
        for layout in (plot.WIDE, plot.NARROW)
    ]
    return SeriesPage(device, summary, meta, data, plots)


def _latest_topology(state: CloudState, device_id: str) -> dict[str, Any] | None:
    latest = state.storage.latest_topology(device_id)
    return None if latest is None else {"version": latest[0], "document": latest[1]}
