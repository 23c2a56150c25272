"""Helpers for the cloud commands' tests (§9, §10): a running CommandService on a real
reference cloud and simulator, a Modbus wire tap, and waiting for conditions."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from panelfast.acquisition import Acquisition
from panelfast.cloud import CloudSession, RetryPolicy
from panelfast.commands import CommandService
from panelfast.config import Settings
from panelfast.embedded import EmbeddedSystem
from panelfast.models.loader import ModelLibrary
from panelfast.refcloud import OperatorClient, RefCloud


async def eventually(
    condition: Callable[[], bool | Awaitable[bool]],
    timeout_s: float,
    what: str,
    *,
    every_s: float = 0.05,
) -> None:
    """Poll ``condition`` until it holds; fail saying ``what`` did not happen."""
    deadline = time.monotonic() + timeout_s
    while True:
        outcome = condition()
        if not isinstance(outcome, bool):
            outcome = await outcome
        if outcome:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        await asyncio.sleep(every_s)


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        time.sleep(0.05)


def result_of(
    cloud: RefCloud | OperatorClient, serial: str, command_id: str
) -> dict[str, Any] | None:
    """The result the cloud holds for a command (None until posted)."""
    for c in cloud.commands(serial):
        if c["command"]["id"] == command_id:
            result: dict[str, Any] | None = c["result"]
            return result
    raise KeyError(command_id)


def deliveries(cloud: RefCloud | OperatorClient, serial: str, command_id: str) -> int:
    for c in cloud.commands(serial):
        if c["command"]["id"] == command_id:
            return int(c["deliveries"])
    raise KeyError(command_id)


async def await_result(
    cloud: RefCloud, serial: str, command_id: str, timeout_s: float = 20.0
) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def posted() -> bool:
        result = result_of(cloud, serial, command_id)
        if result is not None:
            found.update(result)
        return result is not None

    await eventually(posted, timeout_s, f"the result of {command_id} at the cloud")
    return found


def devices(settings: Settings) -> list[Any]:
    library = ModelLibrary(settings.gateway.model_dirs)
    return [(d, library.get(d.model)) for d in settings.devices]


@dataclass
class Running:
    service: CommandService
    session: CloudSession
    acquisition: Acquisition


@contextlib.asynccontextmanager
async def running_service(
    system: EmbeddedSystem,
    settings: Settings | None = None,
    *,
    retry: RetryPolicy | None = None,
    **options: Any,
) -> AsyncIterator[Running]:
    """A connected CloudSession, polling Acquisition and a running CommandService."""
    settings = settings or system.settings
    session = CloudSession(settings, retry=retry)
    await session.connect()
    acquisition = Acquisition(devices(settings))
    acquisition.start()
    options.setdefault("command_wait_s", 5)
    options.setdefault("watch_interval_s", 0.2)
    service = CommandService(settings, session, acquisition, devices(settings), **options)
    task = asyncio.create_task(service.run())
    try:
        yield Running(service, session, acquisition)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await asyncio.to_thread(acquisition.stop)
        await session.aclose()
        service.close()


@dataclass(frozen=True)
class Frame:
    """One Modbus TCP frame seen on the wire: which way, when, what."""

    to_device: bool
    at: float
    transaction: int
    function: int


class WireTap:
    """A Modbus TCP relay between the gateway and a device that records every frame.

    It shows what the device sees: whether a request was sent while another
    was still unanswered (interleaved), and where writes fell among the polls.
    """

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self.frames: list[Frame] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.close()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await task
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        self._writers += [writer, up_writer]
        for task in (
            asyncio.create_task(self._pump(reader, up_writer, to_device=True)),
            asyncio.create_task(self._pump(up_reader, writer, to_device=False)),
        ):
            self._tasks.add(task)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, to_device: bool
    ) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                header = await reader.readexactly(7)
                length = int.from_bytes(header[4:6], "big")
                body = await reader.readexactly(length - 1)
                self.frames.append(
                    Frame(to_device, time.monotonic(), int.from_bytes(header[:2], "big"), body[0])
                )
                writer.write(header + body)
                await writer.drain()
        writer.close()
