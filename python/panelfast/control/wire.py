"""The CLI's way to the running daemon: HTTP on its Unix socket, standard library only.

A command typed by a person must answer at once: this module imports no
more than ``http.client`` and ``tomllib`` (no pydantic, no httpx, no
numpy). It finds the socket from the configuration file the way the daemon
does (``[control] socket``, else ``control.sock`` in ``[storage] dir``, both
relative to the file's folder), without validating the whole file: the
running daemon already did.
"""

from __future__ import annotations

import json
import os
import socket
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from panelfast.exceptions import PanelfastError

__all__ = [
    "Answer",
    "GatewayNotRunning",
    "Wire",
    "hold_storage",
    "holding",
    "release_storage",
    "socket_for",
]

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


def release_storage() -> None:
    """Let go of every storage directory :func:`hold_storage` took."""
    while _held:
        _, fd = _held.popitem()
        os.close(fd)


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


class _Exchange:
    """One HTTP/1.1 request on the control socket and its answer, read as it comes.

    The daemon is the only peer, and it answers with a length or in chunks:
    these few lines are all of HTTP the command needs, where ``http.client``
    would import the email parser and ssl for every ``panelfast status``.
    """

    def __init__(self, path: Path, timeout: float) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(os.fspath(path))
        except (FileNotFoundError, ConnectionRefusedError):
            self._sock.close()
            raise GatewayNotRunning(path) from None
        except BaseException:
            self._sock.close()
            raise
        self._file = self._sock.makefile("rb")

    def send(self, method: str, route: str, headers: dict[str, str], body: bytes) -> None:
        head = f"{method} {route} HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        head += f"Content-Length: {len(body)}\r\n\r\n"
        self._sock.sendall(head.encode("latin-1") + body)

    def head(self) -> tuple[int, dict[str, str]]:
        """The status and the headers (names in lower case)."""
        status_line = self._file.readline()
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
            raise OSError(f"not an HTTP answer: {status_line[:60]!r}")
        headers = {}
        while (line := self._file.readline().rstrip(b"\r\n")) != b"":
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(parts[1]), headers

    def body(self, headers: dict[str, str]) -> Iterator[bytes]:
        """The body as it arrives: by length, in chunks, or until the daemon closes."""
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while size := int(self._file.readline().split(b";")[0].strip() or b"0", 16):
                yield self._file.read(size)
                self._file.readline()  # the CRLF after each chunk
        elif "content-length" in headers:
            yield self._file.read(int(headers["content-length"]))
        else:
            yield self._file.read()

    def close(self) -> None:
        self._file.close()
        self._sock.close()


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
        headers = {"Accept": "text/plain" if text else "application/json"}
        data = b""
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        exchange = _Exchange(self.path, self.timeout)
        try:
            exchange.send(method, route, headers, data)
            status, answer_headers = exchange.head()
            content = b"".join(exchange.body(answer_headers))
            return Answer(status, content, answer_headers.get("content-type", ""))
        finally:
            exchange.close()

    def events(self) -> Iterator[tuple[str, Any]]:
        """The daemon's event stream: (event name, JSON data), until it closes."""
        exchange = _Exchange(self.path, self.timeout)
        try:
            exchange.send("GET", "/v1/events", {"Accept": "text/event-stream"}, b"")
            _, headers = exchange.head()
            event, data, pending = "message", b"", b""
            for chunk in exchange.body(headers):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for raw in lines:
                    line = raw.rstrip(b"\r")
                    if not line:
                        if data:
                            yield event, json.loads(data)
                        event, data = "message", b""
                    elif line.startswith(b"event:"):
                        event = line[6:].strip().decode()
                    elif line.startswith(b"data:"):
                        data += line[5:].strip()
        finally:
            exchange.close()
