"""The ``panelfast`` command, run as a user runs it: a separate process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO

from waiting import PATIENCE_S, wait_until


def panelfast(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``panelfast ARGS...``, its output captured; it must end within the patience of a test."""
    return subprocess.run(
        [sys.executable, "-m", "panelfast", *args],
        capture_output=True,
        text=True,
        timeout=PATIENCE_S,
        check=False,
        cwd=cwd,
    )


class Running:
    """``panelfast ARGS...`` running until stopped, its output read as it comes.

    ``with Running("demo") as demo:`` ... ``demo.stop(signal.SIGTERM)``; leaving
    the block kills it if it still runs.
    """

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "panelfast", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self._out: list[str] = []
        self._err: list[str] = []
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        self._readers = [
            threading.Thread(target=_read, args=(self.process.stdout, self._out)),
            threading.Thread(target=_read, args=(self.process.stderr, self._err)),
        ]
        for reader in self._readers:
            reader.start()

    @property
    def stdout(self) -> str:
        return "".join(self._out)

    @property
    def stderr(self) -> str:
        return "".join(self._err)

    def wait_for(self, condition: Callable[[str], bool], what: str) -> None:
        """Wait until its output so far satisfies ``condition``."""

        def seen() -> bool:
            if condition(self.stdout):
                return True
            if self.process.poll() is not None:
                raise AssertionError(
                    f"it ended ({self.process.returncode}) before {what}:\n"
                    f"{self.stdout}\n{self.stderr}"
                )
            return False

        wait_until(seen, what)

    def stop(self, sig: signal.Signals) -> int:
        """Send ``sig`` and wait for the end (all its output read); returns its exit status."""
        self.process.send_signal(sig)
        return self.wait()

    def wait(self) -> int:
        code = self.process.wait(timeout=PATIENCE_S)
        for reader in self._readers:
            reader.join()
        return code

    def __enter__(self) -> Running:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.wait()
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        self.process.stdout.close()
        self.process.stderr.close()


def _read(stream: IO[str], into: list[str]) -> None:
    for line in stream:
        into.append(line)
