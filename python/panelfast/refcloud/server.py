"""Running a reference cloud: in-process (a uvicorn server on its own thread) or
in the foreground (``panelfast refcloud serve``), over HTTPS with its own CA.

The sockets are bound before the server starts, so port 0 works and the URLs
are known at once. With ``separate_ports`` bootstrap, hub and upload each
listen on a port of their own and refuse the others' routes, as three hosts
would; ``hub_host`` / ``upload_host`` name them differently in what bootstrap
returns (``localhost`` vs ``127.0.0.1``: both are in the certificate).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import ssl
import threading
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import uvicorn

from panelfast._durable import write_atomically
from panelfast.exceptions import RefCloudError
from panelfast.refcloud.app import create_app
from panelfast.refcloud.operator import Operator
from panelfast.refcloud.state import CloudState, Settings
from panelfast.refcloud.tls import DEFAULT_HOSTS, ensure_tls

__all__ = ["SERVER_FILE", "RefCloud"]

#: Written in the state folder while a cloud serves: where it listens.
SERVER_FILE = "server.json"
_SERVICES = ("bootstrap", "hub", "upload")


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class RefCloud(Operator):
    """A reference cloud over ``state_dir``, with the operator's functions.

    ``with RefCloud(tmp_path) as cloud:`` (or ``async with``) starts it on a
    thread; ``cloud.bootstrap_url``, ``cloud.ca_path``, ``cloud.enrol(...)``,
    ``cloud.set_config(...)``... are then usable from any thread.
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        separate_ports: bool = False,
        hub_host: str | None = None,
        upload_host: str | None = None,
        settings: Settings | None = None,
    ) -> None:
        super().__init__(CloudState(Path(state_dir), settings))
        self.tls = ensure_tls(
            self.state.state_dir, (*DEFAULT_HOSTS, *self.state.settings.extra_hosts)
        )
        self._host = host
        self._port = port
        self._separate = separate_ports
        self._hub_host = hub_host or host
        self._upload_host = upload_host or host
        self._sockets: list[socket.socket] = []
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # -- where it is -------------------------------------------------------------------------

    @property
    def ca_path(self) -> Path:
        """The CA bundle a gateway must trust to talk to this cloud."""
        return self.tls.ca_cert

    @property
    def bootstrap_url(self) -> str:
        return self.state.bootstrap_url

    @property
    def hub_url(self) -> str:
        return self.state.hub_url

    @property
    def upload_url(self) -> str:
        return self.state.upload_url

    @property
    def operator_url(self) -> str:
        return self.state.operator_url

    @property
    def operator_page_url(self) -> str:
        """The operator page (log in with :attr:`operator_token`)."""
        return f"{self.state.operator_url}/web/"

    @property
    def operator_token(self) -> str:
        return self.state.operator_token

    @property
    def ports(self) -> dict[str, int]:
        """The port each service listens on."""
        if self._separate:
            return {
                s: sock.getsockname()[1] for s, sock in zip(_SERVICES, self._sockets, strict=True)
            }
        port = self._sockets[0].getsockname()[1]
        return dict.fromkeys(_SERVICES, port)

    # -- running -------------------------------------------------------------------------------

    def _bind(self) -> None:
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        wanted = [self._port, 0, 0] if self._separate else [self._port]
        for port in wanted:
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((self._host, port))
            except OSError as err:
                sock.close()
                self._close_sockets()
                raise RefCloudError(f"cannot listen on {self._host}:{port}: {err}") from err
            sock.listen(128)
            sock.set_inheritable(True)
            self._sockets.append(sock)
        ports = self.ports
        if self._separate:
            self.state.port_services = {p: s for s, p in ports.items()}
        self.state.set_urls(
            bootstrap=f"https://{_url_host(self._host)}:{ports['bootstrap']}/bootstrap",
            hub=f"https://{_url_host(self._hub_host)}:{ports['hub']}/hub",
            upload=f"https://{_url_host(self._upload_host)}:{ports['upload']}/upload",
            operator=f"https://{_url_host(self._host)}:{ports['bootstrap']}/operator",
        )

    def _close_sockets(self) -> None:
        for sock in self._sockets:
            sock.close()
        self._sockets.clear()

    def _make_server(self) -> uvicorn.Server:
        config = uvicorn.Config(
            create_app(self.state),
            ssl_certfile=str(self.tls.server_cert),
            ssl_keyfile=str(self.tls.server_key),
            http="h11",
            ws="none",
            lifespan="on",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=3,
            timeout_keep_alive=5,
        )
        config.load()
        if config.ssl is not None:
            config.ssl.minimum_version = ssl.TLSVersion.TLSv1_2
        return uvicorn.Server(config)

    def _write_server_file(self) -> None:
        info = {
            "pid": os.getpid(),
            "bootstrap_url": self.bootstrap_url,
            "hub_url": self.hub_url,
            "upload_url": self.upload_url,
            "operator_url": self.operator_url,
            "operator_page_url": self.operator_page_url,
            "ca": str(self.ca_path),
            "ports": self.ports,
        }
        path = self.state.state_dir / SERVER_FILE
        write_atomically(path, json.dumps(info, indent=2).encode(), mode=0o644)

    def start(self) -> Self:
        """Serve on a background thread; returns once the server accepts connections."""
        if self._thread is not None:
            raise RefCloudError("this cloud is already running")
        self._bind()
        server = self._server = self._make_server()
        failure: list[BaseException] = []

        def run() -> None:
            try:
                server.run(sockets=self._sockets)
            except BaseException as err:  # reported to start(), which re-raises
                failure.append(err)

        self._thread = threading.Thread(target=run, name="refcloud", daemon=True)
        self._thread.start()
        while not server.started:
            if not self._thread.is_alive():
                self._close_sockets()
                raise RefCloudError(f"the reference cloud did not start: {failure}")
            self._thread.join(0.01)
        self._write_server_file()
        return self

    def stop(self) -> None:
        """Stop serving and close the state; idempotent."""
        if self._server is not None and self._thread is not None:
            self.state.signals.wake_all()
            self._server.should_exit = True
            self._thread.join(0.3)
            if self._thread.is_alive():
                # Idle keep-alive connections of a client that does not read make
                # the TLS shutdown wait for it: cut them, as a cloud going down would.
                self._abort_connections(self._server)
                self._thread.join(10)
        self._server = None
        self._thread = None
        self._close_sockets()
        with contextlib.suppress(FileNotFoundError):
            (self.state.state_dir / SERVER_FILE).unlink()
        self.state.close()

    def _abort_connections(self, server: uvicorn.Server) -> None:
        loop = self.state.signals.loop
        if loop is None or loop.is_closed():
            return

        def abort() -> None:
            for connection in list(server.server_state.connections):
                transport = getattr(connection, "transport", None)
                if transport is not None:
                    transport.abort()

        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(abort)

    def serve_forever(self) -> None:
        """Serve in the foreground until SIGINT/SIGTERM (``panelfast refcloud serve``)."""
        self._bind()
        server = self._server = self._make_server()
        self._write_server_file()
        # uvicorn shuts down on SIGTERM, then re-raises it to the previous handler:
        # make that an exit, so the cleanup below runs instead of an abrupt death.
        previous = signal.signal(signal.SIGTERM, _exit_on_signal)
        try:
            server.run(sockets=self._sockets)
        except SystemExit:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
            self._server = None
            self._close_sockets()
            with contextlib.suppress(FileNotFoundError):
                (self.state.state_dir / SERVER_FILE).unlink()
            self.state.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return self.start()

    async def __aexit__(self, *exc_info: Any) -> None:
        self.stop()
