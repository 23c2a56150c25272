"""A remote configuration's route through the gateway, top to bottom (§6).

```
 hub ──long poll──▶ receive ──▶ validate whole, against the published topology
                                   │ valid                        │ invalid
                                   ▼                              ▼
                     prepare (worker thread, progress      record the rejection
                     by section), persist, hand over       (the applied one stays)
                     to the sampling loop, which puts
                     it in force at the next instant
                                   │                              │
                                   └──────────▶ report ◀──────────┘
```

The outcome and "its report is due" are recorded in one transaction; the
report is sent before the next poll, and again after a failure or a
restart until the cloud takes it. Before judging a configuration,
``before_judging`` lets the gateway publish a topology it has no record of
(a factory-reset gateway): a configuration is judged only against a
published topology.
What the preparer builds (the new sampler and alarm set) is returned to the
gateway through ``hand_over``: nothing here knows what sampling is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence, Set
from dataclasses import dataclass
from typing import Any, Generic, Literal, Protocol, TypeVar

from panelfast._backoff import Backoff, pause
from panelfast.exceptions import (
    CloudError,
    ConfigPathError,
    NotConnected,
    PanelfastError,
    RemoteConfigRejected,
)
from panelfast.remote_config._apply import (
    AppliedConfig,
    ApplyProgress,
    Preparer,
    ProgressCallback,
)
from panelfast.remote_config._model import RemoteConfig
from panelfast.remote_config._store import ConfigStore
from panelfast.remote_config._validate import validate

__all__ = ["ConfigHub", "RemoteConfigStatus", "Switchover"]

log = logging.getLogger(__name__)

#: Longest wait of a configuration long poll (§6 allows 0..30).
CONFIG_WAIT_S = 30

T = TypeVar("T")


class _Answer(Protocol):
    @property
    def status(self) -> Literal["new", "unchanged", "none"]: ...
    @property
    def version(self) -> str | None: ...
    @property
    def document(self) -> Mapping[str, Any] | None: ...


class ConfigHub(Protocol):
    """The two hub calls of §6 (:class:`panelfast.cloud.HubClient` has them)."""

    async def get_config(self, *, have_version: str | None, wait_s: int = 0) -> _Answer: ...

    async def report_config(
        self,
        version: str,
        status: Literal["applied", "rejected"],
        errors: Sequence[tuple[str, str]] = (),
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class RemoteConfigStatus:
    """The remote configuration as the user sees it (read-only)."""

    #: The version in force, if any.
    applied_version: str | None
    #: The last version received, applied or rejected.
    received_version: str | None
    #: Cloud service icon: True green (valid), False orange (invalid), None nothing yet.
    valid: bool | None
    #: Why the last one was rejected: (path, message).
    errors: tuple[tuple[str, str], ...]
    measurements: int
    alarms: int
    publisher_period_s: int | None


class Switchover(Generic[T]):
    """Receives, validates, applies or rejects, and reports remote configurations.

    ``allowed()`` lists the (device, measurement) pairs a configuration may
    name, ``withdrawn()`` the published devices no longer configured;
    ``prepare`` builds what a valid one needs (off the event loop);
    ``hand_over(config, built)`` gives it to whoever puts it in force;
    ``before_judging()`` runs before a configuration is validated; the cloud
    errors it raises leave the configuration unjudged (the poll gets it again).
    """

    def __init__(
        self,
        store: ConfigStore,
        hub: ConfigHub,
        *,
        allowed: Callable[[], set[tuple[str, str]]],
        prepare: Preparer[T],
        hand_over: Callable[[RemoteConfig, T], None],
        on_progress: ProgressCallback | None = None,
        withdrawn: Callable[[], Set[str]] = frozenset,
        before_judging: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.applied = AppliedConfig(store)
        self._hub = hub
        self._allowed = allowed
        self._withdrawn = withdrawn
        self._before_judging = before_judging
        self._prepare = prepare
        self._hand_over = hand_over
        self._on_progress = on_progress
        #: While a configuration is being applied: where it stands.
        self.applying: ApplyProgress | None = None
        #: Set when a topology was published: a cloud with no configuration may now make one.
        self.topology_published = asyncio.Event()
        #: Held from judging a configuration to handing it over: whoever changes
        #: what configurations are judged and built against (a live reload of the
        #: devices) holds it too, so a configuration is never built for one
        #: device set and put in force on another.
        self.lock = asyncio.Lock()

    @property
    def current(self) -> RemoteConfig | None:
        return self.applied.current

    def publication_allowed(self) -> bool:
        """A rejected remote configuration stops data publication (§6)."""
        received = self.store.last_received()
        return received is None or received.valid

    def status(self) -> RemoteConfigStatus:
        current = self.applied.current
        received = self.store.last_received()
        return RemoteConfigStatus(
            applied_version=current.version if current else None,
            received_version=received.version if received else None,
            valid=received.valid if received else None,
            errors=tuple((e.path, e.message) for e in received.errors) if received else (),
            measurements=len(current.measurements) if current else 0,
            alarms=len(current.alarms) if current else 0,
            publisher_period_s=current.publisher_period_s if current else None,
        )

    # -- the route

    async def receive(self, version: str, document: object) -> bool:
        """Validate a remote configuration whole, apply it, and report; True if applied.

        Raises :class:`~panelfast.exceptions.CloudError` when what must come
        before judging it (``before_judging``) failed: nothing is recorded then.
        """
        if self._before_judging is not None:
            await self._before_judging()
        refused: RemoteConfigRejected | None
        async with self.lock:
            try:
                config = validate(document, self._allowed(), withdrawn=self._withdrawn())
                built = await self._apply(config)
            except RemoteConfigRejected as rejection:
                refused = rejection
            except PanelfastError as exc:
                # Valid on paper, yet it cannot be put in force here (e.g. a point
                # the devices do not have): refused whole, like an invalid one.
                refused = RemoteConfigRejected([ConfigPathError("(document)", str(exc))], version)
            else:
                refused = None
                self._hand_over(config, built)
        if refused is not None:
            return await self._rejected(version, refused)
        log.info(
            "remote configuration %s applied: %d measurements (%s samples/min), "
            "%d alarms, publication every %d s",
            config.version,
            len(config.measurements),
            config.samples_per_minute,
            len(config.alarms),
            config.publisher_period_s,
            extra={
                "event": "config.applied",
                "config_version": config.version,
                "measurements": len(config.measurements),
                "samples_per_minute": config.samples_per_minute,
                "alarms": len(config.alarms),
                "publisher_period_s": config.publisher_period_s,
                "apply_s": self.applied.last_apply_s,
            },
        )
        await self._send_report(version, "applied", [])
        return True

    async def _apply(self, config: RemoteConfig) -> T:
        def progress(p: ApplyProgress) -> None:
            self.applying = p
            if self._on_progress is not None:
                self._on_progress(p)

        try:
            # In a worker thread: preparing thousands of measurements must not hold
            # up sampling instants, and status().applying shows progress meanwhile.
            applied = await asyncio.to_thread(self.applied.apply, config, progress, self._prepare)
        finally:
            self.applying = None
        assert applied.built is not None  # a preparer was given
        return applied.built

    async def _rejected(self, version: str, rejection: RemoteConfigRejected) -> bool:
        self.applied.reject(rejection, version)
        shown = "; ".join(f"{e.path}: {e.message}" for e in rejection.errors[:5])
        log.error(
            "remote configuration %s rejected: %s",
            version,
            shown,
            extra={
                "event": "config.rejected",
                "config_version": version,
                "errors": [f"{e.path}: {e.message}" for e in rejection.errors[:20]],
                "error_count": len(rejection.errors),
            },
        )
        await self._send_report(
            version, "rejected", [(e.path, e.message) for e in rejection.errors]
        )
        return False

    async def _send_report(
        self, version: str, status: Literal["applied", "rejected"], errors: list[tuple[str, str]]
    ) -> bool:
        """Report the outcome (§6); the version is the one the hub served."""
        try:
            await self._hub.report_config(version, status, errors)
        except CloudError as exc:
            log.warning(
                "configuration report not delivered (sent again later): %s",
                exc,
                extra={"event": "config.report_failed", "config_version": version},
            )
            return False
        self.store.reported(version)
        return True

    async def report_if_due(self) -> bool:
        """Send the report of the last configuration received if it never went
        (a failure, or a crash between recording and reporting); False if still due."""
        received = self.store.last_received()
        if received is None or received.reported:
            return True
        errors = [(e.path, e.message) for e in received.errors]
        return await self._send_report(received.version, received.status, errors)

    async def poll(self, connected: Callable[[], bool]) -> None:
        """The long poll (§6), for as long as the gateway runs; idle while not connected."""
        backoff = Backoff(max_s=60)
        while True:
            if not connected():
                await asyncio.sleep(1)
                continue
            if not await self.report_if_due():
                await asyncio.sleep(backoff.failed())
                continue
            received = self.store.last_received()
            try:
                answer = await self._hub.get_config(
                    have_version=received.version if received else None, wait_s=CONFIG_WAIT_S
                )
                backoff.succeeded()
            except NotConnected:
                await asyncio.sleep(1)
                continue
            except CloudError as exc:
                log.info(
                    "remote configuration poll failed: %s",
                    exc,
                    extra={"event": "config.poll_failed", "error": str(exc)},
                )
                await asyncio.sleep(backoff.failed())
                continue
            if answer.status == "new" and answer.version is not None:
                try:
                    await self.receive(answer.version, answer.document)
                except NotConnected:
                    await asyncio.sleep(1)
                except CloudError as exc:
                    log.warning("remote configuration %s not judged yet: %s", answer.version, exc)
                    await asyncio.sleep(backoff.failed())
            elif answer.status == "none":
                # No configuration yet: wait for a topology publication or the long poll.
                await pause(self.topology_published, 1.0)
