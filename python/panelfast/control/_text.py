"""What the CLI prints: the API's answers rendered as text, by the daemon.

The CLI asks for ``text/plain`` and prints what comes back, so the wording is
the same from every surface and the CLI needs no model of the answers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from panelfast.control._schema import DeviceStatus, PublicationInfo
from panelfast.gateway import GatewayStatus
from panelfast.publication import MailStatus, PublicationStatus
from panelfast.publisher import Backlog
from panelfast.remote_config import ReceivedVersion, RemoteConfig, RemoteConfigStatus

__all__ = [
    "backlog_text",
    "devices_text",
    "publication_text",
    "remote_config_text",
    "rows_text",
    "status_text",
]


def rows_text(rows: Sequence[tuple[str, str]]) -> str:
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label + ':':<{width + 1}} {value}" for label, value in rows) + "\n"


def _remote_config_row(rc: RemoteConfigStatus) -> str:
    if rc.received_version is None:
        return "none received yet"
    if rc.valid:
        return (
            f"version {rc.applied_version}, valid ({rc.measurements} measurements, "
            f"{rc.alarms} alarms)"
        )
    applied = f"; version {rc.applied_version} stays in force" if rc.applied_version else ""
    return f"version {rc.received_version} INVALID ({len(rc.errors)} errors){applied}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, s = divmod(int(seconds), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours} h {m:02d} min" if hours else f"{m} min {s:02d} s" if m else f"{s} s"


def _instant(t_ms: int | None) -> str:
    if t_ms is None:
        return "-"
    return dt.datetime.fromtimestamp(t_ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def backlog_rows(backlog: Backlog) -> list[tuple[str, str]]:
    return [
        ("Samples waiting", f"{backlog.samples_left:,}"),
        ("Oldest sample waiting", _instant(backlog.oldest_ms)),
        ("Alarm events waiting", f"{backlog.events_left:,}"),
        ("Draining rate", f"{backlog.rate_samples_per_s:,.0f} samples/s"),
        ("Time to drain", _duration(backlog.eta_s)),
        ("Last batch acknowledged", str(backlog.last_acked)),
        ("Dropped (disk quota)", f"{backlog.dropped_samples:,}"),
        ("Refused by the cloud", str(backlog.refused_batches)),
    ]


def backlog_text(backlog: Backlog) -> str:
    return rows_text(backlog_rows(backlog))


def status_text(status: GatewayStatus) -> str:
    rows = status.cloud.rows()
    rc = status.remote_config
    rows.append(("Remote configuration", _remote_config_row(rc)))
    if status.applying is not None:
        p = status.applying
        rows.append(("Applying", f"{p.section} {p.done}/{p.total} ({p.fraction:.0%})"))
    period = f"{rc.publisher_period_s} s" if rc.publisher_period_s else "-"
    rows.append(("Publication period", period))
    if status.topology_version is None:
        topology = "never published"
    elif status.topology_must_be_published:
        topology = f"version {status.topology_version}; devices changed: publish it again"
    else:
        topology = f"published, version {status.topology_version}"
    rows.append(("Topology", topology))
    if status.not_configured:
        gone = ", ".join(status.not_configured)
        rows.append(("Not configured", f"{gone}: sampled as nil; publish the topology again"))
    b = status.backlog
    rows.append(("Backlog", f"{b.samples_left:,} samples, {b.events_left:,} alarm events waiting"))
    rows.append(("Active alarms", ", ".join(status.active_alarms) or "none"))
    outputs = status.outputs
    if outputs.outputs or outputs.remote_control:
        rows.append(("Outputs remote control", "enabled" if outputs.remote_control else "disabled"))
        if outputs.control_scheduling:
            rows.append(("Control scheduling", "active: a schedule may switch outputs"))
    rows += _publication_rows(status.publication)
    return rows_text(rows)


_METHOD = {
    "cloud": "cloud (data and alarms to the cloud once connected)",
    "email": "email (alarms of [[email.alarms]] by email)",
    "none": "none (nothing published; alarm events only logged)",
}


def _when(ts_ms: int) -> str:
    from panelfast.mail import gateway_time  # the email package: only when shown

    return gateway_time(ts_ms)


def _mail_rows(mail: MailStatus | None, method: str) -> list[tuple[str, str]]:
    if mail is None:
        return [("Alarm emails", "none yet")] if method == "email" else []
    counts = f"{mail.queued:,} queued, {mail.sent:,} sent, {mail.dropped:,} dropped"
    if method != "email" and mail.queued:
        counts += " (the queued wait for email publication to be on again)"
    rows = [("Alarm emails", counts)]
    if mail.last_sent_ms is not None:
        rows.append(("Last email sent", _when(mail.last_sent_ms)))
    error = mail.last_error
    if error is not None:
        state = "FAILING, retried: " if mail.failing else ""
        rows.append(("Last email error", f"{state}{error.message} (at {_when(error.at_ms)})"))
    return rows


def _publication_rows(p: PublicationStatus) -> list[tuple[str, str]]:
    return [("Publication method", _METHOD[p.method]), *_mail_rows(p.email, p.method)]


def publication_text(info: PublicationInfo) -> str:
    cloud = "on (Connect)" if info.cloud_services else "off"
    rows = [("Publication method", _METHOD[info.method]), ("Cloud services", cloud)]
    email = info.email
    if email is None:
        rows.append(("Email", "no [email] section"))
    else:
        user = f", user {email.username}" if email.username else ", no authentication"
        rows.append(("SMTP server", f"{email.host}:{email.port} ({email.security}{user})"))
        rows.append(("From", email.from_address))
        rows.append(("Recipients", ", ".join(email.recipients)))
        rows.append(("Email alarms", str(len(email.alarms)) if email.alarms else "none"))
        rows += [
            (
                f"  {a.id}",
                f"{a.device} {a.measurement} {a.condition} {a.threshold:g} (hysteresis "
                f"{a.hysteresis:g}, delay {a.delay_s} s, severity {a.severity})",
            )
            for a in email.alarms
        ]
    rows += _mail_rows(info.mail, info.method)
    return rows_text(rows)


def remote_config_text(
    status: RemoteConfigStatus, applied: RemoteConfig | None, history: Sequence[ReceivedVersion]
) -> str:
    lines = []
    if applied is None:
        lines.append("applied: none (sampling waits for a valid remote configuration)")
    else:
        lines.append(
            f"applied: version {applied.version!r}, {len(applied.measurements)} measurements, "
            f"{len(applied.alarms)} alarms, published every {applied.publisher_period_s} s"
        )
    if status.received_version is None:
        lines.append("received: none")
    else:
        word = "valid" if status.valid else "INVALID"
        outcome = "applied" if status.valid else "rejected"
        lines.append(f"received: version {status.received_version!r} {outcome} ({word})")
        lines += [f"  {path}: {message}" for path, message in status.errors]
    if history:
        lines.append("history:")
        lines += [f"  {h.received_at}  {h.version!r} {h.status}" for h in history[-10:]]
    return "\n".join(lines) + "\n"


def devices_text(devices: Sequence[DeviceStatus]) -> str:
    lines = []
    for d in devices:
        error = f"; last error: {d.last_error.message}" if d.last_error else ""
        lacking = (
            "; lacks " + ", ".join(f"fn {r.function} {r.address}+{r.count}" for r in d.lacking)
            if d.lacking
            else ""
        )
        lines.append(
            f"{d.device_id}: {d.state}, round trip {d.rtt_mean_ms:.1f} ms "
            f"(max {d.rtt_max_ms:.1f}), {d.requests} requests, {d.errors} errors{error}{lacking}"
        )
    return "\n".join(lines) + "\n" if lines else "no devices configured\n"
