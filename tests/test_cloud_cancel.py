"""A cloud request cancelled while its connection is being made leaves no socket open.

The gateway cancels requests in flight whenever it stops, or a loop is
restarted; with several loops opening connections at once (long polls,
publication, commands), a cancellation often falls during a TLS handshake.
The test fails (pytest turns the ResourceWarning of a socket left open into
an error) if any of those sockets is left for the garbage collector.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from panelfast.cloud import RetryPolicy
from panelfast.cloud._transport import Transport
from panelfast.config import CloudSettings
from panelfast.refcloud import RefCloud


@pytest.fixture(name="cloud")
def cloud_fixture(tmp_path: Path) -> Iterator[RefCloud]:
    with RefCloud(tmp_path / "cloud") as cloud:
        yield cloud


async def test_requests_cancelled_while_connecting_close_their_connection(cloud: RefCloud) -> None:
    settings = CloudSettings(bootstrap_url=cloud.bootstrap_url, ca_bundle=cloud.ca_path)
    url = f"{cloud.bootstrap_url}/v1/bootstrap"
    # Cancelled from before the TCP connection to after the TLS handshake, 0.5 ms apart.
    for step in range(40):
        transport = Transport(settings, retry=RetryPolicy(max_attempts=1))
        try:
            request = asyncio.create_task(transport.request("GET", url, ok=(200, 404, 405)))
            await asyncio.sleep(step / 2000)
            request.cancel()
            with contextlib.suppress(BaseException):
                await request
        finally:
            await transport.aclose()
    # And a request that is let be still gets its answer.
    transport = Transport(settings, retry=RetryPolicy(max_attempts=1))
    try:
        response = await transport.request("GET", url, ok=(200, 404, 405))
        assert response.status_code in (404, 405)
    finally:
        await transport.aclose()
    gc.collect()
