"""How a command reaches the gateway: through the running daemon, or, when none
runs, by itself — saying so plainly.

With a daemon running, every command is a client of its control API: no
command opens the outbox or the cloud session behind its back. Without one,
a command that must touch the gateway's state does it in-process while
holding the storage directory's lock, so a daemon cannot start meanwhile.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from panelfast.cli._config import config_option, load_config
from panelfast.control.wire import (
    Answer,
    GatewayNotRunning,
    Wire,
    hold_storage,
    holding,
    release_storage,
    socket_for,
)

if TYPE_CHECKING:
    from panelfast.config import Settings

__all__ = [
    "call",
    "config_option",
    "daemon",
    "fail",
    "holding_storage",
    "load",
    "not_running",
]


def load(config_path: Path) -> Settings:
    """The whole configuration, checked; a mistake ends the command with its key named
    (exit status 2)."""
    return load_config(config_path)


def daemon(config_path: Path) -> Wire | None:
    """The running daemon's control API, or None when no daemon runs."""
    path = socket_for(config_path)
    if path is None or not path.exists():
        return None
    return Wire(path)


#: How long a command waits for a daemon that is starting to answer.
STARTING_S = 20.0


def call(
    config_path: Path,
    method: str,
    route: str,
    body: object = None,
    *,
    text: bool = False,
    refused: Callable[[Answer], None] | None = None,
) -> Answer | None:
    """One request to the daemon (None: not running); a refusal ends the command
    (``refused`` sees it first, to say more than the daemon's message).

    A daemon that holds the storage directory but does not answer yet is
    starting: the command waits for it rather than working behind its back.
    Without a daemon, the command holds the storage directory until it ends,
    so none starts while it works on the gateway's state.
    """
    deadline = time.monotonic() + STARTING_S
    while True:
        wire = daemon(config_path)
        try:
            answer = wire.request(method, route, body, text=text) if wire else None
        except GatewayNotRunning:
            answer = None
        except OSError as exc:
            fail(f"the gateway's control API did not answer: {exc}")
        if answer is not None:
            break
        if hold_storage(config_path):
            # Held until the command ends (in a process that runs several, released).
            context = click.get_current_context(silent=True)
            if context is not None:
                context.call_on_close(release_storage)
            return None
        if time.monotonic() > deadline:
            fail(f"the gateway is running but its control API did not answer in {STARTING_S:.0f} s")
        time.sleep(0.1)
    if not answer.ok:
        if refused is not None:
            refused(answer)
        fail(answer.error_message())
    return answer


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def not_running(what: str) -> None:
    """Tell the user no daemon runs, and what the command did instead."""
    click.echo(f"gateway not running: {what}", err=True)


@contextmanager
def holding_storage(settings: Settings) -> Iterator[None]:
    """Hold the storage directory while working on the gateway's state without a daemon
    (:func:`call` took it already when it found none)."""
    from panelfast.control import AlreadyRunning, StorageLock

    if holding(settings.storage.dir):
        yield
        return
    lock = StorageLock(settings.storage.dir)
    try:
        lock.acquire()
    except AlreadyRunning as exc:
        fail(f"{exc} (its control API does not answer yet: try again in a moment)")
    try:
        yield
    finally:
        lock.release()
