"""The ``panelfast`` command, run as a user runs it: a separate process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from waiting import PATIENCE_S


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
