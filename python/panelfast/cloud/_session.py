"""The cloud connection's state machine: Connect, Disconnect, status and diagnostics.

Connection status (§4): ``Not connected`` until the user connects;
``Connection in progress`` while the gateway is trying (or has lost the
connection and is trying again); ``Connected`` once a bootstrap and a hub
request succeeded. The Connection diagnostic follows the last attempt, with a
hint that says what to check.

Connect and Disconnect are persisted (:mod:`._state`): a gateway that was
connected reconnects after a reboot (:meth:`CloudSession.run`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from panelfast._backoff import pause
from panelfast.cloud._bootstrap import bootstrap
from panelfast.cloud._hints import explain
from panelfast.cloud._hub import HubAccess, HubClient
from panelfast.cloud._identity import Identity
from panelfast.cloud._state import CloudState, StateStore
from panelfast.cloud._status import CloudStatus, ConnectionStatus, Diagnostic, saved_diagnostic
from panelfast.cloud._timesync import Clock, SyncStatus, TimeSync
from panelfast.cloud._transport import RetryPolicy, Transport
from panelfast.config import Settings
from panelfast.exceptions import BadCredentials, CloudError, NotConnected, NotRegistered

__all__ = ["CloudSession", "CloudStatus", "ConnectionStatus", "Diagnostic"]

log = logging.getLogger(__name__)

#: A token this close to its expiry is renewed before use rather than after a 401.
TOKEN_MARGIN_S = 30
#: How long a disconnect call may take: it is best effort.
DISCONNECT_TIMEOUT_S = 5.0


class CloudSession:
    """One gateway's connection to its cloud; :attr:`hub` makes the calls."""

    def __init__(
        self,
        settings: Settings,
        *,
        retry: RetryPolicy | None = None,
        ntp_timeout_s: float = 3.0,
        resync_s: float = 3600.0,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self.store = StateStore(settings.storage.dir)
        self.state: CloudState = self.store.load()
        self.identity = Identity.from_settings(settings.identity, device_id=self.state.device_id)
        # The gateway's one clock: the daemon's log lines are stamped by it too.
        self.clock = clock or Clock()
        self.timesync = TimeSync(
            settings.time,
            self.clock,
            cloud_ntp_server=self.state.ntp_server,
            timeout_s=ntp_timeout_s,
        )
        restored = SyncStatus.from_json(self.state.time)
        if restored is not None:
            self.timesync.restore(restored)
        self.retry = retry or RetryPolicy()
        self.resync_s = resync_s
        self.hub = HubClient(self)
        self._transport: Transport | None = None
        # Retries of the transports closed so far (a new one is made after a disconnect).
        self._retired_retries = 0
        self._renewing = asyncio.Lock()
        self._changed = asyncio.Event()
        # After a restart nothing is known yet: a gateway that should be
        # connected is (again) in progress until its first attempt.
        self._connection = (
            ConnectionStatus.IN_PROGRESS if self.state.connect else ConnectionStatus.NOT_CONNECTED
        )

    # -- status

    @property
    def connect_requested(self) -> bool:
        return self.state.connect

    def status(self) -> CloudStatus:
        return CloudStatus(
            connection=self._connection,
            diagnostic=saved_diagnostic(self.state.diagnostic),
            hint=self.state.hint,
            time=self.timesync.status,
            device_id=self.state.device_id,
            attempt_at=self.state.attempt_at,
        )

    def saved_status(self) -> CloudStatus:
        """The outcome of the last attempt as saved, whichever process made it (CLI status)."""
        saved = self.state.status
        connection = (
            ConnectionStatus(saved)
            if self.state.connect and saved in {c.value for c in ConnectionStatus}
            else self._connection
        )
        return dataclasses.replace(self.status(), connection=connection)

    def _save(self) -> None:
        self.state.status = self._connection.value
        self.state.time = self.timesync.status.to_json()
        self.store.save(self.state)

    # -- the HubAccessProvider side, used by HubClient

    @property
    def transport(self) -> Transport:
        if not self.state.connect:
            raise NotConnected("disconnected: Connect first", hint="run: panelfast connect")
        if self._transport is None or self._transport.closed:
            if self._transport is not None:
                self._retired_retries += self._transport.retries
            self._transport = Transport(
                self.settings.cloud,
                retry=self.retry,
                # Shown at the attempt that met it, while the transport retries (§4).
                on_network_failure=self.outcome,
                clock=self.clock,
            )
        return self._transport

    @property
    def request_retries(self) -> int:
        """Cloud requests sent again after a failure since the start (for the metrics)."""
        current = self._transport.retries if self._transport is not None else 0
        return self._retired_retries + current

    async def hub_access(self) -> HubAccess:
        state = self.state
        if not state.connect:
            raise NotConnected("disconnected: Connect first", hint="run: panelfast connect")
        access = state.hub_access()
        if access is not None and self._token_fresh():
            return access
        return await self.renew(access)

    def _token_fresh(self) -> bool:
        return self.state.token_fresh(self.clock.now(), TOKEN_MARGIN_S)

    async def renew(self, stale: HubAccess | None) -> HubAccess:
        """Bootstrap (again): one at a time, and not if another call already did."""
        async with self._renewing:
            current = self.state.hub_access()
            renewed_meanwhile = (
                current is not None
                and self._token_fresh()
                and (stale is None or current.token != stale.token)
            )
            if renewed_meanwhile and current is not None:
                return current  # another call bootstrapped while this one waited
            await self.timesync.sync_if_due(self.resync_s)
            try:
                result = await bootstrap(
                    self.transport,
                    self.identity,
                    self.clock,
                    str(self.settings.cloud.bootstrap_url),
                )
            except CloudError as exc:
                self._explain(exc)
                if isinstance(exc, NotRegistered | BadCredentials) and exc.status is not None:
                    self.state.forget_bootstrap()
                raise
            self.state.take_bootstrap(result)
            self.identity = Identity.from_settings(
                self.settings.identity, device_id=result.device_id
            )
            if (
                self.settings.time.mode == "cloud"
                and result.ntp_server != self.timesync.cloud_ntp_server
            ):
                self.timesync.cloud_ntp_server = result.ntp_server
                await self.timesync.sync()  # the cloud's own server from now on
            self._save()
            log.info(
                "bootstrapped as %s",
                result.device_id,
                extra={"event": "cloud.bootstrapped", "cloud_device_id": result.device_id},
            )
            access = self.state.hub_access()
            assert access is not None
            return access

    def outcome(self, error: CloudError | None) -> None:
        """Follow the last attempt (§4): success activates, a diagnosed failure says why."""
        if not self.state.connect:
            return
        if error is None:
            connection, diagnostic, hint = ConnectionStatus.CONNECTED, Diagnostic.ACTIVATED, ""
        elif error.diagnostic is not None:
            if isinstance(error, NotRegistered) and not error.hint:
                self._explain(error)  # a de-enrolled serial, told by the hub
            connection, diagnostic = ConnectionStatus.IN_PROGRESS, Diagnostic(error.diagnostic)
            hint = error.hint or error.message
        else:
            return  # the hub answered: the connection itself is fine
        changed = (connection, diagnostic.value, hint) != (
            self._connection,
            self.state.diagnostic,
            self.state.hint,
        )
        self._connection = connection
        self.state.diagnostic, self.state.hint = diagnostic.value, hint
        self.state.attempt_at = self.clock.now()
        if changed:
            if error is not None:
                log.warning(
                    "cloud: %s (%s)",
                    diagnostic.value,
                    error.message,
                    extra={
                        "event": "cloud.connection_failed",
                        "diagnostic": diagnostic.value,
                        "error": error.message,
                        "hint": hint,
                    },
                )
            else:
                log.info(
                    "cloud: connected (%s)",
                    diagnostic.value,
                    extra={"event": "cloud.connected", "diagnostic": diagnostic.value},
                )
            self._save()
            self._changed.set()

    def _explain(self, exc: CloudError) -> None:
        explain(exc, self.identity, self.timesync.status, self.settings.time.mode)

    # -- what the user does

    async def connect(self) -> CloudStatus:
        """Connect (persisted), then make one attempt: time, bootstrap, a hub request."""
        if not self.state.connect:
            self.state.connect = True
            self._connection = ConnectionStatus.IN_PROGRESS
            self._save()
            log.info("cloud: connect requested", extra={"event": "cloud.connect_requested"})
        await self.attempt()
        return self.status()

    async def attempt(self) -> bool:
        """One connection attempt; the outcome is in :meth:`status`."""
        try:
            await self.timesync.sync_if_due(self.resync_s)
            await self.hub.get_commands(wait_s=0)  # a hub request with no side effect
        except NotConnected:
            return False
        except CloudError as exc:
            log.info(
                "cloud connection attempt failed: %s",
                exc.message,
                extra={"event": "cloud.attempt_failed", "error": exc.message},
            )
            return exc.diagnostic is None
        return True

    async def disconnect(self) -> CloudStatus:
        """Tell the hub (best effort), stop all cloud traffic, show Not connected."""
        if self.state.connect and self.state.hub_access() is not None:
            try:
                await asyncio.wait_for(self._say_goodbye(), DISCONNECT_TIMEOUT_S)
            except (CloudError, TimeoutError) as exc:
                log.info(
                    "disconnect call not delivered: %s",
                    exc,
                    extra={"event": "cloud.disconnect_not_delivered", "error": str(exc)},
                )
        self.state.connect = False
        self._connection = ConnectionStatus.NOT_CONNECTED
        self.state.diagnostic, self.state.hint = None, ""
        self._save()
        self._changed.set()
        await self.aclose()
        log.info(
            "cloud: disconnected, no cloud traffic until Connect",
            extra={"event": "cloud.disconnected"},
        )
        return self.status()

    async def _say_goodbye(self) -> None:
        access = self.state.hub_access()
        assert access is not None
        await self.transport.request(
            "POST",
            f"{access.hub_url}/v1/devices/{access.device_id}/disconnect",
            headers={"Authorization": f"Bearer {access.token}"},
            ok=(200, 204),
            retry=RetryPolicy(max_attempts=1),
        )

    async def aclose(self) -> None:
        """Close the HTTPS client (the persisted Connect is left as it is)."""
        if self._transport is not None:
            await self._transport.aclose()
            self._retired_retries += self._transport.retries
            self._transport = None

    async def run(self) -> None:
        """Keep the connection up while Connect is requested (e.g. after a reboot).

        Reconnects with backoff after a failure, resynchronises the clock
        every ``resync_s``; returns once the user disconnects.
        """
        failures = 0
        while self.state.connect:
            self._changed.clear()
            if self._connection is not ConnectionStatus.CONNECTED:
                if await self.attempt() and self.status().connection is ConnectionStatus.CONNECTED:
                    failures = 0
                    continue
                if not self.state.connect:
                    break
                delay = self.retry.delay(failures)
                failures += 1
            else:
                delay = self.resync_s
            await pause(self._changed, delay)
            if self._connection is ConnectionStatus.CONNECTED and self.state.connect:
                await self.timesync.sync_if_due(self.resync_s)
