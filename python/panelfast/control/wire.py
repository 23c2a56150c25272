"""The CLI's way to the running daemon: HTTP on its Unix socket, standard library only.

A command typed by a person must answer at once: this module imports no
more than ``http.client`` and ``tomllib`` (no pydantic, no httpx, no
numpy). It finds the socket from the configuration file the way the daemon
does (``[control] socket``, else ``control.sock`` in ``[storage] dir``, both
relative to the file's folder), without validating the whole file: the
running daemon already did.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from panelfast.exceptions import PanelfastError

__all__ = ["Answer", "GatewayNotRunning", "Wire", "hold_storage", "holding", "socket_for"]

_DEFAULT_STORAGE = Path("/var/lib/panelfast")


class GatewayNotRunning(PanelfastError):
    """No daemon answers on the control socket."""

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(f"gateway not running (no control API on {path})")


def _where(config_path: Path) -> tuple[Path, Path] | None:
    """(storage directory, control socket) as the configuration names them."""
    try:
        document = tomllib.loads(config_path.read_text(encoding="utf-8"))
        base = config_path.parent
        storage = base / Path(document.get("storage", {}).get("dir", _DEFAULT_STORAGE))
        configured = document.get("control", {}).get("socket")
        socket_path = base / Path(configured) if configured else storage / "control.sock"
    except (OSError, ValueError, TypeError, AttributeError):
        return None
    return storage, socket_path


def socket_for(config_path: Path) -> Path | None:
    """The control socket the configuration names; None if the file cannot be read
    (the caller then loads it the full way, which says what is wrong)."""
    where = _where(config_path)
    return where[1] if where else None


_held: dict[Path, int] = {}


def holding(storage: Path) -> bool:
    """This process holds ``storage`` (taken by :func:`hold_storage`)."""
    return storage in _held


def hold_storage(config_path: Path) -> bool:
    """Take the storage directory's lock for the rest of this process, if no daemon
    holds it: True when this process may work on the gateway's state itself.

    Taken, no daemon can start until the command ends; refused, a daemon holds
    it (it may still be starting). The holder's PID in the file is left as it
    is: it names the daemon that ran last.
    """
    import fcntl

    where = _where(config_path)
    if where is None:
        return True  # the caller loads the file the full way, and says what is wrong
    storage = where[0]
    if storage in _held:
        return True
    if not storage.is_dir():
        return True  # no gateway ever ran there: nothing to hold
    fd = os.open(storage / "panelfast.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    _held[storage] = fd  # released when the process exits
    return True


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(os.fspath(self._path))
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class Answer:
    def __init__(self, status: int, body: bytes, content_type: str) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        return json.loads(self.body)

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def error_message(self) -> str:
        """The daemon's explanation of a refusal, with its hint if it gave one."""
        try:
            error = self.json()
            message = str(error.get("message", "")) or self.text()
            hint = error.get("hint")
            return f"{message}\nhint: {hint}" if hint else message
        except (ValueError, AttributeError):
            return self.text().strip() or f"HTTP {self.status}"


class Wire:
    """Requests to the daemon on ``path``; :class:`GatewayNotRunning` when none answers."""

    def __init__(self, path: Path, *, timeout: float = 120.0) -> None:
        self.path = path
        self.timeout = timeout

    def request(
        self, method: str, route: str, body: object = None, *, text: bool = False
    ) -> Answer:
        connection = _UnixConnection(self.path, self.timeout)
        headers = {"Accept": "text/plain" if text else "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            connection.request(method, route, body=data, headers=headers)
            response = connection.getresponse()
            return Answer(response.status, response.read(), response.getheader("content-type", ""))
        except (FileNotFoundError, ConnectionRefusedError):
            raise GatewayNotRunning(self.path) from None
        finally:
            connection.close()

    def events(self) -> Iterator[tuple[str, Any]]:
        """The daemon's event stream: (event name, JSON data), until it closes."""
        connection = _UnixConnection(self.path, self.timeout)
        try:
            connection.request("GET", "/v1/events", headers={"Accept": "text/event-stream"})
            response = connection.getresponse()
        except (FileNotFoundError, ConnectionRefusedError):
            connection.close()
            raise GatewayNotRunning(self.path) from None
        try:
            event, data = "message", b""
            for line in response:
                line = line.rstrip(b"\r\n")
                if not line:
                    if data:
                        yield event, json.loads(data)
                    event, data = "message", b""
                elif line.startswith(b"event:"):
                    event = line[6:].strip().decode()
                elif line.startswith(b"data:"):
                    data += line[5:].strip()
        finally:
            connection.close()
