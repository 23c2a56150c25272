"""What the cloud's operator does: enrol gateways, set configurations, queue
commands, inject faults, and look at what was received.

The same functions serve the in-process Python API (:class:`RefCloud`), the
``/operator`` HTTP API and, through it, the ``panelfast refcloud`` CLI.
Gateways are named by serial, as an operator knows them.
"""

from __future__ import annotations

import itertools
import re
import secrets
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from panelfast.exceptions import RefCloudError
from panelfast.refcloud.documents import check_config, generate_config, parse_command
from panelfast.refcloud.faults import Fault
from panelfast.refcloud.state import CloudState
from panelfast.refcloud.storage import ConfigRecord

__all__ = ["Operator"]

_SERIAL = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_KEY = re.compile(r"^[0-9a-fA-F]{64}$")


class Operator:
    """The operator's functions over one cloud's state."""

    def __init__(self, state: CloudState) -> None:
        self.state = state

    def _device_id(self, serial: str) -> str:
        device = self.state.storage.device_by_serial(serial)
        if device is None:
            raise RefCloudError(f"serial {serial} was never enrolled")
        return device.device_id

    # -- enrolment ----------------------------------------------------------------------

    def enrol(self, serial: str, claim_key: str | None = None) -> str:
        """Enrol ``serial``; returns its claim key (made if not given: 32 random bytes, hex)."""
        if not _SERIAL.match(serial):
            raise RefCloudError(f"serial {serial!r} must match [A-Za-z0-9_.-]{{1,64}}")
        key = claim_key if claim_key is not None else secrets.token_hex(32)
        if not _KEY.match(key):
            raise RefCloudError("a claim key is 32 bytes, hex-encoded (64 hex digits)")
        self.state.storage.enrol(serial, key.lower())
        return key.lower()

    def de_enrol(self, serial: str) -> None:
        if not self.state.storage.de_enrol(serial):
            raise RefCloudError(f"serial {serial} is not enrolled")

    def device_id(self, serial: str) -> str:
        return self._device_id(serial)

    def enrolments(self) -> list[dict[str, Any]]:
        """Every serial ever enrolled, without its claim key."""
        return [
            {
                "serial": d.serial,
                "device_id": d.device_id,
                "enrolled": d.enrolled,
                "model": d.model,
                "firmware": d.firmware,
                "mac": d.mac,
                "last_bootstrap": d.last_bootstrap,
            }
            for d in self.state.storage.devices()
        ]

    def expire_tokens(self, serial: str | None = None) -> int:
        """Make the tokens of ``serial`` (or of everyone) expired now; how many were live."""
        device_id = self._device_id(serial) if serial is not None else None
        return self.state.storage.expire_tokens(device_id)

    # -- remote configuration -------------------------------------------------------------

    def set_config(
        self, serial: str, document: Mapping[str, Any], *, raw: bool = False, check: bool = False
    ) -> dict[str, Any]:
        """Publish a configuration; returns the document as served (with its version).

        ``raw`` serves it exactly as given (its ``version`` untouched); ``check``
        first checks it against the device's latest topology as a gateway would.
        """
        device_id = self._device_id(serial)
        if not isinstance(document, Mapping):
            raise RefCloudError("a configuration is a JSON object")
        if check:
            topology = self.state.storage.latest_topology(device_id)
            issues = check_config({**document, "version": "0"}, topology[1] if topology else None)
            if issues:
                text = "; ".join(f"{path}: {message}" for path, message in issues[:5])
                raise RefCloudError(f"invalid configuration: {text}")
        record = self.state.storage.add_config(device_id, dict(document), raw=raw)
        self.state.signals.notify(device_id, "config")
        return self._served(record)

    @staticmethod
    def _served(record: ConfigRecord) -> dict[str, Any]:
        return {"version": record.version, "document": record.document}

    def generate_config(
        self,
        serial: str,
        *,
        period_s: int,
        publisher_period_s: int | None = None,
        devices: Sequence[str] | None = None,
        alarms: Sequence[Mapping[str, Any]] = (),
    ) -> dict[str, Any]:
        """Publish a configuration sampling every measurement of the published topology."""
        device_id = self._device_id(serial)
        topology = self.state.storage.latest_topology(device_id)
        if topology is None:
            raise RefCloudError(f"{serial} has not published a topology yet")
        document = generate_config(
            topology[1],
            period_s=period_s,
            publisher_period_s=publisher_period_s,
            devices=devices,
            alarms=alarms,
        )
        return self.set_config(serial, document)

    def configs(self, serial: str) -> dict[str, Any] | None:
        """The latest configuration issued, or None."""
        record = self.state.storage.latest_config(self._device_id(serial))
        return None if record is None else self._served(record)

    # -- commands ---------------------------------------------------------------------------

    def queue_command(
        self, serial: str, command: Mapping[str, Any], *, raw: bool = False
    ) -> dict[str, Any]:
        """Queue a command (spec §9 without ``id``); returns it with its id.

        ``raw`` queues it unchecked (to see how a gateway refuses a malformed one).
        """
        device_id = self._device_id(serial)
        if not isinstance(command, Mapping):
            raise RefCloudError("a command is a JSON object")
        body = {k: v for k, v in command.items() if k != "id"} if raw else parse_command(command)
        queued = self.state.storage.queue_command(device_id, body)
        self.state.signals.notify(device_id, "commands")
        return queued

    def commands(self, serial: str) -> list[dict[str, Any]]:
        """Every command queued for ``serial`` with its deliveries and result."""
        return [
            {
                "command": c.body,
                "deliveries": c.deliveries,
                "result": None
                if c.result_status is None
                else {"status": c.result_status, "reason": c.result_reason},
            }
            for c in self.state.storage.commands(self._device_id(serial))
        ]

    # -- faults -----------------------------------------------------------------------------

    def inject_fault(
        self,
        kind: str,
        target: str = "*",
        count: int = 1,
        *,
        retry_after_s: int = 1,
        delay_s: float = 1.0,
    ) -> dict[str, Any]:
        """The next ``count`` requests to ``target`` answer ``kind`` (see :mod:`.faults`)."""
        fault: Fault = self.state.faults.add(
            kind, target, count, retry_after_s=retry_after_s, delay_s=delay_s
        )
        return fault.as_dict()

    def faults(self) -> list[dict[str, Any]]:
        return [f.as_dict() for f in self.state.faults.pending()]

    def clear_faults(self) -> None:
        self.state.faults.clear()

    # -- what was received --------------------------------------------------------------------

    def topology(self, serial: str) -> dict[str, Any] | None:
        """The latest topology published: ``{"version", "document", "receipts"}``."""
        device_id = self._device_id(serial)
        latest = self.state.storage.latest_topology(device_id)
        if latest is None:
            return None
        return {
            "version": latest[0],
            "document": latest[1],
            "receipts": self.state.storage.topology_receipts(device_id),
        }

    def reports(self, serial: str) -> list[dict[str, Any]]:
        return self.state.storage.reports(self._device_id(serial))

    def last_seq(self, serial: str) -> int:
        return self.state.storage.last_seq(self._device_id(serial))

    def batches(self, serial: str) -> list[dict[str, Any]]:
        return self.state.storage.batches(self._device_id(serial))

    def sample_counts(self, serial: str) -> Counter[tuple[str, int]]:
        """How many times each ``("<device>/<measurement>", t_ms)`` was received."""
        return self.state.storage.sample_counts(self._device_id(serial))

    def samples(self, serial: str) -> dict[str, list[tuple[int, float | int | None]]]:
        """``"<device>/<measurement>" -> [(t_ms, value), ...]`` in time order (all received)."""
        out: dict[str, list[tuple[int, float | int | None]]] = {}
        for s in self.state.storage.series(self._device_id(serial)):
            points = out.setdefault(f"{s.device}/{s.measurement}", [])
            points.extend((s.t0 + j * s.dt, v) for j, v in enumerate(s.values))
        for points in out.values():
            points.sort(key=lambda p: p[0])
        return out

    def coverage(self, serial: str) -> dict[str, dict[str, Any]]:
        """Per measurement: first/last instant, sample count, nils, repeats, contiguous spans."""
        result: dict[str, dict[str, Any]] = {}
        for name, points in self.samples(serial).items():
            times = [t for t, _ in points]
            distinct = sorted(set(times))
            spans: list[list[int]] = []
            steps = Counter(b - a for a, b in itertools.pairwise(distinct))
            step = steps.most_common(1)[0][0] if steps else 0
            for t in distinct:
                if spans and t - spans[-1][1] == step:
                    spans[-1][1] = t
                else:
                    spans.append([t, t])
            result[name] = {
                "first": distinct[0] if distinct else None,
                "last": distinct[-1] if distinct else None,
                "samples": len(times),
                "distinct": len(distinct),
                "repeated": len(times) - len(distinct),
                "nil": sum(1 for _, v in points if v is None),
                "step_ms": step,
                "spans": spans,
            }
        return result

    def alarm_events(self, serial: str) -> list[dict[str, Any]]:
        return self.state.storage.alarm_events(self._device_id(serial))

    def output_states(self, serial: str) -> list[dict[str, Any]]:
        return self.state.storage.output_states(self._device_id(serial))

    def uploads(self, serial: str) -> list[dict[str, Any]]:
        return [
            {
                "upload_id": u.upload_id,
                "kind": u.kind,
                "size": u.size,
                "sha256": u.sha256,
                "content_type": u.content_type,
                "received_size": u.received_size,
                "completed": u.completed,
                "topology_version": u.topology_version,
            }
            for u in self.state.storage.uploads(self._device_id(serial))
        ]

    def upload_bytes(self, upload_id: str) -> bytes:
        path = self.state.upload_dir / upload_id
        if not re.match(r"^u-[0-9a-f]+$", upload_id) or not path.exists():
            raise RefCloudError(f"no bytes for upload {upload_id}")
        return path.read_bytes()

    def disconnects(self, serial: str) -> list[float]:
        return self.state.storage.disconnects(self._device_id(serial))

    def requests(self, since: float = 0.0) -> list[tuple[float, str, str, str]]:
        """The spec requests received after ``since`` (unix s): time, service, route, path."""
        return [r for r in list(self.state.requests) if r[0] > since]

    def inspect(self, serial: str) -> dict[str, Any]:
        """Everything received from ``serial``, for a person to read."""
        return {
            "device_id": self._device_id(serial),
            "topology": self.topology(serial),
            "config": self.configs(serial),
            "reports": self.reports(serial),
            "data": {
                "last_seq": self.last_seq(serial),
                "batches": len(self.batches(serial)),
                "coverage": self.coverage(serial),
            },
            "alarm_events": self.alarm_events(serial),
            "commands": self.commands(serial),
            "output_states": self.output_states(serial),
            "uploads": self.uploads(serial),
            "disconnects": self.disconnects(serial),
        }
