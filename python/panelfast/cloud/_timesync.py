"""Time synchronisation: the gateway's clock, corrected by SNTP, never the system's.

The claim signature (cloud protocol §3) is refused when the gateway's clock is
more than 300 s off the cloud's, and command expiry (§9) is judged by the
synchronised clock. So the gateway keeps its own :class:`Clock`: the system
clock plus the offset last measured against an NTP server. The system clock
itself is never changed (that needs privileges and would surprise the host).

Modes (``[time] mode``): ``manual`` trusts the system clock; ``ntp`` queries
the configured server; ``cloud`` queries the server the bootstrap named, or the
configured one before the first bootstrap.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import ntplib  # type: ignore[import-untyped]

from panelfast.clock import Clock
from panelfast.config import TimeSettings

__all__ = ["Clock", "SyncStatus", "TimeSync", "parse_ntp_server"]

NTP_PORT = 123
#: After a failed NTP query, the next one waits this long.
SYNC_RETRY_S = 30.0

log = logging.getLogger(__name__)

SyncState = Literal["manual", "not synchronised", "synchronised", "failed"]


@dataclass(frozen=True)
class SyncStatus:
    """What the status page and ``panelfast status`` show about time."""

    mode: str
    server: str | None
    state: SyncState
    offset_s: float = 0.0
    synced_at: float | None = None
    error: str = ""
    #: Mode cloud before the first bootstrap: the cloud has not named its server yet.
    awaiting_cloud: bool = False

    def describe(self) -> str:
        if self.state == "manual":
            return "manual (system clock, not synchronised)"
        if self.state == "not synchronised" and self.awaiting_cloud:
            until = f"; {self.server} until then" if self.server else ""
            return (
                "not synchronised yet: waiting for the cloud to name its time server "
                f"(mode cloud, at the first connection){until}"
            )
        where = f" with {self.server}" if self.server else ""
        if self.state == "synchronised":
            return f"synchronised{where}, offset {self.offset_s:+.3f} s"
        if self.state == "failed":
            return f"synchronisation{where} failed: {self.error}"
        return f"not synchronised yet (mode {self.mode}{where})"

    def to_json(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, saved: Mapping[str, Any] | None) -> SyncStatus | None:
        """A saved status, or ``None`` if it is missing or not what :meth:`to_json` wrote."""
        if not saved:
            return None
        offset, synced_at = saved.get("offset_s"), saved.get("synced_at")
        state = saved.get("state")
        server = saved.get("server")
        if (
            state not in ("manual", "not synchronised", "synchronised", "failed")
            or isinstance(offset, bool)
            or not isinstance(offset, int | float)
            or not (synced_at is None or isinstance(synced_at, int | float))
            or not (server is None or isinstance(server, str))
        ):
            return None
        return cls(
            mode=str(saved.get("mode", "")),
            server=server,
            state=state,
            offset_s=float(offset),
            synced_at=None if synced_at is None else float(synced_at),
            error=str(saved.get("error", "")),
            awaiting_cloud=saved.get("awaiting_cloud") is True,
        )


def parse_ntp_server(server: str) -> tuple[str, int]:
    """``host``, ``host:port`` or ``[v6]:port`` → (host, port); port 123 when absent."""
    text = server.strip()
    if not text:
        raise ValueError("the NTP server is empty")
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"NTP server {server!r} is not [address]:port")
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""  # a name, an IPv4 address or a bare IPv6 address
    if not host:
        raise ValueError(f"NTP server {server!r} has no host")
    if not port_text:
        return host, NTP_PORT
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"NTP server {server!r}: the port must be 1..65535")
    return host, int(port_text)


class TimeSync:
    """Measures the offset of the system clock against NTP and applies it to a :class:`Clock`."""

    def __init__(
        self,
        settings: TimeSettings,
        clock: Clock,
        *,
        cloud_ntp_server: str | None = None,
        timeout_s: float = 3.0,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.cloud_ntp_server = cloud_ntp_server
        self.timeout_s = timeout_s
        mode = settings.mode
        # When the last query was made (monotonic), by this process: None before any.
        self._last_try: float | None = None
        self._status = SyncStatus(
            mode=mode,
            server=self.server(),
            state="manual" if mode == "manual" else "not synchronised",
            awaiting_cloud=mode == "cloud" and not cloud_ntp_server,
        )

    @property
    def status(self) -> SyncStatus:
        return self._status

    def server(self) -> str | None:
        """The NTP server the current mode uses (``None`` in manual mode)."""
        if self.settings.mode == "manual":
            return None
        if self.settings.mode == "cloud" and self.cloud_ntp_server:
            return self.cloud_ntp_server
        return self.settings.ntp_server

    def restore(self, status: SyncStatus) -> None:
        """Carry the last offset (and what became of the last query) over a restart."""
        if status.state in ("synchronised", "failed") and self.settings.mode != "manual":
            self.clock.offset_s = status.offset_s
            self._status = dataclasses.replace(status, mode=self.settings.mode)

    async def sync_if_due(self, resync_s: float) -> None:
        """Query NTP unless the offset is fresh (``resync_s``), or a query just failed
        (an attempt must not wait twice)."""
        status = self._status
        if status.state == "manual":
            return
        since = time.monotonic() - self._last_try if self._last_try is not None else None
        if since is not None and since < (
            resync_s if status.state == "synchronised" else SYNC_RETRY_S
        ):
            return
        restored_fresh = (
            self._last_try is None
            and status.state == "synchronised"
            and self.clock.now() - (status.synced_at or 0.0) < resync_s
        )
        self._last_try = time.monotonic()
        if not restored_fresh:  # else measured by a previous run, recently enough
            await self.sync()

    async def sync(self) -> SyncStatus:
        """Query the NTP server once (logged); on failure the previous offset stays in use."""
        self._last_try = time.monotonic()
        status = await self._sync()
        _log(status)
        return status

    async def _sync(self) -> SyncStatus:
        server = self.server()
        if server is None:
            self.clock.offset_s = 0.0
            self._status = SyncStatus(mode="manual", server=None, state="manual")
            return self._status
        try:
            host, port = parse_ntp_server(server)
            offset = await asyncio.to_thread(self._query, host, port)
        except (ValueError, OSError, ntplib.NTPException) as exc:
            self._status = dataclasses.replace(
                self._status,
                mode=self.settings.mode,
                server=server,
                state="failed",
                error=_describe_failure(server, exc),
            )
            return self._status
        self.clock.offset_s = offset
        self._status = SyncStatus(
            mode=self.settings.mode,
            server=server,
            state="synchronised",
            offset_s=offset,
            synced_at=self.clock.now(),
        )
        return self._status

    def _query(self, host: str, port: int) -> float:
        response = ntplib.NTPClient().request(host, version=3, port=port, timeout=self.timeout_s)
        offset = float(response.offset)
        if response.stratum == 0 or response.leap == 3:
            # Stratum 0 is a "kiss-o'-death", leap 3 an unsynchronised server: no time to trust.
            raise ntplib.NTPException(
                f"the server is not synchronised (stratum {response.stratum})"
            )
        return offset


def _describe_failure(server: str, exc: BaseException) -> str:
    if isinstance(exc, socket.gaierror):
        return f"the NTP server {server} could not be resolved (DNS)"
    if isinstance(exc, ntplib.NTPException) and "No response" in str(exc):
        return f"no answer from {server} (UDP): check that the firewall lets NTP through"
    return f"{server}: {exc}"


def _log(status: SyncStatus) -> None:
    if status.state == "synchronised":
        log.info(
            "time synchronised with %s: offset %+.3f s",
            status.server,
            status.offset_s,
            extra={
                "event": "time.synchronised",
                "server": status.server,
                "offset_s": status.offset_s,
            },
        )
    elif status.state == "failed":
        log.warning(
            "time synchronisation failed: %s",
            status.error,
            extra={"event": "time.sync_failed", "server": status.server, "error": status.error},
        )
