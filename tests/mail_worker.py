"""A process owning the alarm email queue, killed with SIGKILL by test_mail_crash.py.

    python mail_worker.py CONFIG produce COUNT START_MS
        hand COUNT alarm events from the alarm engine over, print "queued COUNT",
        then send them;
    python mail_worker.py CONFIG drain
        send what the queue holds.

Either way it prints "drained" and exits once the queue is empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys

import numpy as np

from mail_support import flapping_readings
from panelfast._backoff import Backoff
from panelfast._native import AlarmSet
from panelfast.clock import Clock
from panelfast.config import load_settings
from panelfast.mail import AlarmMailer


async def main(config: str, mode: str, *args: str) -> None:
    settings = load_settings(config)
    assert settings.email is not None
    mailer = AlarmMailer(settings, Clock(), backoff=Backoff(initial_s=0.05, max_s=0.5))
    task = asyncio.create_task(mailer.run())
    if mode == "produce":
        count, start_ms = int(args[0]), int(args[1])
        rules = settings.email.alarms
        alarms = AlarmSet(
            [(r.id, i, r.condition, r.threshold, r.hysteresis, 0) for i, r in enumerate(rules)]
        )
        for value, read_ms in flapping_readings(count, start_ms, rules[0].threshold):
            events = alarms.evaluate(
                np.array([value]), np.array([True]), np.array([read_ms], dtype=np.int64)
            )
            await mailer.enqueue(events, rules)  # committed on return, one by one
        print(f"queued {count}", flush=True)
    while mailer.status().queued:  # noqa: ASYNC110  (status() is what a user watches)
        await asyncio.sleep(0.02)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await mailer.close()
    print("drained", flush=True)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
