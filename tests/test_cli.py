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


def test_demo_runs_the_whole_system() -> None:
    result = run("demo", "--seconds", "12")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Connect: Connected — Device activated" in out
    assert "Topology published: 3 devices" in out
    held = [int(line.split("holds ")[1].split()[0]) for line in out.splitlines() if "holds" in line]
    assert held, out
    assert held[-1] > 0, "samples reached the reference cloud"
    assert "mb-1/ActiveEnergyDelivered" in out


def test_the_command_does_not_load_the_reference_cloud() -> None:
    # `panelfast run` is the daemon on a gateway with little memory: the
    # reference cloud's web stack is loaded only by the commands that use it.
    probe = (
        "import sys, panelfast.cli; "
        "print(sorted(m for m in ('fastapi', 'uvicorn', 'cryptography', 'jinja2',"
        " 'panelfast.refcloud') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"
