"""A gateway process that owns the command store: acquisition, cloud session and
CommandService, as the daemon will run them, killed (SIGKILL) by the tests.

    python tests/commands_worker.py CONFIG READY_FILE [CLOCK_FILE]

With CLOCK_FILE, the commands' clock reads unix seconds from that file (the
test moves time across DST changes); the cloud session keeps the real clock
(the cloud checks the claim signature's timestamp). READY_FILE is written
once the service runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

from panelfast.acquisition import Acquisition
from panelfast.clock import Clock
from panelfast.cloud import CloudSession, RetryPolicy
from panelfast.commands import CommandService
from panelfast.config import load_settings
from panelfast.models.loader import ModelLibrary


async def main(config: Path, ready: Path, clock_file: Path | None) -> None:
    settings = load_settings(config)
    library = ModelLibrary(settings.gateway.model_dirs)
    devices = [(d, library.get(d.model)) for d in settings.devices]
    session = CloudSession(settings, retry=RetryPolicy(initial_s=0.1, max_s=0.5, max_attempts=2))
    clock = None
    if clock_file is not None:
        clock = Clock(source=lambda: float(clock_file.read_text(encoding="ascii")))
    acquisition = Acquisition(devices)
    acquisition.start()
    service = CommandService(
        settings,
        session,
        acquisition,
        devices,
        clock=clock,
        command_wait_s=2,
        schedule_max_sleep_s=0.1,
        watch_interval_s=0.2,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    task = asyncio.create_task(service.run())
    await asyncio.to_thread(ready.write_text, "ready", encoding="ascii")
    await stop.wait()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    acquisition.stop()
    await session.aclose()
    service.close()


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    args = [Path(a) for a in sys.argv[1:]]
    asyncio.run(main(args[0], args[1], args[2] if len(args) > 2 else None))
