"""The daemon's log: JSON lines with each event's fields, secrets never, rotation by size.

The whole-run test drives a real ``panelfast run`` through a real tinyproxy
with a password, against the reference cloud and the simulator, at debug
level, through the events a site sees (connect, a configuration applied, a
token renewed, a device offline and back, a clean stop), then reads the log
file as an operator's tooling would.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud_support import tinyproxy
from panelfast.embedded import embedded_system
from panelfast.logs import MASK, JsonFormatter, configure_logging
from panelfast.simulator import Faults
from reliability_support import GatewayProcess, commission, config_document, wait_until

PROXY_PASSWORD = "pr0xy-Pa55word"


def set_keys(config: Path, section: str, keys: dict[str, str]) -> None:
    """Add string keys to an existing ``[section]`` of a TOML file."""
    text = config.read_text(encoding="utf-8")
    added = "".join(f'{k} = "{v}"\n' for k, v in keys.items())
    text, n = re.subn(rf"^\[{section}\]\n", lambda m: m.group(0) + added, text, flags=re.M)
    assert n == 1
    config.write_text(text, encoding="utf-8")


def events(log_file: Path) -> list[dict[str, object]]:
    """Every record of the log (and its rotated files, oldest first), each line JSON."""
    files = [*sorted(log_file.parent.glob(log_file.name + ".*"), reverse=True), log_file]
    records = []
    for file in files:
        for line in file.read_text(encoding="utf-8").splitlines():
            records.append(json.loads(line))  # every line is one JSON object
    return records


def test_a_whole_run_logs_each_event_once_with_its_fields_and_no_secret(tmp_path: Path) -> None:
    log_file = tmp_path / "log" / "panelfast.log"
    with (
        embedded_system(tmp_path / "site") as system,
        tinyproxy(tmp_path / "proxy", auth=("gateway", PROXY_PASSWORD)) as (proxy_port, _),
    ):
        asyncio.run(commission(system))
        cloud, serial = system.cloud, system.serial
        version = cloud.set_config(serial, config_document(publisher_period_s=1))["version"]
        set_keys(
            system.config_path,
            "cloud",
            {"proxy": f"http://gateway:{PROXY_PASSWORD}@127.0.0.1:{proxy_port}"},
        )
        state_file = system.settings.storage.dir / "cloud-state.json"
        first_token = json.loads(state_file.read_text())["token"]
        # Debug level: as much as the daemon ever logs.
        options = ["--log-level", "debug", "--log-format", "json", "--log-file", str(log_file)]
        process = GatewayProcess(system.config_path, tmp_path / "stdout.log", options)
        try:
            process.start()
            wait_until(lambda: cloud.last_seq(serial) >= 2, 60, "data published through the proxy")
            cloud.expire_tokens(serial)  # the next hub call gets 401: a new token
            wait_until(
                lambda: json.loads(state_file.read_text())["token"] != first_token,
                60,
                "a new token after the old one expired",
            )
            system.simulator.set_faults("mb-2", Faults(offline=True))
            wait_until(
                lambda: any(r.get("event") == "device.offline" for r in events(log_file)),
                60,
                "device offline logged",
            )
            system.simulator.set_faults("mb-2", Faults())
            wait_until(
                lambda: any(r.get("event") == "device.back" for r in events(log_file)),
                60,
                "device back logged",
            )
            process.stop()
        finally:
            process.close()
        second_token = json.loads(state_file.read_text())["token"]
        claim_key = (tmp_path / "site" / "claim.key").read_text().strip()

    records = events(log_file)
    by_event: dict[str, list[dict[str, object]]] = {}
    for record in records:
        assert {"ts", "level", "logger", "message"} <= record.keys(), record
        if "event" in record:
            by_event.setdefault(str(record["event"]), []).append(record)
    for once in ("gateway.started", "config.applied", "config.live", "gateway.stopped"):
        assert len(by_event.get(once, [])) == 1, (once, by_event.get(once))
    started = by_event["gateway.started"][0]
    assert started["serial"] == serial
    assert started["devices"] == 3
    applied = by_event["config.applied"][0]
    assert applied["config_version"] == version
    assert applied["measurements"] == 4
    assert applied["publisher_period_s"] == 1
    assert by_event["config.live"][0]["from_ms"] % 1000 == 0  # type: ignore[operator]
    assert by_event["cloud.bootstrapped"], "the renewal after the token expired"
    offline = by_event["device.offline"]
    assert [r["device"] for r in offline] == ["mb-2"]
    assert offline[0]["previous_state"] in ("ok", "degraded")
    assert offline[0]["error"]
    assert [r["device"] for r in by_event["device.back"]] == ["mb-2"]
    assert {r["device"] for r in by_event["device.answering"]} == {"mb-1", "mb-2", "io-1"}

    text = "".join(f.read_text() for f in log_file.parent.iterdir())
    text += (tmp_path / "stdout.log").read_text()
    assert "debug" in {r["level"] for r in records}, "run at debug level"
    for name, secret in (
        ("claim key", claim_key),
        ("first token", first_token),
        ("renewed token", second_token),
        ("proxy password", PROXY_PASSWORD),
    ):
        assert secret not in text, f"the {name} is in the log"
        assert secret.lower() not in text.lower(), f"the {name} is in the log"


@pytest.fixture
def root_logging() -> Iterator[None]:
    """configure_logging changes the root logger: put it back after the test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_a_log_file_rotates_by_size_keeping_the_backups_asked(
    tmp_path: Path, root_logging: None
) -> None:
    log_file = tmp_path / "logs" / "panelfast.log"
    configure_logging(log_format="json", file=log_file, max_bytes=4000, backups=2)
    log = logging.getLogger("panelfast.test")
    for k in range(300):
        log.info("record %d", k, extra={"event": "test.record", "k": k})
    files = sorted(p.name for p in log_file.parent.iterdir())
    assert files == ["panelfast.log", "panelfast.log.1", "panelfast.log.2"]
    for file in log_file.parent.iterdir():
        assert file.stat().st_size <= 4000
    last = [json.loads(line) for line in log_file.read_text().splitlines()][-1]
    assert last["k"] == 299
    assert last["event"] == "test.record"


def test_text_lines_by_default_and_watched_secrets_masked(
    tmp_path: Path, root_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    redactor = configure_logging()
    secret = "f" * 64
    redactor.watch(lambda: (secret, None))
    log = logging.getLogger("panelfast.test")
    log.warning("refused with key %s", secret, extra={"event": "test.secret"})
    err = capsys.readouterr().err
    assert re.search(r"^\S+ \S+ WARNING panelfast\.test: refused with key \*+$", err, re.M), err
    assert secret not in err
    assert MASK in err


def test_json_records_carry_extra_fields_exceptions_and_any_value() -> None:
    formatter = JsonFormatter()
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, __file__, 1, "failed %s", ("here",), sys.exc_info(),
            extra={"event": "x.failed", "path": Path("/a"), "when": time.gmtime(0)[:3]},
        )  # fmt: skip
    entry = json.loads(formatter.format(record))
    assert entry["message"] == "failed here"
    assert entry["level"] == "error"
    assert entry["event"] == "x.failed"
    assert entry["path"] == "/a"
    assert entry["when"] == [1970, 1, 1]
    assert "ValueError: boom" in entry["exception"]
    assert entry["ts"].endswith("+00:00")


def test_a_log_file_that_cannot_be_written_is_refused_clearly(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with embedded_system(tmp_path / "site") as system:
        result = subprocess.run(
            [
                sys.executable, "-m", "panelfast", "run", "--config", str(system.config_path),
                "--log-file", str(blocker / "panelfast.log"),
            ],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert result.returncode == 1
    assert f"cannot log to {blocker / 'panelfast.log'}" in result.stderr
    assert "Traceback" not in result.stderr
