"""Publication: data batches and alarm events from the outbox to the hub (§7, §8).

One batch is in flight at a time, in ``seq`` order: batch n+1 is sealed only
after n is acknowledged. Each answer of §7 has one reaction here:

- ``200``: acknowledged (a duplicate too: a lost acknowledgement healed);
- ``409 expected``: renumber the sealed batch, logged loudly, samples kept;
- ``400``: the batch is set aside (counted, visible), its ``seq`` reused;
- ``413``: the batch is cut in two;
- anything else (5xx after the transport's retries, network, 429): the
  error propagates; nothing is lost, and the caller tries again later.

After an outage the backlog goes oldest first as fast as the cloud accepts
it; :class:`Backlog` tells how much is left and when it should be done.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass

from panelfast.cloud import HubClient
from panelfast.exceptions import Conflict, InvalidPayload, PayloadTooLarge
from panelfast.outbox import Outbox, PreparedBatch

__all__ = ["Backlog", "Publisher"]

log = logging.getLogger(__name__)

#: How many recent acknowledgements the delivery rate is measured over.
_RATE_WINDOW = 20


@dataclass(frozen=True, slots=True)
class Backlog:
    """What is waiting for the cloud, and how fast it goes."""

    samples_left: int
    #: Batches left, estimated from the samples a batch held lately.
    batches_left: int
    events_left: int
    #: Samples acknowledged per second, over the last batches.
    rate_samples_per_s: float
    #: Seconds until the backlog is delivered at that rate (None: not moving).
    eta_s: float | None
    dropped_samples: int
    refused_batches: int
    last_acked: int


class Publisher:
    """Sends what the outbox holds, and measures how fast it goes."""

    def __init__(self, outbox: Outbox, hub: HubClient) -> None:
        self.outbox = outbox
        self.hub = hub
        self._acks: deque[tuple[float, int]] = deque(maxlen=_RATE_WINDOW)
        # One sender at a time: the periodic publication and the backlog
        # drain must not seal or send the same batch twice over.
        self._sending = asyncio.Lock()

    @property
    def sending(self) -> bool:
        """Whether a publication is under way (a batch in flight, or the next being sealed)."""
        return self._sending.locked()

    async def publish_data(self) -> int:
        """Send batches until none is left; returns the samples acknowledged."""
        sent = 0
        async with self._sending:
            ahead: PreparedBatch | None = None
            while True:
                batch = await asyncio.to_thread(self.outbox.next_batch, prepared=ahead)
                ahead = None
                if batch is None:
                    return sent
                post = asyncio.ensure_future(self.hub.post_data(batch.body))
                try:
                    # The next batch is encoded while this one is in flight: the cloud
                    # takes about as long to store a batch as the gateway to encode one.
                    ahead = await asyncio.to_thread(self.outbox.prepare, batch.seq + 1)
                    ack = await post
                except Conflict as exc:
                    if exc.expected is None:
                        raise
                    await asyncio.to_thread(self.outbox.renumber, exc.expected)
                    continue
                except InvalidPayload as exc:
                    await asyncio.to_thread(self.outbox.refuse, batch.seq, str(exc))
                    continue
                except PayloadTooLarge:
                    await asyncio.to_thread(self.outbox.split, batch.seq)
                    continue
                finally:
                    post.cancel()  # only if this was cancelled, or encoding failed, mid-flight
                if ack.seq != batch.seq:
                    # An acknowledgement of another seq proves nothing about
                    # this batch: keep it and resend (the cloud heals it as a
                    # duplicate if it did store it).
                    log.error("the cloud acknowledged seq %d for batch %d", ack.seq, batch.seq)
                    continue
                await asyncio.to_thread(self.outbox.acknowledged, batch.seq)
                self._acks.append((time.monotonic(), batch.samples))
                sent += batch.samples

    async def publish_events(self) -> int:
        """Send pending alarm events in order; returns how many were acknowledged."""
        sent = 0
        while True:
            pending = await asyncio.to_thread(self.outbox.pending_events)
            if not pending:
                return sent
            acked = await self.hub.post_alarms([p.body for p in pending])
            if acked != len(pending):
                log.error("the cloud acknowledged %d of %d alarm events", acked, len(pending))
                return sent
            await asyncio.to_thread(self.outbox.events_acknowledged, [p.id for p in pending])
            sent += acked

    def backlog(self) -> Backlog:
        stats = self.outbox.stats()
        rate = 0.0
        if len(self._acks) >= 2:
            span = self._acks[-1][0] - self._acks[0][0]
            if span > 0:
                rate = sum(n for _, n in list(self._acks)[1:]) / span
        per_batch = max(1, sum(n for _, n in self._acks) // max(1, len(self._acks)))
        return Backlog(
            samples_left=stats.pending_samples,
            batches_left=-(-stats.pending_samples // per_batch) if self._acks else stats.chunks,
            events_left=stats.pending_events,
            rate_samples_per_s=rate,
            eta_s=stats.pending_samples / rate if rate > 0 else None,
            dropped_samples=stats.dropped_samples,
            refused_batches=stats.refused_batches,
            last_acked=stats.last_acked,
        )
