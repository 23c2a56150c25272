"""What every test must do: leave the machine as it found it.

A test that leaves a child process running, a thread going, or a socket or
file open fails, itself, with what it left (:func:`_leaves_nothing_behind`).
Objects a test dropped without closing are collected when it ends, so the
``ResourceWarning`` they raise (an error: ``filterwarnings = error``) is
reported against the test that leaked them, not a later one that happened to
run when the garbage collector did. Run with ``PYTHONTRACEMALLOC=20`` to see
where a leaked object was made.
"""

from __future__ import annotations

import gc
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import psutil
import pytest
from hypothesis import HealthCheck, settings

# On a loaded machine examples may be slow to run or to generate: that says
# nothing about the code under test (the properties' own settings add to this).
settings.register_profile("panelfast", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("panelfast")

#: How long what a test started may take to end once the test is over
#: (a server thread finishing its last request, a child being reaped).
SETTLE_S = 10.0


@dataclass(frozen=True)
class _Held:
    """What this process holds at one moment."""

    children: frozenset[int]
    threads: frozenset[int]
    fds: frozenset[int]

    @classmethod
    def now(cls) -> _Held:
        children = frozenset(p.pid for p in psutil.Process().children(recursive=True))
        threads = frozenset(t.ident for t in threading.enumerate() if t.ident is not None)
        return cls(children, threads, frozenset(_open_fds()))

    def left_since(self, before: _Held) -> list[str]:
        """What is held now and was not ``before``, described for the user."""
        left = [_describe_child(pid) for pid in sorted(self.children - before.children)]
        threads = {t.ident: t for t in threading.enumerate()}
        left += [
            f"thread {threads[ident].name!r}"
            for ident in sorted(self.threads - before.threads)
            if ident in threads
        ]
        left += [f"fd {fd} → {_fd_target(fd)}" for fd in sorted(self.fds - before.fds)]
        return [item for item in left if item]


def _open_fds() -> set[int]:
    fds = set()
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        # The listing itself held an fd while it ran: it is closed by now.
        if os.path.exists(f"/proc/self/fd/{fd}"):
            fds.add(fd)
    return fds


def _fd_target(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return "(closed meanwhile)"


def _describe_child(pid: int) -> str:
    try:
        process = psutil.Process(pid)
        return f"process {pid} ({process.status()}): {' '.join(process.cmdline())[:200]}"
    except psutil.Error:
        return ""  # ended meanwhile


def pytest_sessionstart(session: pytest.Session) -> None:
    # libuv (under uvloop) opens a pipe with the first event loop of a process
    # and keeps it for the process's life: open it before the first test, which
    # would otherwise be blamed for it.
    import uvloop

    uvloop.new_event_loop().close()


@pytest.fixture(autouse=True)
def _leaves_nothing_behind(request: pytest.FixtureRequest) -> Iterator[None]:
    before = _Held.now()
    yield
    # Dropped, unclosed objects warn now, while this test is the one reported.
    gc.collect()
    deadline = time.monotonic() + SETTLE_S
    while left := _Held.now().left_since(before):
        if time.monotonic() > deadline:
            pytest.fail(
                f"{request.node.nodeid} left behind (close, stop or wait for what it opens):\n  "
                + "\n  ".join(left),
                pytrace=False,
            )
        time.sleep(0.05)
        gc.collect()
