"""What the cloud client's tests share: the test cloud, its CA, configuration
files, sessions, an SNTP server and a real proxy, each closed after the test.

A test module imports the fixtures it uses (and those they use) and names
them in its ``__all__``, as the reference cloud's tests do:

- ``ca`` (per module), ``ca_file``: the CA that signed the test cloud's certificate;
- ``cloud``: a :class:`~cloud_testserver.TestCloud` enrolling :data:`SERIAL`;
  ``make_cloud(**options)`` for one made otherwise (skewed clock, NTP server);
- ``config``: a gateway configuration file for ``cloud`` (:func:`write_config`
  for any other);
- ``make_session(config)``: a :class:`~panelfast.cloud.CloudSession` with quick
  retries; ``session``: one already connected to ``cloud``;
- ``proxy(auth=..., connect_ports=...)``: a running tinyproxy, ``(port, log)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import trustme

from cloud_testserver import TestCloud
from panelfast.cloud import CloudSession, RetryPolicy
from panelfast.config import load_settings, write_secret
from waiting import wait_until

SERIAL = "PS-0042-7A19"
CLAIM_KEY = "5a" * 32
#: Retries quick enough for a test, as many as a gateway's.
FAST = RetryPolicy(initial_s=0.05, max_s=0.2, max_attempts=3)

MakeCloud = Callable[..., TestCloud]
MakeSession = Callable[..., CloudSession]
Proxy = Callable[..., tuple[int, Path]]


# -- gateway configuration files


def write_config(
    folder: Path,
    *,
    bootstrap_url: str,
    ca_bundle: Path | None,
    mode: str = "manual",
    ntp_server: str = "127.0.0.1:1",
    proxy: str | None = None,
    serial: str = SERIAL,
    claim_key: str = CLAIM_KEY,
    timeout_s: float = 10.0,
    filename: str = "panelfast.toml",
) -> Path:
    """A gateway configuration file (and its 0600 claim key file) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    write_secret(folder / "claim.key", claim_key)
    lines = [
        "[identity]",
        f'serial = "{serial}"',
        'mac = "aa:bb:cc:dd:ee:01"',
        'claim_key_file = "claim.key"',
        "[cloud]",
        f'bootstrap_url = "{bootstrap_url}"',
        f"request_timeout_s = {timeout_s}",
    ]
    if ca_bundle is not None:
        lines.append(f'ca_bundle = "{ca_bundle}"')
    if proxy is not None:
        lines.append(f'proxy = "{proxy}"')
    lines += ["[time]", f'mode = "{mode}"', f'ntp_server = "{ntp_server}"']
    lines += ["[storage]", f'dir = "{folder / "state"}"']
    path = folder / filename
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- a local SNTP server (RFC 4330), serving the machine's time plus an offset

NTP_EPOCH_DELTA = 2_208_988_800


def _ntp_stamp(t: float) -> tuple[int, int]:
    return int(t) + NTP_EPOCH_DELTA, int((t % 1) * 2**32)


class _SntpProtocol(asyncio.DatagramProtocol):
    def __init__(self, offset_s: float) -> None:
        self.offset_s = offset_s
        self.transport: asyncio.DatagramTransport | None = None
        self.queries = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) < 48 or self.transport is None:
            return
        self.queries += 1
        now = time.time() + self.offset_s
        version = (data[0] >> 3) & 0x7
        stamp = _ntp_stamp(now)
        packet = struct.pack(
            "!BBbb3I", (version << 3) | 4, 1, 4, -20, 0, 0, int.from_bytes(b"TEST", "big")
        )
        packet += struct.pack("!2I", *stamp)  # reference
        packet += data[40:48]  # originate: the client's transmit timestamp, echoed
        packet += struct.pack("!2I", *stamp) + struct.pack(
            "!2I", *_ntp_stamp(time.time() + self.offset_s)
        )
        self.transport.sendto(packet, addr)


@contextlib.asynccontextmanager
async def sntp_server(offset_s: float) -> AsyncIterator[tuple[str, _SntpProtocol]]:
    """An SNTP server on 127.0.0.1 whose time is the machine's plus ``offset_s``."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: _SntpProtocol(offset_s), local_addr=("127.0.0.1", 0)
    )
    port = transport.get_extra_info("sockname")[1]
    try:
        yield f"127.0.0.1:{port}", protocol
    finally:
        transport.close()


# -- tinyproxy, started with a generated configuration


@contextlib.contextmanager
def sntp_server_thread(offset_s: float) -> Iterator[str]:
    """:func:`sntp_server` on a thread of its own, for tests that block (child processes)."""
    ready: list[str] = []
    started = threading.Event()
    stop: list[asyncio.Event] = []
    loop = asyncio.new_event_loop()

    async def serve() -> None:
        async with sntp_server(offset_s) as (server, _):
            stop.append(asyncio.Event())
            ready.append(server)
            started.set()
            await stop[0].wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    try:
        if not started.wait(10):
            raise RuntimeError("the SNTP server did not start")
        yield ready[0]
    finally:
        if stop:
            loop.call_soon_threadsafe(stop[0].set)
        thread.join(10)
        loop.close()


@contextlib.contextmanager
def tinyproxy(
    folder: Path, *, auth: tuple[str, str] | None = None, connect_ports: tuple[int, ...] = ()
) -> Iterator[tuple[int, Path]]:
    """A real tinyproxy on 127.0.0.1; yields its port and its log file.

    ``connect_ports`` limits CONNECT to those ports (others get 403), as a
    site's proxy that only lets HTTPS to port 443 through.
    """
    binary = shutil.which("tinyproxy") or "/usr/bin/tinyproxy"
    if not Path(binary).exists():
        pytest.fail("tinyproxy is not installed: run `make system-deps`")
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "tinyproxy.log"
    lines = [
        f"Port {port}",
        "Listen 127.0.0.1",
        "Timeout 10",
        "MaxClients 20",
        "LogLevel Info",
        f'LogFile "{log}"',
        "Allow 127.0.0.1",
    ]
    if auth is not None:
        lines.append(f"BasicAuth {auth[0]} {auth[1]}")
    lines += [f"ConnectPort {p}" for p in connect_ports]
    conf = folder / "tinyproxy.conf"
    conf.write_text("\n".join(lines) + "\n", encoding="utf-8")
    proc = subprocess.Popen(
        [binary, "-d", "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def listening() -> bool:
            if proc.poll() is not None:
                pytest.fail(f"tinyproxy did not start: {log.read_text() if log.exists() else ''}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=5).close()
            except OSError:
                return False
            return True

        wait_until(listening, "tinyproxy listening")
        yield port, log
    finally:
        proc.terminate()
        proc.wait(timeout=60)


# -- fixtures


@pytest.fixture(scope="module", name="ca")
def ca_fixture() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(name="ca_file")
def ca_file_fixture(ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "cloud-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture(name="make_cloud")
def make_cloud_fixture(ca: trustme.CA) -> Iterator[MakeCloud]:
    made: list[TestCloud] = []

    def make(**options: Any) -> TestCloud:
        made.append(TestCloud(ca, **{"enrolled": {SERIAL: CLAIM_KEY}, **options}))
        return made[-1]

    try:
        yield make
    finally:
        for cloud in made:
            cloud.close()


@pytest.fixture(name="cloud")
def cloud_fixture(make_cloud: MakeCloud) -> TestCloud:
    return make_cloud()


@pytest.fixture(name="config")
def config_fixture(cloud: TestCloud, ca_file: Path, tmp_path: Path) -> Path:
    """A gateway configured for ``cloud``, straight (no proxy), on the system clock."""
    return write_config(tmp_path, bootstrap_url=cloud.url("bootstrap"), ca_bundle=ca_file)


@pytest.fixture(name="make_session")
async def make_session_fixture() -> AsyncIterator[MakeSession]:
    made: list[CloudSession] = []

    def make(config: Path, retry: RetryPolicy = FAST) -> CloudSession:
        made.append(CloudSession(load_settings(config), retry=retry, ntp_timeout_s=2.0))
        return made[-1]

    try:
        yield make
    finally:
        for session in made:
            await session.aclose()


@pytest.fixture(name="session")
async def session_fixture(config: Path, make_session: MakeSession) -> CloudSession:
    """A session connected to ``cloud``."""
    connected = make_session(config)
    await connected.connect()
    return connected


@pytest.fixture(name="proxy")
def proxy_fixture(tmp_path: Path) -> Iterator[Proxy]:
    with contextlib.ExitStack() as running:

        def start(
            *, auth: tuple[str, str] | None = None, connect_ports: tuple[int, ...] = ()
        ) -> tuple[int, Path]:
            return running.enter_context(
                tinyproxy(tmp_path / "proxy", auth=auth, connect_ports=connect_ports)
            )

        yield start
