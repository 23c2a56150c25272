"""``panelfast outputs``, run as a user runs it (a subprocess) on the gateway's state files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from commands_support import in_terminal
from panelfast.clock import Clock
from panelfast.commands import (
    RISK,
    STORE_FILE,
    CommandStore,
    enable_remote_control,
    remote_control_status,
)
from panelfast.config import write_secret
from panelfast.exceptions import RemoteControlNotConfirmed

ROOT = Path(__file__).parent.parent


@pytest.fixture(name="config")
def config_fixture(tmp_path: Path) -> Path:
    write_secret(tmp_path / "claim.key", "ab" * 32)
    path = tmp_path / "panelfast.toml"
    path.write_text(
        f"""
[identity]
serial = "PS-0042-7A19"
mac = "aa:bb:cc:00:42:19"
claim_key_file = "claim.key"

[cloud]
bootstrap_url = "https://127.0.0.1:9/"

[time]
mode = "manual"

[storage]
dir = "{tmp_path / "state"}"
""",
        encoding="utf-8",
    )
    return path


ENV = {**os.environ, "PYTHONPATH": str(ROOT / "python")}


def panelfast(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "panelfast", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=ENV,
        check=False,
    )


def status_of(config: Path) -> bool:
    store = CommandStore(config.parent / "state" / STORE_FILE)
    try:
        return remote_control_status(store).enabled
    finally:
        store.close()


def test_enable_asks_for_the_confirmation_naming_the_risk(config: Path) -> None:
    shown = panelfast("outputs", "remote-control", "status", "--config", str(config))
    assert shown.returncode == 0, shown.stderr
    assert "Outputs remote control: disabled" in shown.stdout
    assert "Control scheduling: inactive" in shown.stdout

    enable = ("outputs", "remote-control", "enable", "--config", str(config))
    refused = in_terminal(*enable, answer="n\n", env=ENV)
    assert refused.returncode == 1
    assert RISK in refused.stdout
    assert "stays disabled" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert status_of(config) is False
    # Nobody to ask (a script, no terminal) and no flag: refused, the risk named, not asked.
    for stdin in ("", "y\n"):
        silent = panelfast(*enable, stdin=stdin)
        assert silent.returncode == 1
        assert RISK in silent.stderr
        assert "--yes-i-understand" in silent.stderr
        assert "Enable outputs remote control" not in silent.stdout
        assert status_of(config) is False

    accepted = in_terminal(*enable, answer="y\n", env=ENV)
    assert accepted.returncode == 0, accepted.stderr
    assert "Outputs remote control: enabled" in accepted.stdout
    assert "gateway not running" in accepted.stderr  # said plainly, as every command does
    assert status_of(config) is True

    disabled = panelfast("outputs", "remote-control", "disable", "--config", str(config))
    assert disabled.returncode == 0, disabled.stderr
    assert "Outputs remote control: disabled" in disabled.stdout
    assert status_of(config) is False

    scripted = panelfast(
        "outputs", "remote-control", "enable", "--yes-i-understand", "--config", str(config)
    )
    assert scripted.returncode == 0, scripted.stderr
    assert status_of(config) is True
    # Kept across "restarts": a new process reads it back.
    shown = panelfast("outputs", "remote-control", "status", "--config", str(config))
    assert "Outputs remote control: enabled" in shown.stdout


def test_history_shows_every_change_newest_first(config: Path) -> None:
    for args in (
        ("enable", "--yes-i-understand"),
        ("disable",),
    ):
        assert (
            panelfast("outputs", "remote-control", *args, "--config", str(config)).returncode == 0
        )
    text = panelfast("outputs", "history", "--config", str(config))
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert len(lines) == 2
    assert "local" in lines[0]
    assert "remote_control: disabled" in lines[0]
    assert "remote_control: enabled" in lines[1]
    as_json = panelfast("outputs", "history", "--json", "--limit", "1", "--config", str(config))
    entries = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [(e["kind"], e["status"], e["source"]) for e in entries] == [
        ("remote_control", "disabled", "local")
    ]


def test_history_of_a_new_gateway_and_a_bad_config(config: Path, tmp_path: Path) -> None:
    empty = panelfast("outputs", "history", "--config", str(config))
    assert empty.returncode == 0, empty.stderr
    assert "no command or output change recorded yet" in empty.stdout
    missing = panelfast("outputs", "history", "--config", str(tmp_path / "nope.toml"))
    assert missing.returncode == 2, "a configuration the command cannot use"
    assert "no such file" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_the_configuration_file_cannot_enable_remote_control(config: Path) -> None:
    text = config.read_text(encoding="utf-8")
    config.write_text(text + "\n[gateway]\noutputs_remote_control = true\n", encoding="utf-8")
    shown = panelfast("outputs", "remote-control", "status", "--config", str(config))
    assert shown.returncode == 2
    assert "gateway.outputs_remote_control" in shown.stderr
    assert "panelfast outputs remote-control enable" in shown.stderr
    assert "Traceback" not in shown.stderr


def test_enabling_without_confirmation_is_refused_by_the_function(tmp_path: Path) -> None:
    store = CommandStore(tmp_path / STORE_FILE)
    try:
        with pytest.raises(RemoteControlNotConfirmed) as refused:
            enable_remote_control(store, Clock(), confirmed=False)
        assert RISK in str(refused.value)
        assert remote_control_status(store).enabled is False
        assert store.history() == []
        status = enable_remote_control(store, Clock(), confirmed=True)
        assert status.enabled
        assert store.setting("remote_control") == {
            "enabled": True,
            "changed_at_ms": status.changed_at_ms,
            "confirmed": RISK,
            "who": None,
        }
    finally:
        store.close()
