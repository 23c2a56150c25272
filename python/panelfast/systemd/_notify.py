"""systemd's service notification protocol (sd_notify(3)), in the few lines it takes.

The service manager passes ``NOTIFY_SOCKET``: a datagram socket's path, or
``@name`` in the abstract namespace. Each notification is one datagram of
``KEY=VALUE`` lines (``READY=1``, ``STATUS=...``, ``WATCHDOG=1``,
``STOPPING=1``). ``WATCHDOG_USEC`` (for ``WATCHDOG_PID``, if set) asks for a
``WATCHDOG=1`` at least that often. Outside systemd nothing is set and every
call does nothing.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

__all__ = ["Notifier"]

log = logging.getLogger(__name__)


class Notifier:
    """Sends notifications to the service manager, if one listens."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._address: str | None = None
        self._socket: socket.socket | None = None
        where = env.get("NOTIFY_SOCKET", "")
        if where.startswith("@"):
            self._address = "\0" + where[1:]  # the abstract namespace
        elif where.startswith("/"):
            self._address = where
        elif where:
            log.warning("NOTIFY_SOCKET %r is not a Unix socket: systemd is not told", where)
        if self._address is not None:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        #: How often systemd expects ``WATCHDOG=1`` (None: no watchdog).
        self.watchdog_s: float | None = None
        usec, pid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog_s = int(usec) / 1_000_000
        self._failed = False

    @property
    def enabled(self) -> bool:
        return self._socket is not None

    def notify(self, *lines: str) -> bool:
        """Send one notification; False if nobody listens or it could not be sent."""
        if self._socket is None or self._address is None:
            return False
        try:
            self._socket.sendto("\n".join(lines).encode("utf-8"), self._address)
        except OSError as exc:
            if not self._failed:  # once: a service manager that went away stays gone
                log.warning("systemd notification not delivered: %s", exc)
                self._failed = True
            return False
        self._failed = False
        return True

    def ready(self, status: str) -> bool:
        return self.notify("READY=1", f"STATUS={status}")

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def stopping(self, status: str) -> bool:
        return self.notify("STOPPING=1", f"STATUS={status}")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
