"""The cloud connection as the user sees it: Connection status, Connection
diagnostics and the hint (§4), with time synchronisation and the cloud's
device id.

Plain values, apart from :class:`~panelfast.cloud._session.CloudSession`
that produces them: the status page, the CLI and the control API's types
use them without the session's machinery.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from panelfast.cloud._timesync import SyncStatus

__all__ = ["CloudStatus", "ConnectionStatus", "Diagnostic", "saved_diagnostic"]


class ConnectionStatus(StrEnum):
    NOT_CONNECTED = "Not connected"
    IN_PROGRESS = "Connection in progress"
    CONNECTED = "Connected"


class Diagnostic(StrEnum):
    ACTIVATED = "Device activated"
    NOT_REGISTERED = "Device not registered"
    NETWORK_UNREACHABLE = "Network unreachable"
    BAD_CREDENTIALS = "Bad credentials"


def saved_diagnostic(saved: str | None) -> Diagnostic | None:
    """A saved diagnostic; one this version does not know (a hand-edited file) is none."""
    return Diagnostic(saved) if saved in {d.value for d in Diagnostic} else None


@dataclass(frozen=True)
class CloudStatus:
    """What the status page and ``panelfast status`` show."""

    connection: ConnectionStatus
    diagnostic: Diagnostic | None
    hint: str
    time: SyncStatus
    device_id: str | None
    attempt_at: float | None

    def rows(self) -> list[tuple[str, str]]:
        rows = [
            ("Connection status", self.connection.value),
            ("Connection diagnostics", self.diagnostic.value if self.diagnostic else "-"),
        ]
        if self.hint:
            rows.append(("Hint", self.hint))
        rows.append(("Time synchronisation", self.time.describe()))
        if self.device_id:
            rows.append(("Cloud device id", self.device_id))
        return rows

    def text(self) -> str:
        rows = self.rows()
        width = max(len(label) for label, _ in rows)
        return "\n".join(f"{label + ':':<{width + 1}} {value}" for label, value in rows)
