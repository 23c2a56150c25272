"""Faults the operator injects: the next N requests to a route or a host misbehave.

A fault targets a service (``bootstrap``, ``hub``, ``upload``: one host each
for the gateway), one route (``data``, ``config``, ``upload_put``...), or every
spec route (``*``). Each request takes at most one fault, the oldest that
matches; the operator API itself is never faulted.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import asdict, dataclass
from typing import Any, Literal

from panelfast.exceptions import RefCloudError

__all__ = ["FAULT_KINDS", "ROUTES", "SERVICES", "Fault", "FaultKind", "Faults"]

FaultKind = Literal["unavailable", "rate_limited", "delay", "drop"]
FAULT_KINDS: tuple[str, ...] = ("unavailable", "rate_limited", "delay", "drop")
SERVICES = ("bootstrap", "hub", "upload")
ROUTES = (
    "bootstrap",
    "topology",
    "config",
    "config_report",
    "data",
    "alarms",
    "commands",
    "command_result",
    "outputs",
    "disconnect",
    "upload_create",
    "upload_put",
    "upload_complete",
)


@dataclass
class Fault:
    """``kind`` for the next ``remaining`` requests matching ``target``."""

    id: int
    kind: FaultKind
    target: str
    remaining: int
    retry_after_s: int = 1
    delay_s: float = 1.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Faults:
    """The pending faults, shared by the request path and the operator (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)

    def add(
        self,
        kind: str,
        target: str = "*",
        count: int = 1,
        *,
        retry_after_s: int = 1,
        delay_s: float = 1.0,
    ) -> Fault:
        if kind not in FAULT_KINDS:
            raise RefCloudError(f"unknown fault kind {kind!r}; one of {', '.join(FAULT_KINDS)}")
        if target != "*" and target not in SERVICES and target not in ROUTES:
            raise RefCloudError(
                f"unknown fault target {target!r}: '*', a service ({', '.join(SERVICES)}) "
                f"or a route ({', '.join(ROUTES)})"
            )
        if count < 1:
            raise RefCloudError("a fault applies to at least one request")
        if retry_after_s < 0 or delay_s < 0:
            raise RefCloudError("retry_after_s and delay_s must be >= 0")
        fault = Fault(
            id=next(self._ids),
            kind=kind,  # type: ignore[arg-type]  # checked against FAULT_KINDS above
            target=target,
            remaining=count,
            retry_after_s=retry_after_s,
            delay_s=delay_s,
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(self, service: str, route: str) -> Fault | None:
        """The fault this request suffers, if any; it counts against the fault's remaining."""
        with self._lock:
            for fault in self._faults:
                if fault.target in ("*", service, route):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def pending(self) -> list[Fault]:
        with self._lock:
            return [Fault(**f.as_dict()) for f in self._faults]

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
