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
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from panelfast._backoff import Backoff, pause
from panelfast._native import AlarmEvent
from panelfast.clock import Clock
from panelfast.cloud import CloudSession, ConnectionStatus, HubClient
from panelfast.exceptions import (
    CloudError,
    Conflict,
    InvalidPayload,
    NotConnected,
    PayloadTooLarge,
)
from panelfast.outbox import Outbox, PreparedBatch, SavedAlarm

__all__ = [
    "DEFAULT_PUBLISHER_PERIOD_S",
    "Backlog",
    "Publication",
    "Publisher",
    "PublisherCounters",
]

#: A publication period before any remote configuration (none is sampled then).
DEFAULT_PUBLISHER_PERIOD_S = 600

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
    #: The first instant of the oldest sample waiting (unix ms); None: nothing waits.
    oldest_ms: int | None = None


@dataclass(slots=True)
class PublisherCounters:
    """What publication did since the gateway started (plain counts, for the metrics)."""

    #: Data batches posted (each sending, a resend after a failure too).
    batches_sent: int = 0
    batches_acknowledged: int = 0
    #: Acknowledged as already held (a lost acknowledgement healed).
    batches_duplicate: int = 0
    #: Answered 400: set aside (§7).
    batches_refused: int = 0
    #: Answered 409 with the seq to use.
    batches_renumbered: int = 0
    #: Answered 413: cut in two.
    batches_split: int = 0
    #: Publications that ended on an error (the gateway tries again later).
    failures: int = 0
    alarm_events_acknowledged: int = 0
    #: When the cloud last acknowledged a data batch (unix ms, the gateway's clock).
    last_ack_ms: int | None = None


class Publisher:
    """Sends what the outbox holds, and measures how fast it goes."""

    def __init__(self, outbox: Outbox, hub: HubClient, clock: Clock | None = None) -> None:
        self.outbox = outbox
        self.hub = hub
        self.clock = clock or Clock()
        self.counters = PublisherCounters()
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
        try:
            return await self._publish_data()
        except CloudError:
            self.counters.failures += 1
            raise

    async def _publish_data(self) -> int:
        counters = self.counters
        sent = 0
        async with self._sending:
            ahead: PreparedBatch | None = None
            while True:
                batch = await asyncio.to_thread(self.outbox.next_batch, prepared=ahead)
                ahead = None
                if batch is None:
                    return sent
                post = asyncio.ensure_future(self.hub.post_data(batch.body))
                counters.batches_sent += 1
                try:
                    # The next batch is encoded while this one is in flight: the cloud
                    # takes about as long to store a batch as the gateway to encode one.
                    ahead = await asyncio.to_thread(self.outbox.prepare, batch.seq + 1)
                    ack = await post
                except Conflict as exc:
                    if exc.expected is None:
                        raise
                    counters.batches_renumbered += 1
                    await asyncio.to_thread(self.outbox.renumber, exc.expected)
                    continue
                except InvalidPayload as exc:
                    counters.batches_refused += 1
                    await asyncio.to_thread(self.outbox.refuse, batch.seq, str(exc))
                    continue
                except PayloadTooLarge:
                    counters.batches_split += 1
                    log.warning(
                        "the cloud found data batch %d too large (413): cut in two",
                        batch.seq,
                        extra={"event": "batch.split", "seq": batch.seq},
                    )
                    await asyncio.to_thread(self.outbox.split, batch.seq)
                    continue
                finally:
                    post.cancel()  # only if this was cancelled, or encoding failed, mid-flight
                if ack.seq != batch.seq:
                    # An acknowledgement of another seq proves nothing about
                    # this batch: keep it and resend (the cloud heals it as a
                    # duplicate if it did store it).
                    log.error(
                        "the cloud acknowledged seq %d for batch %d",
                        ack.seq,
                        batch.seq,
                        extra={"event": "batch.wrong_ack", "seq": batch.seq, "ack": ack.seq},
                    )
                    continue
                await asyncio.to_thread(self.outbox.acknowledged, batch.seq)
                now = time.monotonic()
                self._acks.append((now, batch.samples))
                counters.batches_acknowledged += 1
                counters.batches_duplicate += ack.duplicate
                counters.last_ack_ms = self.clock.now_ms()
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
                log.error(
                    "the cloud acknowledged %d of %d alarm events",
                    acked,
                    len(pending),
                    extra={"event": "alarms.partial_ack", "acked": acked, "sent": len(pending)},
                )
                return sent
            await asyncio.to_thread(self.outbox.events_acknowledged, [p.id for p in pending])
            self.counters.alarm_events_acknowledged += acked
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
            oldest_ms=stats.oldest_ms,
        )


class Publication:
    """When to publish: every publication period, at once when the connection comes
    (back) up or a held-back configuration becomes valid, and alarm events as they come.
    It keeps the cloud session running while the user wants it connected (the
    connection coming up is what starts a backlog's drain), and records the
    remote configuration's alarm events into the outbox (recording one is what
    wakes their publication).

    ``period_s()`` is the period in force; ``allowed()`` is False while the last
    remote configuration received was rejected (§6: data publication stops,
    alarm events still go); ``flush()`` moves the rings' samples to the outbox
    first, so a publication takes every sample taken so far.
    """

    def __init__(
        self,
        publisher: Publisher,
        session: CloudSession,
        clock: Clock,
        *,
        period_s: Callable[[], int | None],
        allowed: Callable[[], bool],
        flush: Callable[[], Awaitable[None]],
    ) -> None:
        self.publisher = publisher
        self.outbox = publisher.outbox
        self._session = session
        self._clock = clock
        self._period_s = period_s
        self._allowed = allowed
        self._flush = flush
        self._now = asyncio.Event()
        self._events = asyncio.Event()

    def publish_now(self) -> None:
        """Publish at once rather than at the end of the period."""
        self._now.set()

    def events_waiting(self) -> None:
        """Alarm events were added to the outbox."""
        self._events.set()

    async def record_alarms(
        self, events: Sequence[AlarmEvent], states: Sequence[SavedAlarm]
    ) -> None:
        """Keep the remote configuration's alarms' states, and their transitions to
        publish (none outside cloud mode), in one transaction: a crash neither
        repeats nor loses one."""
        if events:
            await asyncio.to_thread(self.outbox.add_events, events, states)
            self.events_waiting()
        else:
            await asyncio.to_thread(self.outbox.save_alarm_states, states)

    async def keep_connected(self) -> None:
        """Keep the connection up while the user wants it; once it is (back) up,
        publish at once: the backlog of an outage does not wait for a period."""
        session = self._session
        runner: asyncio.Task[None] | None = None
        was = session.status().connection
        try:
            while True:
                if session.connect_requested and (runner is None or runner.done()):
                    runner = asyncio.create_task(session.run(), name="cloud session")
                now = session.status().connection
                if now is ConnectionStatus.CONNECTED and was is not ConnectionStatus.CONNECTED:
                    self.publish_now()
                    self.events_waiting()
                was = now
                await asyncio.sleep(1)
        finally:
            if runner is not None:
                runner.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await runner

    async def run_data(self) -> None:
        backoff = Backoff(initial_s=2.0, max_s=60.0)
        retry_s: float | None = None  # after a failure, retry sooner than a whole period
        while True:
            period_ms = (self._period_s() or DEFAULT_PUBLISHER_PERIOD_S) * 1000
            now = self._clock.now_ms()
            wait_s = ((now // period_ms + 1) * period_ms - now) / 1000
            await pause(self._now, min(wait_s, retry_s or wait_s))
            await self._flush()
            if not self._session.connect_requested or not self._allowed():
                continue
            try:
                # Bootstrapped first, so the cloud's last acknowledged seq is
                # known: a gateway that lost its disk continues after it (§3).
                await self._session.hub_access()
                await asyncio.to_thread(self.outbox.resume_from, self._session.state.data_seq or 0)
                await self.publisher.publish_data()
                backoff.succeeded()
                retry_s = None
            except NotConnected:
                continue
            except CloudError as exc:
                retry_s = backoff.failed()
                log.warning(
                    "data publication failed (%s); everything is kept",
                    exc,
                    extra={"event": "publication.failed", "what": "data", "error": str(exc)},
                )

    async def run_events(self) -> None:
        backoff = Backoff(max_s=60.0)
        retry_s: float | None = None
        while True:
            await pause(self._events, retry_s or 30.0)
            if not self._session.connect_requested:
                continue
            try:
                await self.publisher.publish_events()
                backoff.succeeded()
                retry_s = None
            except NotConnected:
                continue
            except CloudError as exc:
                retry_s = backoff.failed()
                log.warning(
                    "alarm publication failed (%s); events are kept",
                    exc,
                    extra={"event": "publication.failed", "what": "alarms", "error": str(exc)},
                )

    async def run_compaction(self) -> None:
        """While the cloud is unreachable, gather small chunks into full batches."""
        while True:
            await asyncio.sleep(60)
            if self._session.status().connection is not ConnectionStatus.CONNECTED:
                merged = await asyncio.to_thread(self.outbox.compact)
                if merged:
                    log.info(
                        "outbox: %d chunks compacted while offline",
                        merged,
                        extra={"event": "outbox.compacted", "chunks": merged},
                    )
