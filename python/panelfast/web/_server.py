"""Serving the web pages: HTTPS on ``[web] listen``, inside the daemon.

:class:`WebListener` is made before the gateway opens anything: it makes (or
finds) the certificate, makes the first password if none is set, and binds
the address, so a wrong setting or a port in use is refused at once, as a
:class:`~panelfast.exceptions.ConfigError` naming ``web.*``. :func:`serve_web`
then serves :class:`~panelfast.web._app.WebPages` on it, on the daemon's
event loop, for the life of the block.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import uvicorn

from panelfast._durable import write_atomically
from panelfast.config import Settings, split_host_port
from panelfast.control import EmbeddedServer
from panelfast.exceptions import ConfigError, ConfigIssue
from panelfast.web._app import WebPages
from panelfast.web._password import PasswordFile, initial_password
from panelfast.web._tls import fingerprint, server_context, tls_files

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from panelfast.control import ControlApp

__all__ = ["WebListener", "serve_web"]

log = logging.getLogger("panelfast.web")

#: Connections served at once (each holds buffers; an event stream holds one for long).
_MAX_CONNECTIONS = 64


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server(
        (host, port), family=family, backlog=64, dualstack_ipv6=host == "::"
    )
    sock.setblocking(False)
    return sock


class WebListener:
    """The web pages' certificate, password and bound socket, ready to serve."""

    def __init__(self, settings: Settings) -> None:
        web = settings.web
        assert web.listen is not None, "the web pages are off"
        self.settings = web
        self.host, self.port = split_host_port(web.listen)
        storage = settings.storage.dir
        storage.mkdir(parents=True, exist_ok=True)
        self.passwords = PasswordFile(storage)
        self.tls = tls_files(storage, self.host, web.certificate, web.key)
        self.context = server_context(self.tls)
        try:
            self.socket = _bind(self.host, self.port)
        except OSError as exc:
            issue = ConfigIssue("web.listen", f"cannot listen on {web.listen}: {exc.strerror}")
            raise ConfigError("(web)", [issue]) from None
        self._show_first_password()

    @property
    def bound_port(self) -> int:
        return int(self.socket.getsockname()[1])

    def _show_first_password(self) -> None:
        """Shown once: on the terminal if there is one, else in a 0600 file the log names."""
        password = initial_password(self.passwords)
        if password is None:
            return
        user = self.settings.user
        if sys.stderr.isatty():
            sys.stderr.write(
                f"\nweb pages: no password was set; this one was made for user {user!r}:\n"
                f"    {password}\n"
                "it is shown once: change it with `panelfast web set-password`\n\n"
            )
            sys.stderr.flush()
            return
        path = self.passwords.initial_path
        write_atomically(path, f"user: {user}\npassword: {password}\n".encode())
        log.warning(
            "web pages: no password was set; one was made for user %r: read it in %s (mode "
            "0600), then change it with `panelfast web set-password` (the file goes away)",
            user,
            path,
            extra={"event": "web.password_generated", "file": str(path)},
        )

    def close(self) -> None:
        self.socket.close()


@contextlib.asynccontextmanager
async def serve_web(
    listener: WebListener, control: ControlApp, registry: CollectorRegistry
) -> AsyncIterator[None]:
    """Serve the web pages on ``listener`` while the block runs."""
    pages = WebPages(control, listener.settings, listener.passwords, registry)
    context = listener.context
    config = uvicorn.Config(
        pages.app,
        http="h11",
        lifespan="off",
        log_level="warning",
        access_log=False,
        proxy_headers=False,  # the rate limit counts the peer, not what a header claims
        server_header=False,
        limit_concurrency=_MAX_CONNECTIONS,
        timeout_graceful_shutdown=2,
        ssl_context_factory=lambda _config, _default: context,
    )
    server = EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[listener.socket]), name="web pages")
    try:
        while not server.started:
            if task.done():
                await task
                raise RuntimeError("the web pages stopped at start")
            await asyncio.sleep(0.01)
        where = f"https://{listener.settings.listen}/"
        log.info(
            "web pages on %s (certificate SHA-256 %s%s)",
            where,
            fingerprint(listener.tls.certificate),
            ", self-signed" if listener.tls.generated else "",
            extra={"event": "web.listening", "listen": listener.settings.listen},
        )
        yield
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        listener.close()
