"""An HTTPS transport whose connections are closed when a request is cancelled mid-handshake.

httpcore 1.0 closes a new connection whose TLS handshake fails, but not one
whose handshake is *cancelled* (it catches ``Exception``, and cancellation is
a ``BaseException``): the socket stays open until the garbage collector finds
it. The gateway cancels requests in flight whenever it stops or a loop is
restarted, and several loops open connections at once (long polls,
publication, commands), so that happens. :func:`guarded_transport` wraps the
network backend httpx uses so that such a socket is closed at once.
"""

# The `timeout` parameters are httpcore's interface, implemented here, not a choice.
# ruff: noqa: ASYNC109

from __future__ import annotations

import ssl
import typing

import anyio
import httpcore
import httpx

__all__ = ["guarded_transport"]


class _Stream(httpcore.AsyncNetworkStream):
    """A connection before TLS: its handshake closes it if it does not complete."""

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            return await self._inner.start_tls(ssl_context, server_hostname, timeout)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._inner.aclose()
            raise

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.AsyncNetworkBackend):
    def __init__(self, inner: httpcore.AsyncNetworkBackend) -> None:
        self._inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _Stream(stream)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return _Stream(await self._inner.connect_unix_socket(path, timeout, socket_options))

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_transport(verify: ssl.SSLContext, proxy: str | None) -> httpx.AsyncHTTPTransport:
    """httpx's own transport (through ``proxy`` if given), its backend guarded."""
    transport = httpx.AsyncHTTPTransport(verify=verify, proxy=proxy, trust_env=False)
    # httpx builds the connection pool (or the proxy's) itself, with no way to pass a
    # backend; both read this attribute each time they open a connection.
    pool = transport._pool
    pool._network_backend = _Backend(pool._network_backend)
    return transport
