"""HTTPS to the cloud (cloud protocol §1): TLS, CA bundle, proxy, timeouts, retries.

Every cloud request goes through :class:`Transport`, which

- verifies the server certificate, against the system trust store or the
  configured CA bundle (there is no switch to turn verification off);
- goes through the configured HTTP proxy (HTTPS through ``CONNECT``), with its
  credentials if the proxy URL has some;
- bounds every request by a timeout;
- retries 5xx answers, timeouts, reset and refused connections with
  exponential backoff (1 s doubling to at most 300 s, with jitter), and
  tells ``on_network_failure`` of each attempt that met no answer at all
  (refused, timeout, DNS...) at once, not after the retries: the Connection
  diagnostic follows the last attempt (§4);
- after a 429 sends nothing more to that host for ``Retry-After`` seconds;
- turns every failure into a :class:`~panelfast.exceptions.CloudError` whose
  ``hint`` names the host and port (or the proxy) that failed.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import socket
import ssl
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from panelfast import __version__
from panelfast._backoff import backoff_delay
from panelfast.clock import Clock
from panelfast.config import CloudSettings
from panelfast.exceptions import (
    BadCredentials,
    CloudError,
    CloudProtocolError,
    Conflict,
    InvalidPayload,
    NetworkUnreachable,
    NotConnected,
    NotFound,
    NotRegistered,
    PayloadTooLarge,
    RateLimited,
    TokenExpired,
)

__all__ = ["Endpoint", "RetryPolicy", "Transport", "ssl_context"]

log = logging.getLogger(__name__)

#: When a 429 comes without a usable Retry-After.
DEFAULT_RETRY_AFTER_S = 30.0


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: ``initial_s`` doubling to at most ``max_s``, with jitter.

    ``max_attempts`` bounds the tries of one request (``None``: until it
    succeeds or the transport is closed). Tests inject small bounds.
    """

    initial_s: float = 1.0
    max_s: float = 300.0
    max_attempts: int | None = 8

    def delay(self, retry: int) -> float:
        """The pause before retry number ``retry`` (0 for the first retry)."""
        return backoff_delay(retry, self.initial_s, self.max_s)


@dataclass(frozen=True)
class Endpoint:
    """The host and port a URL is served from: what a firewall must open."""

    host: str
    port: int

    @classmethod
    def of(cls, url: httpx.URL | str) -> Endpoint:
        url = httpx.URL(url)
        return cls(url.host, url.port or (443 if url.scheme == "https" else 80))

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def ssl_context(ca_bundle: Path | None) -> ssl.SSLContext:
    """A verifying TLS ≥ 1.2 context: the CA bundle if given, else the system store."""
    try:
        context = ssl.create_default_context(cafile=str(ca_bundle) if ca_bundle else None)
    except (OSError, ssl.SSLError) as exc:
        raise BadCredentials(
            f"the CA bundle {ca_bundle} cannot be loaded: {exc}",
            hint=f"check [cloud] ca_bundle: {ca_bundle} must be a readable PEM file of "
            "CA certificates",
        ) from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class Transport:
    """The one HTTPS client of the cloud connection; see the module docstring."""

    def __init__(
        self,
        settings: CloudSettings,
        *,
        retry: RetryPolicy | None = None,
        on_network_failure: Callable[[CloudError], None] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self.retry = retry or RetryPolicy()
        self._on_network_failure = on_network_failure
        # A Retry-After date is the cloud's time: compared with the synchronised clock.
        self._clock = clock or Clock()
        self.proxy = Endpoint.of(str(settings.proxy)) if settings.proxy else None
        self._blocked_until: dict[Endpoint, float] = {}
        self._closed = False
        #: Requests sent again after a failure (for the metrics).
        self.retries = 0
        self._client = httpx.AsyncClient(
            verify=ssl_context(settings.ca_bundle),
            proxy=str(settings.proxy) if settings.proxy else None,
            timeout=httpx.Timeout(settings.request_timeout_s),
            trust_env=False,  # the configuration, not the environment, names the proxy
            follow_redirects=False,
            headers={"User-Agent": f"panelfast/{__version__}"},
        )

    @property
    def closed(self) -> bool:
        return self._closed

    async def aclose(self) -> None:
        """Stop all traffic: requests in flight fail, later ones raise NotConnected."""
        self._closed = True
        await self._client.aclose()

    def blocked_for(self, url: str) -> float:
        """Seconds before anything may be sent to the host of ``url`` (after a 429)."""
        until = self._blocked_until.get(Endpoint.of(url), 0.0)
        return max(0.0, until - time.monotonic())

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        ok: Collection[int] = (200,),
        timeout_s: float | None = None,
        retry: RetryPolicy | None = None,
    ) -> httpx.Response:
        """Send one request, retried per the policy; a status in ``ok`` is returned.

        Any other outcome raises the :class:`CloudError` it means (§1's table).
        """
        policy = retry or self.retry
        target = httpx.URL(url)
        if target.scheme != "https":
            raise CloudProtocolError(f"refusing a non-HTTPS cloud URL {url!r}")
        endpoint = Endpoint.of(target)
        timeout = httpx.Timeout(timeout_s) if timeout_s is not None else None
        attempt = 0
        while True:
            await self._wait_until_allowed(endpoint)
            try:
                if timeout is None:
                    response = await self._client.request(
                        method, target, headers=headers, content=content
                    )
                else:
                    response = await self._client.request(
                        method, target, headers=headers, content=content, timeout=timeout
                    )
            except httpx.TransportError as exc:
                if self._closed:
                    raise NotConnected("disconnected: no cloud traffic") from None
                error, retryable = self._transport_failure(exc, endpoint)
                server_status = None
                if self._on_network_failure is not None:
                    self._on_network_failure(error)
            except RuntimeError:
                if self._closed:  # httpx refuses to use a closed client
                    raise NotConnected("disconnected: no cloud traffic") from None
                raise
            else:
                if response.status_code in ok:
                    return response
                error, retryable = _error_from_response(response, endpoint, self._clock)
                server_status = response.status_code
                if isinstance(error, RateLimited):
                    self._block(endpoint, error.retry_after)
            attempt += 1
            exhausted = policy.max_attempts is not None and attempt >= policy.max_attempts
            if not retryable or exhausted:
                if retryable and server_status is not None and server_status >= 500:
                    raise NetworkUnreachable(
                        f"{endpoint} answered {server_status} {error.code or ''}".rstrip()
                        + f" {attempt} time(s)",
                        hint=f"the cloud service at {endpoint} is unavailable "
                        f"(HTTP {server_status}); the gateway keeps retrying",
                        status=server_status,
                        code=error.code,
                    ) from error
                raise error
            self.retries += 1
            log.info(
                "%s %s failed (%s), retry %d",
                method,
                endpoint,
                error.message,
                attempt,
                extra={"event": "cloud.retry", "endpoint": str(endpoint), "attempt": attempt},
            )
            if not isinstance(error, RateLimited):  # the wait is the host's block
                await asyncio.sleep(policy.delay(attempt - 1))

    async def _wait_until_allowed(self, endpoint: Endpoint) -> None:
        while True:
            if self._closed:
                raise NotConnected("disconnected: no cloud traffic")
            remaining = self._blocked_until.get(endpoint, 0.0) - time.monotonic()
            if remaining <= 0:
                return
            await asyncio.sleep(remaining)

    def _block(self, endpoint: Endpoint, seconds: float) -> None:
        until = time.monotonic() + seconds
        self._blocked_until[endpoint] = max(until, self._blocked_until.get(endpoint, 0.0))

    def _transport_failure(
        self, exc: httpx.TransportError, endpoint: Endpoint
    ) -> tuple[CloudError, bool]:
        """A failure before any answer of the cloud → (error, whether to retry)."""
        causes = _causes(exc)
        if isinstance(exc, httpx.ProxyError):
            return _proxy_refusal(str(exc), self.proxy, endpoint)
        for cause in causes:
            if isinstance(cause, ssl.SSLCertVerificationError):
                reason = cause.verify_message or str(cause)
                return BadCredentials(
                    f"the TLS certificate of {endpoint} was not verified: {reason}",
                    hint=f"the certificate of {endpoint} is not signed by a trusted CA: check that "
                    "[cloud] ca_bundle names the CA of the cloud's certificate (and that the "
                    "gateway's date is right)",
                ), False
        # With a proxy every connection goes to the proxy: connect failures are its.
        peer = self.proxy if self.proxy is not None else endpoint
        what = f"the proxy {peer}" if self.proxy is not None else str(peer)
        for cause in causes:
            if isinstance(cause, socket.gaierror):
                return NetworkUnreachable(
                    f"{peer.host} could not be resolved: {cause.strerror or cause}",
                    hint=f"DNS could not resolve {peer.host}, so {what} cannot be reached: "
                    "check the gateway's DNS server and the spelling of the URL",
                ), True
        if isinstance(exc, httpx.ConnectTimeout):
            return NetworkUnreachable(
                f"{what} did not accept a connection within the timeout",
                hint=f"no answer from {what} (TCP port {peer.port}): check that the firewall "
                f"allows TCP to {peer}",
            ), True
        if isinstance(exc, httpx.TimeoutException):
            return NetworkUnreachable(
                f"{endpoint} did not answer within the timeout",
                hint=f"{endpoint} accepted the connection but did not answer in time",
            ), True
        if any(isinstance(c, ConnectionResetError | BrokenPipeError) for c in causes):
            return NetworkUnreachable(
                f"{what} reset the connection",
                hint=f"{what} (or a firewall in between) reset the TCP connection: check that "
                f"the firewall allows HTTPS to {endpoint}",
            ), True
        for cause in causes:
            if isinstance(cause, ssl.SSLError) and not isinstance(cause, _SSL_WANT):
                return NetworkUnreachable(
                    f"the TLS handshake with {endpoint} failed: {cause}",
                    hint=f"{endpoint} does not speak TLS 1.2+ as expected: check the URL and port, "
                    "and that no middlebox intercepts HTTPS",
                ), True
        if isinstance(exc, httpx.ConnectError):
            return NetworkUnreachable(
                f"could not connect to {what}: {_short(exc)}",
                hint=f"nothing accepted a TCP connection at {what}: check that the service is up "
                f"and that the firewall allows TCP to {peer}",
            ), True
        return NetworkUnreachable(
            f"the connection to {endpoint} was lost: {_short(exc)}",
            hint=f"{endpoint} (or a device in between) reset the connection",
        ), True


# Left in the context of an exception by the TLS layer's non-blocking reads: not a cause.
_SSL_WANT = (ssl.SSLWantReadError, ssl.SSLWantWriteError)


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception and what caused it, outermost first (httpx wraps httpcore wraps OSError)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _short(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _proxy_refusal(
    message: str, proxy: Endpoint | None, endpoint: Endpoint
) -> tuple[CloudError, bool]:
    head = message.split(" ", 1)[0]
    status = int(head) if head.isdigit() else None
    where = f"the proxy {proxy}" if proxy else "the proxy"
    if status in (401, 407):
        advice = "check the user and password of [cloud] proxy"
    elif status == 403:
        advice = f"the proxy must allow CONNECT to {endpoint}"
    else:
        advice = f"the proxy could not reach {endpoint}"
    return NetworkUnreachable(
        f"{where} refused CONNECT to {endpoint}: {message}",
        hint=f"{where} refused the connection to {endpoint} ({message}): {advice}",
        status=status,
    ), status is None or status >= 500


def _retry_after(value: str | None, clock: Clock) -> float:
    """``Retry-After``: delay-seconds or an HTTP date (the cloud's: by the synchronised clock)."""
    if not value:
        return DEFAULT_RETRY_AFTER_S
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER_S
    return max(0.0, when.timestamp() - clock.now())


def _error_from_response(
    response: httpx.Response, endpoint: Endpoint, clock: Clock
) -> tuple[CloudError, bool]:
    """A non-success answer → (the error it means, whether to retry)."""
    status = response.status_code
    body: object = None
    try:
        body = response.json()
    except ValueError:
        body = None
    code = body.get("error") if isinstance(body, dict) else None
    text = body.get("message") if isinstance(body, dict) else None
    code = code if isinstance(code, str) else None
    detail = f"{status} {code or response.reason_phrase}" + (f": {text}" if text else "")
    message = f"{endpoint} answered {detail}"
    if status == 400:
        return InvalidPayload(message, status=status, code=code), False
    if status == 401:
        if code == "token_expired":
            return TokenExpired(message, status=status, code=code), False
        return BadCredentials(message, status=status, code=code), False
    if status == 403 and code == "device_not_registered":
        return NotRegistered(message, status=status, code=code), False
    if status == 404:
        return NotFound(message, status=status, code=code), False
    if status == 409:
        expected = body.get("expected") if isinstance(body, dict) else None
        ok_int = isinstance(expected, int) and not isinstance(expected, bool)
        return Conflict(message, expected=expected if ok_int else None), False
    if status == 413:
        return PayloadTooLarge(message, status=status, code=code), False
    if status == 429:
        seconds = _retry_after(response.headers.get("Retry-After"), clock)
        return RateLimited(
            message,
            retry_after=seconds,
            hint=f"{endpoint} asked the gateway to wait {seconds:g} s",
        ), True
    if status >= 500:
        return CloudError(message, status=status, code=code), True
    return CloudProtocolError(
        message, status=status, code=code, hint="the cloud does not follow protocol v1"
    ), False
