"""The ``panelfast`` command, run as users run it."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cli_support import Running, panelfast
from panelfast import __version__
from waiting import PATIENCE_S


def test_version() -> None:
    result = panelfast("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"panelfast, version {__version__}"


def held(output: str) -> list[int]:
    """The samples the cloud holds, in each summary the demo printed."""
    return [int(n) for n in re.findall(r"the cloud holds (\d+) samples?", output)]


def folder_of(output: str) -> Path:
    """The demo's folder: where it says its gateway configuration is."""
    return Path(output.split("Gateway configuration: ")[1].split()[0]).parent


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_demo_runs_the_whole_system_until_stopped(sig: signal.Signals) -> None:
    with Running("demo", "--seconds", "0") as demo:
        demo.wait_for(lambda out: any(n > 0 for n in held(out)), "samples at the cloud")
        code = demo.stop(sig)
    out = demo.stdout
    assert code == 0, demo.stderr
    assert "Connect: Connected — Device activated" in out
    assert "Topology published: 3 devices" in out
    assert "mb-1/ActiveEnergyDelivered" in out
    # Stopped either way alike: said so, a last summary, Disconnect, nothing left behind.
    before, after = out.split("\nstopped\n")
    assert held(after), after
    assert held(after)[-1] >= max(held(before))
    assert "Disconnect: cloud traffic stopped" in after
    assert "temporary folder" in after
    assert "kept in the outbox" not in out  # not of an outbox about to be removed
    assert not folder_of(out).exists()
    assert "Traceback" not in demo.stderr


def test_demo_for_some_seconds_ends_with_a_summary(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "panelfast", "demo", "--seconds", "3", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=PATIENCE_S,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    end = result.stdout.split("publication every 5 s")[1]
    assert held(end), "a summary at the end, whatever the time"
    assert re.search(r"holds \d+ samples? of \d+ measurements? and \d+ alarm events?\b", end)
    assert "1 alarm events" not in result.stdout
    outbox = tmp_path / "gateway" / "outbox.sqlite"
    assert f"kept in the outbox, {outbox}" in end
    assert outbox.exists()


def test_the_command_does_not_load_the_reference_cloud() -> None:
    # `panelfast run` is the daemon on a gateway with little memory: the
    # reference cloud's web stack is loaded only by the commands that use it.
    probe = (
        "import sys, panelfast.cli; "
        "print(sorted(m for m in ('fastapi', 'uvicorn', 'cryptography', 'jinja2',"
        " 'panelfast.refcloud') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=PATIENCE_S,
        check=True,
    )
    assert result.stdout.strip() == "[]"
