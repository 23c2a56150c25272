"""Tell systemd how the running gateway is: readiness, watchdog pings, a status line.

The watchdog ping is earned: it is sent, at half ``WatchdogSec``, only while
every loop of the gateway runs, the acquisition engine too, and the sampling
loop keeps reaching its instants. It runs on the gateway's own event loop, so
a blocked loop stops the pings as well; systemd then restarts the service.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from panelfast import _probe
from panelfast.systemd._notify import Notifier

if TYPE_CHECKING:
    from panelfast.gateway import Gateway

__all__ = ["ServiceWatch", "status_line"]

log = logging.getLogger(__name__)

#: The status line is refreshed this often when there is no watchdog to ping.
STATUS_EVERY_S = 10.0
#: A sampling loop that reached no instant for this long is stuck.
HEARTBEAT_S = 10.0


def status_line(gateway: Gateway) -> str:
    """``Connected; 3/3 devices answering; remote configuration 4; 12 samples waiting``."""
    status = gateway.status()
    devices = gateway.diagnostics()
    answering = sum(d.state in ("ok", "degraded") for d in devices)
    version = status.remote_config.applied_version or "none"
    return (
        f"{status.cloud.connection.value}; {answering}/{len(devices)} devices answering; "
        f"remote configuration {version}; {status.backlog.samples_left} samples waiting"
    )


class ServiceWatch:
    """Readiness, watchdog and status of one gateway, for as long as :meth:`run` runs."""

    def __init__(self, gateway: Gateway, notifier: Notifier) -> None:
        self.gateway = gateway
        self.notifier = notifier
        self._instant: int | None = None
        self._instant_seen = time.monotonic()
        self._healthy = True
        self._status = ""

    def healthy(self) -> bool:
        """Every loop runs and the sampling loop reached an instant lately."""
        instant = _probe.counters(self.gateway).last_instant_ms
        if instant != self._instant:
            self._instant, self._instant_seen = instant, time.monotonic()
        stuck = time.monotonic() - self._instant_seen > HEARTBEAT_S
        return _probe.loops_alive(self.gateway) and not stuck

    def ready(self) -> None:
        self._status = status_line(self.gateway)
        self.notifier.ready(self._status)

    def stopping(self) -> None:
        self.notifier.stopping("stopping: every sample taken is kept in the outbox")

    async def run(self) -> None:
        watchdog = self.notifier.watchdog_s
        interval = min(watchdog / 2, STATUS_EVERY_S) if watchdog else STATUS_EVERY_S
        while True:
            await asyncio.sleep(interval)
            self.tick()

    def tick(self) -> None:
        healthy = self.healthy()
        if healthy and self.notifier.watchdog_s:
            self.notifier.watchdog()
        if healthy != self._healthy:
            self._healthy = healthy
            if healthy:
                log.info("gateway loops healthy again", extra={"event": "gateway.healthy"})
            else:
                log.error(
                    "a gateway loop or the acquisition stopped: no more watchdog pings",
                    extra={"event": "gateway.unhealthy"},
                )
        line = status_line(self.gateway) if healthy else "unhealthy: a loop stopped"
        if line != self._status:
            self._status = line
            self.notifier.status(line)
