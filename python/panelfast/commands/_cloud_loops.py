"""The commands' cloud traffic: the commands long poll with its results, and output states.

:class:`CommandLoop`, while the user wants the gateway connected: post the
results the cloud does not have yet, oldest first, then long-poll
``GET .../commands?wait=…`` and execute what comes, one command at a time, in
the order sent. Each command id is recorded ``executing`` (durably) before it
acts and its result after, so a command delivered again (its result was lost,
or the gateway crashed) is never executed twice: a finished one has its
stored result posted again, and one a crash interrupted (still
``executing`` at start) is settled ``failed`` with reason ``interrupted`` and
not executed again: the gateway cannot know whether its write reached the
device, and the cloud can send a new command if it still wants it.

A result the cloud refuses for good (404: it forgot the command; 409: it has
another result; 400) is dropped and logged; any other failure leaves it, and
those after it, to be posted later, in order.

:class:`StateReporter` posts the output state changes queued in the store,
oldest first, in requests of at most :data:`STATES_PER_REQUEST`, deleting
each only once the cloud took it (or refused it for good with 400).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from panelfast._backoff import Backoff
from panelfast.clock import Clock
from panelfast.cloud import HubClient
from panelfast.commands._executor import Executor, Outcome
from panelfast.commands._store import CommandStore
from panelfast.exceptions import CloudError, Conflict, InvalidPayload, NotConnected, NotFound

__all__ = ["INTERRUPTED", "CommandLoop", "StateReporter"]

log = logging.getLogger(__name__)

INTERRUPTED = (
    "interrupted: the gateway stopped while executing this command; its outcome is unknown "
    "and it is not executed again"
)
STATES_PER_REQUEST = 500


async def _pause(event: asyncio.Event, seconds: float) -> None:
    """Wait ``seconds``, or less if ``event`` is set (Connect, new work)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)
    event.clear()


class CommandLoop:
    """See the module docstring."""

    def __init__(
        self,
        hub: HubClient,
        store: CommandStore,
        executor: Executor,
        clock: Clock,
        connected: Callable[[], bool],
        *,
        wait_s: int = 30,
    ) -> None:
        self._hub = hub
        self._store = store
        self._executor = executor
        self._clock = clock
        self._connected = connected
        self._wait_s = wait_s
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    def settle_interrupted(self) -> int:
        """At start: commands a crash left ``executing`` get their ``failed`` result."""
        interrupted = self._store.interrupted()
        for command_id, kind, body in interrupted:
            target = body.get("output") if kind == "output" else None
            log.warning("command %s (%s) was interrupted by a stop: failed", command_id, kind)
            self._store.finish(
                command_id,
                "failed",
                INTERRUPTED,
                self._clock.now_ms(),
                audit={"source": "cloud", "kind": kind, "target": target},
            )
        return len(interrupted)

    async def run(self) -> None:
        backoff = Backoff()
        while True:
            if not self._connected():
                await _pause(self._wake, 1.0)
                continue
            results_posted = True
            try:
                await self.post_results()
            except NotConnected:
                continue
            except CloudError as exc:
                # New commands are still executed; these results go later, in order.
                results_posted = False
                log.info("command results not posted (%s); kept for later", exc)
            try:
                commands = await self._hub.get_commands(
                    wait_s=self._wait_s if results_posted else 0
                )
            except NotConnected:
                continue
            except CloudError as exc:
                delay = backoff.failed()
                log.info("commands: %s; trying again in %.0f s", exc, delay)
                await _pause(self._wake, delay)
                continue
            for command in commands:
                await self.handle(command.id, command.type, command.body)
            if results_posted:
                backoff.succeeded()
            else:
                # The cloud delivers those commands again until it has their results:
                # do not ask it in a tight loop.
                await _pause(self._wake, backoff.failed())

    async def handle(self, command_id: str, kind: str, body: dict[str, object]) -> None:
        """Execute a command unless it was already; its result is then due to the cloud."""
        known = await asyncio.to_thread(
            self._store.begin, command_id, kind, dict(body), self._clock.now_ms()
        )
        if known is not None:
            if known.state == "finished" and known.posted:
                log.info("command %s delivered again: its result is posted again", command_id)
                await asyncio.to_thread(self._store.repost, command_id)
            return
        try:
            outcome = await self._executor.execute(dict(body))
        except Exception as exc:
            # A fault of the gateway itself: the command still gets its (single) result.
            log.exception("command %s (%s) failed inside the gateway", command_id, kind)
            outcome = Outcome("failed", f"internal_error: {type(exc).__name__}: {exc}")
        log.info(
            "command %s (%s %s %s): %s%s",
            command_id,
            kind,
            outcome.target or "",
            outcome.action or "",
            outcome.status,
            f" ({outcome.reason})" if outcome.reason else "",
        )
        await asyncio.to_thread(
            self._store.finish,
            command_id,
            outcome.status,
            outcome.reason,
            self._clock.now_ms(),
            {
                "source": "cloud",
                "kind": kind,
                "target": outcome.target,
                "action": outcome.action,
                "readback": outcome.readback,
            },
        )

    async def post_results(self) -> None:
        """Post every result the cloud lacks, in order; stops at the first that cannot go."""
        while True:
            pending = await asyncio.to_thread(self._store.pending_results)
            if not pending:
                return
            for result in pending:
                try:
                    await self._hub.post_command_result(
                        result.command_id, result.status, result.reason
                    )
                except (NotFound, Conflict, InvalidPayload) as exc:
                    log.warning(
                        "the result of command %s cannot be posted, dropped: %s",
                        result.command_id,
                        exc,
                    )
                await asyncio.to_thread(self._store.posted, result.command_id)


class StateReporter:
    """See the module docstring."""

    def __init__(self, hub: HubClient, store: CommandStore, connected: Callable[[], bool]) -> None:
        self._hub = hub
        self._store = store
        self._connected = connected
        self._ready = asyncio.Event()

    def wake(self) -> None:
        self._ready.set()

    async def run(self) -> None:
        backoff = Backoff()
        pause = 0.0
        self._ready.set()  # what an earlier run left unreported goes first
        while True:
            await _pause(self._ready, pause or 30.0)
            if not self._connected():
                continue
            try:
                await self.flush()
                backoff.succeeded()
                pause = 0.0
            except NotConnected:
                continue
            except CloudError as exc:
                pause = backoff.failed()
                log.info("output states not reported (%s); trying again in %.0f s", exc, pause)

    async def flush(self) -> None:
        while True:
            states = await asyncio.to_thread(self._store.pending_states, STATES_PER_REQUEST)
            if not states:
                return
            try:
                await self._hub.post_outputs([s.body() for s in states])
            except InvalidPayload as exc:
                log.warning("the cloud refused %d output states, dropped: %s", len(states), exc)
            await asyncio.to_thread(self._store.reported, states[-1].seq)
