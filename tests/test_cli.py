"""The ``panelfast`` command, run as users run it."""

from __future__ import annotations

import subprocess
import sys

from panelfast import __version__


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "panelfast", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"panelfast, version {__version__}"


def test_demo_samples_and_batches() -> None:
    result = run("demo", "--devices", "2", "--seconds", "2")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert sum(line.startswith("  t=") for line in lines) == 4
    assert "batch seq=1: 16 samples" in lines[-1]
