"""What the site itself must give the gateway: the time, its secret, disk, its devices."""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from collections.abc import Iterator

import ntplib  # type: ignore[import-untyped]

from panelfast.acquisition import Acquisition, DeviceDiagnostics
from panelfast.cloud import CloudState, parse_ntp_server
from panelfast.config import DeviceSettings, RtuConnection, Settings, read_claim_key
from panelfast.doctor._check import Check
from panelfast.exceptions import ConfigError, PanelfastError
from panelfast.models import DeviceModel
from panelfast.models.loader import ModelLibrary

__all__ = ["claim_key_check", "clock_check", "device_checks", "storage_check"]

#: The cloud refuses a claim signature more than this far from its clock (§3).
MAX_OFFSET_S = 300.0


def clock_check(settings: Settings, state: CloudState, timeout_s: float) -> Check:
    mode = settings.time.mode
    server = state.ntp_server if mode == "cloud" and state.ntp_server else settings.time.ntp_server
    what = f"clock against NTP {server} (time mode {mode})"
    try:
        host, port = parse_ntp_server(server)
        answer = ntplib.NTPClient().request(host, version=3, port=port, timeout=timeout_s)
        offset = float(answer.offset)
    except (ValueError, OSError, ntplib.NTPException) as exc:
        found = f"no answer ({exc})"
        if mode == "manual":
            return Check(what, None, f"{found}; in manual mode the system clock is trusted")
        return Check(
            what,
            False,
            found,
            f"let UDP to {server} port {123 if ':' not in server else server.rsplit(':', 1)[1]} "
            "through the firewall, or set [time] ntp_server to a server the site reaches",
        )
    found = f"offset {offset:+.3f} s"
    if abs(offset) > MAX_OFFSET_S:
        return Check(
            what,
            False,
            found,
            "the system clock is more than 300 s off: set it (timedatectl set-ntp true, or "
            "date -s); TLS certificates and the claim signature are judged by it",
        )
    return Check(what, True, found)


def claim_key_check(settings: Settings) -> Check:
    path = settings.identity.claim_key_file
    what = f"claim key {path}"
    try:
        read_claim_key(path)
    except ConfigError as exc:
        message = "; ".join(issue.message for issue in exc.issues)
        if "cannot read" in message:
            fix = (
                f"write the claim key (64 hex digits, from the enrolment) to {path} with mode "
                f"0600, readable by the user the gateway runs as"
            )
        elif "chmod" in message:
            fix = f"chmod 600 {path}"
        else:
            fix = f"{path} must hold the claim key alone: 64 hex digits"
        return Check(what, False, message, fix)
    return Check(what, True, "mode 0600, 64 hex digits")


def storage_check(settings: Settings) -> Check:
    folder = settings.storage.dir
    quota = settings.storage.quota_mb * 1_000_000
    what = f"storage {folder}"
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not os.access(existing, os.W_OK):
        return Check(
            what,
            False,
            f"{existing} is not writable by this user",
            f"create {folder} writable by the user the gateway runs as (the service's "
            "StateDirectory does it for /var/lib/panelfast)",
        )
    free = shutil.disk_usage(existing).free
    held = sum(
        p.stat().st_size
        for p in (folder / "outbox.sqlite", folder / "outbox.sqlite-wal")
        if p.exists()
    )
    found = (
        f"{free / 1e6:,.0f} MB free, the outbox holds {held / 1e6:,.1f} MB of its "
        f"{quota / 1e6:,.0f} MB quota"
    )
    if free + held < quota:
        room = int((free + held) * 0.9 / 1e6)
        return Check(
            what,
            False,
            found,
            f"the outbox may grow to its quota and fill the disk: lower [storage] quota_mb to "
            f"{room} or less, or free space on that filesystem",
        )
    return Check(what, True, found)


def _identification(model: DeviceModel) -> DeviceModel:
    """The model reduced to its identification registers (ASCII), or its first measurement."""
    texts = tuple(m for m in model.measurements if m.type == "ASCII")
    probe = texts or model.measurements[:1]
    return dataclasses.replace(model, measurements=probe, outputs=())


def _where(device: DeviceSettings) -> str:
    c = device.connection
    if isinstance(c, RtuConnection):
        return f"{c.port} unit {c.unit_id}"
    return f"{c.host}:{c.port} unit {c.unit_id}"


def device_checks(settings: Settings, timeout_s: float) -> Iterator[Check]:
    """Each device: reachable, and answering its identification registers as its model."""
    if not settings.devices:
        yield Check("devices", None, "none configured")
        return
    library = ModelLibrary(settings.gateway.model_dirs)
    models: dict[str, DeviceModel] = {}
    for index, device in enumerate(settings.devices):
        try:
            models[device.id] = _identification(library.get(device.model))
        except PanelfastError as exc:
            yield Check(
                f"device {device.id}",
                False,
                str(exc),
                f"devices[{index}].model must name a model shipped or in [gateway] model_dirs",
            )
    # Polled soon and once, without retry: what answers a first request is what is checked.
    probed = [
        d.model_copy(update={"connection": d.connection.model_copy(update={"period_ms": 200})})
        for d in settings.devices
        if d.id in models
    ]
    if not probed:
        return
    acquisition = Acquisition(((d, models[d.id]) for d in probed), retries=0)
    acquisition.start()
    try:
        longest = max(d.connection.timeout_ms for d in probed) / 1000
        deadline = time.monotonic() + 2 * longest + 2
        while time.monotonic() < deadline:
            if all(d.cycles >= 1 for d in acquisition.diagnostics()):
                break
            time.sleep(0.05)
        diagnostics = {d.device_id: d for d in acquisition.diagnostics()}
        texts = acquisition.snapshot().texts
    finally:
        acquisition.stop()
    indices = {d.id: i for i, d in enumerate(settings.devices)}
    for device in probed:
        model = models[device.id]
        read = {
            m.id: texts.get(acquisition.index(device.id, m.id), "")
            for m in model.measurements
            if m.type == "ASCII"
        }
        yield _device_check(device, indices[device.id], model, diagnostics[device.id], read)


def _device_check(
    device: DeviceSettings,
    index: int,
    model: DeviceModel,
    diag: DeviceDiagnostics,
    texts: dict[str, str],
) -> Check:
    where = _where(device)
    what = f"device {device.id} ({device.model} at {where})"
    key = f"devices[{index}]"
    error = diag.last_error
    if diag.cycles == 0 or (error is not None and diag.requests == diag.errors):
        if error is None:
            return Check(what, False, "not polled in time", f"check {key}.connection")
        if error.kind == "timeout":
            fix = (
                f"no answer from unit {device.connection.unit_id}: check {key}.connection.unit_id, "
                f"that the device is powered and its Modbus server on (or raise "
                f"{key}.connection.timeout_ms)"
            )
        elif error.kind == "exception":
            fix = (
                f"the device refused reading its identification registers ({error.name}): "
                f"check {key}.model ({device.model}) is this kind of device, and the unit id"
            )
        else:
            fix = (
                f"nothing answers Modbus at {where}: check {key}.connection (host, port, serial "
                "port), the wiring, and that the device is powered"
            )
        return Check(what, False, error.message, fix)
    shown = ", ".join(f"{k} {v!r}" for k, v in texts.items() if v)
    rtt = f"{diag.rtt_last_ms:.1f} ms"
    if not texts:
        return Check(what, True, f"answered in {rtt} (its model has no identification registers)")
    if any(model.name.lower() in v.lower() for v in texts.values()):
        return Check(what, True, f"answered in {rtt}: {shown}")
    return Check(
        what,
        False,
        f"answers as {shown or 'blank identification registers'}",
        f"the device does not say it is a {model.name}: check {key}.model and "
        f"{key}.connection.unit_id (another device may answer at this address)",
    )
