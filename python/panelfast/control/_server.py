"""Serving the control API inside the daemon: a Unix socket for local users.

The socket lives in the storage directory (``control.sock``, or
``[control] socket``). Its mode, 0660, is the boundary for local users: the
daemon's user and its group (``[control] group``, e.g. ``panelfast``) may
use it, nobody else. Each request knows its caller's uid from the kernel
(``SO_PEERCRED``), which the audit log records.

uvicorn serves the Starlette app on the daemon's own event loop; its signal
handling is left out (the daemon handles SIGTERM and stops the server).
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import logging
import os
import socket
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from panelfast.exceptions import ConfigError, ConfigIssue

__all__ = ["ControlServer", "EmbeddedServer", "socket_path"]

log = logging.getLogger(__name__)

SOCKET_FILE = "control.sock"
#: sun_path holds 108 bytes, its terminating NUL included.
_MAX_SOCKET_PATH = 107


def socket_path(storage: Path, configured: Path | None = None) -> Path:
    return configured if configured is not None else storage / SOCKET_FILE


class _PeerCredentials(H11Protocol):
    """Names a Unix-socket caller by its uid (from the kernel) in the ASGI scope's client."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family == socket.AF_UNIX:
            raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            pid, uid, _gid = struct.unpack("3i", raw)
            self.client = (f"socket:uid={uid}", pid)


class EmbeddedServer(uvicorn.Server):
    """uvicorn on the daemon's own loop, leaving the signals to the daemon."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the daemon owns SIGTERM and SIGINT


class ControlServer:
    """Serves ``app`` on the control socket until :meth:`stop`."""

    def __init__(self, app: Any, path: Path, *, group: str | None = None) -> None:
        if len(os.fsencode(path)) > _MAX_SOCKET_PATH:
            raise ConfigError(
                "(control)",
                [
                    ConfigIssue(
                        "control.socket",
                        f"{path} is longer than a Unix socket path may be "
                        f"({_MAX_SOCKET_PATH} bytes): set a shorter [control] socket",
                    )
                ],
            )
        self.path = path
        self._group = group
        config = uvicorn.Config(
            app,
            http=_PeerCredentials,
            lifespan="off",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        self._server = EmbeddedServer(config)
        self._task: asyncio.Task[None] | None = None

    def _bind(self) -> socket.socket:
        # A socket file left by a daemon that was killed: the storage lock is
        # ours, so nobody serves on it any more.
        self.path.unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o117)  # never briefly reachable by others
        try:
            sock.bind(str(self.path))
        finally:
            os.umask(old)
        os.chmod(self.path, 0o660)
        if self._group:
            os.chown(self.path, -1, grp.getgrnam(self._group).gr_gid)
        sock.listen(64)
        sock.setblocking(False)
        return sock

    async def start(self) -> None:
        sock = self._bind()
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="control API")
        while not self._server.started:
            if self._task.done():
                await self._task  # raises what stopped it
                raise RuntimeError("the control API stopped at start")
            await asyncio.sleep(0.01)
        log.info("control API on %s", self.path)

    async def stop(self) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        self.path.unlink(missing_ok=True)
