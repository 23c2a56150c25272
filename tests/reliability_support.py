"""Helpers of the gateway reliability tests (crash, outage, rejected configuration, quota).

Everything here works on real components: the gateway as a ``panelfast run``
process, its outbox as the SQLite file it writes, the reference cloud's own
storage and log.
"""

from __future__ import annotations

import itertools
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

import msgpack
import zstandard

import waiting
from panelfast.embedded import EmbeddedSystem
from panelfast.gateway import Gateway
from waiting import PATIENCE_S

#: What the tests sample: floats and an exact integer counter, on two meters.
MEASUREMENTS: tuple[tuple[str, str], ...] = (
    ("mb-1", "VoltageAN"),
    ("mb-1", "CurrentA"),
    ("mb-1", "ActiveEnergyDelivered"),
    ("mb-2", "ActivePower"),
)

Instant = tuple[str, int]  # ("<device>/<measurement>", t_ms), as the reference cloud counts


def config_document(
    measurements: Sequence[tuple[str, str]] = MEASUREMENTS,
    *,
    period_s: int = 1,
    publisher_period_s: int = 1,
) -> dict[str, Any]:
    """A remote configuration (§6) sampling ``measurements`` every ``period_s``."""
    return {
        "version": "0",  # the reference cloud numbers the versions it issues
        "measurements": [
            {"device": d, "measurement": m, "period_s": period_s} for d, m in measurements
        ],
        "alarms": [],
        "publisher": {"period_s": publisher_period_s},
    }


def names_of(document: Mapping[str, Any]) -> list[str]:
    """The measurements of a configuration as ``device/measurement``, in §7 index order."""
    return [f"{m['device']}/{m['measurement']}" for m in document["measurements"]]


async def commission(system: EmbeddedSystem) -> None:
    """What an installer does once: Connect (kept across restarts), publish the topology."""
    async with Gateway(system.settings) as gateway:
        await gateway.connect()
        assert gateway.status().cloud.connection.name == "CONNECTED", gateway.status().cloud
        await gateway.publish_topology()


def outbox_instants(path: Path, names: Mapping[str, Sequence[str]]) -> Counter[Instant]:
    """Every sample the outbox file holds (chunks and the sealed batch), counted.

    ``names`` maps a configuration version to its measurements in index
    order. Reading while a gateway writes is safe (WAL: a reader sees the
    last commit).
    """
    db = sqlite3.connect(path, timeout=10)
    try:
        bodies = [r[0] for r in db.execute("SELECT body FROM chunk")]
        bodies += [r[0] for r in db.execute("SELECT body FROM sealed")]
    finally:
        db.close()
    held: Counter[Instant] = Counter()
    for body in bodies:
        # Decoded independently of the gateway's own (Rust) decoder; chunks
        # carry the provisional seq 0, which that decoder rightly refuses.
        batch = msgpack.unpackb(zstandard.ZstdDecompressor().decompressobj().decompress(body))
        measured = names[batch["config_version"]]
        for group in batch["groups"]:
            for m, values in zip(group["m"], group["v"], strict=True):
                for j in range(len(values)):
                    held[(measured[m], group["t0"] + j * group["dt"])] += 1
    return held


def by_measurement(instants: Iterable[Instant]) -> dict[str, list[int]]:
    """``name -> sorted instants``."""
    out: dict[str, list[int]] = {}
    for name, t in instants:
        out.setdefault(name, []).append(t)
    return {name: sorted(ts) for name, ts in out.items()}


def holes(times: Sequence[int], step_ms: int) -> list[tuple[int, int]]:
    """The gaps of a sorted series of instants: ``(last before, first after)``."""
    return [(a, b) for a, b in itertools.pairwise(times) if b - a != step_ms]


def wait_until(
    condition: Callable[[], bool], timeout_s: float, what: str, *, every_s: float = 0.1
) -> None:
    """Poll ``condition`` until it holds; fail saying ``what`` did not happen."""
    waiting.wait_until(condition, what, within_s=timeout_s, every_s=every_s)


async def eventually(
    condition: Callable[[], bool | Awaitable[bool]],
    timeout_s: float,
    what: str,
    *,
    every_s: float = 0.1,
) -> None:
    """:func:`wait_until` for async tests (the gateway runs on the same loop)."""
    await waiting.eventually(condition, what, within_s=timeout_s, every_s=every_s)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def data_conflicts() -> Iterator[list[str]]:
    """Every ``409`` the reference cloud (in this process) answers on the data
    route while the block runs: it logs each one (seq taken by other content,
    or beyond the expected one)."""
    logger = logging.getLogger("panelfast.refcloud.app")
    handler, level = _Records(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


class GatewayProcess:
    """``panelfast run --config F`` as a child process, killed or stopped at will.

    Its log (all runs, appended) is kept in ``log_path`` for a failing test
    to show.
    """

    def __init__(self, config_path: Path, log_path: Path, args: Sequence[str] = ()) -> None:
        self.config_path = config_path
        self.log_path = log_path
        self.args = tuple(args)  # more options of `panelfast run`
        self._process: subprocess.Popen[bytes] | None = None
        self._log: TextIO | None = None

    def start(self) -> None:
        assert self._process is None, "already running"
        self._log = self.log_path.open("a", encoding="utf-8")
        self._log.write(f"---- start at {time.time():.3f}\n")
        self._log.flush()
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "panelfast",
                "run",
                "--config",
                str(self.config_path),
                *self.args,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def send(self, sig: signal.Signals) -> None:
        """Send a signal (SIGHUP: reload the configuration file) to the running gateway."""
        process = self._process
        assert process is not None, "not running"
        assert process.poll() is None, self.tail()
        process.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind, as a power cut would leave it."""
        self._end(signal.SIGKILL, expect=-signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM: the clean stop of ``panelfast run``."""
        self._end(signal.SIGTERM, expect=0)

    def kill_now(self) -> None:
        """SIGKILL from any thread, at once; :meth:`killed` then waits for the end."""
        process = self._process
        assert process is not None, "not running"
        process.kill()

    def killed(self) -> None:
        """Wait for the end of a gateway :meth:`kill_now` killed."""
        self._end(None, expect=-signal.SIGKILL)

    def _end(self, sig: signal.Signals | None, *, expect: int) -> None:
        process = self._process
        assert process is not None, "not running"
        if sig is not None:
            if process.poll() is not None:
                raise AssertionError(
                    f"the gateway exited by itself ({process.returncode}):\n{self.tail()}"
                )
            process.send_signal(sig)
        code = process.wait(timeout=PATIENCE_S)
        self._process = None
        assert self._log is not None
        how = sig.name if sig is not None else "SIGKILL"
        self._log.write(f"---- ended at {time.time():.3f} by {how} ({code})\n")
        self._log.close()
        if code != expect:
            raise AssertionError(f"the gateway ended with {code}, not {expect}:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def close(self) -> None:
        """Whatever happened, leave no process behind."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=PATIENCE_S)
        self._process = None
        if self._log is not None and not self._log.closed:
            self._log.close()


def backlog_cli(config_path: Path) -> str:
    """``panelfast backlog --config F``, as a user runs it next to the daemon."""
    result = subprocess.run(
        [sys.executable, "-m", "panelfast", "backlog", "--config", str(config_path)],
        capture_output=True,
        text=True,
        timeout=PATIENCE_S,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout
