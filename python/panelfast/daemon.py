"""``panelfast run``: one gateway as a service, until SIGTERM.

Around the :class:`~panelfast.gateway.Gateway` the daemon adds what a service
needs: the control API on its Unix socket, the web pages over HTTPS when
``[web] listen`` is set (:mod:`panelfast.web`, imported only then), its
metrics on a port of their own when ``[metrics] listen`` is set
(prometheus-client is imported only then, or with the web pages, which serve
``/metrics`` too), systemd's readiness, watchdog and status line, the hub
token added to the secrets the log masks, a ring of its recent log lines
(masked the same way) for the diagnostics bundle the cloud may ask for, with
the log file's tail, a live reload of its configuration file on SIGHUP
(:mod:`panelfast.reload`: what cannot change live is refused, logged with the
key, and the gateway goes on as it was), and a clean stop on SIGTERM or
Ctrl-C. The log itself is set up by the caller
(:func:`panelfast.logs.configure_logging`) before anything is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from panelfast.clock import Clock, ClockFormatter
from panelfast.cloud import CloudSession
from panelfast.commands import RecentLogs
from panelfast.config import Settings
from panelfast.exceptions import ConfigError, ConfigIssue
from panelfast.gateway import Gateway
from panelfast.logs import TEXT_FORMAT, Redactor
from panelfast.remote_config import ApplyProgress, ProgressCallback
from panelfast.systemd import Notifier, ServiceWatch

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from panelfast.control import ControlApp
    from panelfast.web import WebListener

__all__ = ["control_api", "serve"]

log = logging.getLogger("panelfast.daemon")


async def serve(
    settings: Settings,
    *,
    config_path: Path,
    redactor: Redactor | None = None,
    notifier: Notifier | None = None,
    clock: Clock | None = None,
    log_file: Path | None = None,
) -> None:
    """Run a gateway and its control API until SIGTERM or SIGINT, then stop cleanly.

    A metrics or web address that cannot be listened on, or a web
    certificate that cannot be used, is refused before the gateway opens
    anything, as a :class:`~panelfast.exceptions.ConfigError`. The web pages'
    stack (Jinja2, argon2, cryptography) is imported only when ``[web]
    listen`` is set. ``log_file``: where the log goes, if to a file (its tail
    goes into a diagnostics bundle).
    """
    clock = clock or Clock()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    hangup = _Hangup()
    loop.add_signal_handler(signal.SIGHUP, hangup)
    notifier = notifier or Notifier()
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(notifier.close)
        recent = _recent_logs(redactor, clock)
        cleanup.callback(logging.getLogger().removeHandler, recent)
        registry = server = web = None
        listen = settings.metrics.listen
        if listen is not None or settings.web.listen is not None:
            from panelfast import metrics  # prometheus-client: only when metrics are served

            registry = metrics.metrics_registry()
        if listen is not None:
            assert registry is not None
            try:
                server = metrics.serve_metrics(registry, listen)
            except OSError as exc:
                issue = ConfigIssue("metrics.listen", f"cannot listen on {listen}: {exc.strerror}")
                raise ConfigError(str(config_path), [issue]) from None
            cleanup.callback(server.close)
        if settings.web.listen is not None:
            from panelfast.web import WebListener

            try:
                web = WebListener(settings)
            except ConfigError as exc:
                raise ConfigError(str(config_path), exc.issues) from None
            cleanup.callback(web.close)
        relay = _ProgressRelay()
        gateway = Gateway(
            settings,
            session=CloudSession(settings, clock=clock),
            on_apply_progress=relay,
            recent_logs=recent,
            log_files=() if log_file is None else (log_file,),
        )
        if redactor is not None:
            redactor.watch(lambda: _token(gateway))
        if registry is not None:
            metrics.watch_gateway(registry, gateway)
        async with (
            gateway,
            control_api(gateway, settings, config_path) as app,
            _web_pages(web, app, registry),
        ):
            relay.to = app.apply_progress
            hangup.app = app
            if listen is not None:
                log.info(
                    "metrics on http://%s/metrics",
                    listen,
                    extra={"event": "metrics.listening", "listen": listen},
                )
            watch = ServiceWatch(gateway, notifier)
            watch.ready()
            watching = asyncio.create_task(watch.run(), name="systemd watch")
            try:
                await stop.wait()
            finally:
                watching.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watching
            log.info("stopping (signal received)", extra={"event": "gateway.stopping"})
            hangup.app = None
            await hangup.cancel()
            watch.stopping()
            if server is not None:
                server.close()  # no scrape of a gateway being stopped


def _recent_logs(redactor: Redactor | None, clock: Clock) -> RecentLogs:
    """The ring of recent log lines, on the root logger: everything the log shows
    (uvicorn's and the HTTP library's warnings too), masked as the log is."""
    recent = RecentLogs()
    formatter = ClockFormatter(TEXT_FORMAT, clock)
    recent.setFormatter(redactor.masking(formatter) if redactor is not None else formatter)
    logging.getLogger().addHandler(recent)
    return recent


class _ProgressRelay:
    """Steps of applying a remote configuration, to the control API once it is up."""

    def __init__(self) -> None:
        self.to: ProgressCallback | None = None

    def __call__(self, progress: ApplyProgress) -> None:
        if self.to is not None:
            self.to(progress)


@contextlib.asynccontextmanager
async def _web_pages(
    web: WebListener | None, control: ControlApp, registry: CollectorRegistry | None
) -> AsyncIterator[None]:
    if web is None:
        yield
        return
    from panelfast.web import serve_web

    assert registry is not None
    async with serve_web(web, control, registry):
        yield


class _Hangup:
    """SIGHUP: reload the configuration file, through the control API (audited,
    serialised with the other changes); ignored while starting or stopping."""

    def __init__(self) -> None:
        self.app: ControlApp | None = None
        self._reloads: set[asyncio.Task[None]] = set()

    def __call__(self) -> None:
        if self.app is None:
            log.warning(
                "SIGHUP ignored: the gateway is starting or stopping (send it again once it runs)",
                extra={"event": "config.reload_refused", "errors": ["starting or stopping"]},
            )
            return
        task = asyncio.create_task(self.app.reload_on_signal(), name="reload (SIGHUP)")
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    async def cancel(self) -> None:
        """A reload still waiting for its sampling instant gives up: the gateway stops."""
        tasks = list(self._reloads)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


@contextlib.asynccontextmanager
async def control_api(
    gateway: Gateway, settings: Settings, config_path: Path
) -> AsyncIterator[ControlApp]:
    """The one door into the running gateway (:mod:`panelfast.control`), for its life."""
    from panelfast.control import AuditLog, ControlApp, ControlServer, socket_path

    storage = settings.storage.dir
    audit = AuditLog(storage / "audit.sqlite")
    app = ControlApp(gateway, config_path=config_path, audit=audit)
    server = ControlServer(
        app.app, socket_path(storage, settings.control.socket), group=settings.control.group
    )
    try:
        await server.start()
        yield app
    finally:
        await server.stop()
        audit.close()


def _token(gateway: Gateway) -> Iterable[str | None]:
    token = gateway.session.state.token
    return (token.get_secret_value() if token is not None else None,)
