"""The parts of the commands package on their own: schedule instants across DST, the
store's ordering and bounds, the diagnostics bundle's scrubbing."""

from __future__ import annotations

import io
import itertools
import json
import tarfile
import zoneinfo
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from panelfast.commands import (
    BundleParts,
    CommandStore,
    build_bundle,
    occurrences,
    parse_command,
    settings_secrets,
)
from panelfast.commands._calendar import entry_instant, latest_before
from panelfast.commands._model import Schedule
from panelfast.config import parse_settings, write_secret

ZONES = ["Europe/Paris", "America/New_York", "Australia/Lord_Howe", "Pacific/Apia", "UTC"]


def schedule(zone: str, *entries: tuple[list[str], str, str]) -> Schedule:
    command = parse_command(
        {
            "id": "c-1",
            "type": "schedule",
            "schedule": {
                "id": "s1",
                "output": "io-1/Q1",
                "timezone": zone,
                "entries": [{"days": d, "at": at, "action": a} for d, at, a in entries],
            },
        }
    )
    return command.schedule  # type: ignore[union-attr]


def at_utc(text: str) -> float:
    return datetime.fromisoformat(text + "+00:00").timestamp()


def local(t: float, zone: str) -> str:
    return datetime.fromtimestamp(t, zoneinfo.ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M %Z")


def test_spring_forward_runs_once_at_the_first_valid_minute() -> None:
    s = schedule("Europe/Paris", (["sun"], "02:30", "on"), (["sun"], "02:00", "off"))
    found = occurrences([s], at_utc("2026-03-28T12:00:00"), at_utc("2026-03-30T12:00:00"))
    assert [(local(o.at, "Europe/Paris"), o.action) for o in found] == [
        ("2026-03-29 03:00 CEST", "off"),  # 02:00 does not exist either: 03:00
        ("2026-03-29 03:00 CEST", "on"),
    ]
    # New York: 02:30 on 8 March 2026 does not exist; 03:00 EDT.
    ny = schedule("America/New_York", (["sun"], "02:30", "on"))
    found = occurrences([ny], at_utc("2026-03-07T00:00:00"), at_utc("2026-03-10T00:00:00"))
    assert [local(o.at, "America/New_York") for o in found] == ["2026-03-08 03:00 EDT"]


def test_fall_back_runs_once_in_the_repeated_hour() -> None:
    s = schedule("Europe/Paris", (["sun"], "02:30", "on"))
    found = occurrences([s], at_utc("2026-10-24T12:00:00"), at_utc("2026-10-26T12:00:00"))
    assert [(datetime.fromtimestamp(o.at, UTC).isoformat()) for o in found] == [
        "2026-10-25T00:30:00+00:00"  # 02:30 CEST, not again at 02:30 CET
    ]


def test_a_day_a_zone_skipped_whole_still_runs_its_entries_once() -> None:
    # Samoa went from 29 to 31 December 2011: Friday the 30th never happened there.
    s = schedule("Pacific/Apia", (["fri"], "08:00", "on"))
    found = occurrences([s], at_utc("2011-12-28T00:00:00"), at_utc("2012-01-02T00:00:00"))
    assert [local(o.at, "Pacific/Apia") for o in found] == ["2011-12-31 00:00 +14"]


@settings(max_examples=60, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    day=st.dates(min_value=date(2020, 1, 1), max_value=date(2035, 12, 31)),
    hour=st.integers(0, 23),
    minute=st.integers(0, 59),
)
def test_each_day_and_entry_falls_exactly_once(
    zone: str, day: date, hour: int, minute: int
) -> None:
    s = schedule(
        zone, (["mon", "tue", "wed", "thu", "fri", "sat", "sun"], f"{hour:02}:{minute:02}", "on")
    )
    start = datetime.combine(day, datetime.min.time(), UTC).timestamp()
    found = occurrences([s], start, start + 10 * 86400)
    instants = [o.at for o in found]
    assert len(instants) == len(set(instants)), "an entry ran twice"
    # Entries a day apart: never less than 22 h, never more than 26 h (DST moves an hour,
    # Lord Howe half an hour), except across a day a zone skipped whole.
    for a, b in itertools.pairwise(instants):
        assert 22 * 3600 <= b - a <= 50 * 3600
    # Where the wall time exists, that is when it runs.
    z = zoneinfo.ZoneInfo(zone)
    wall = datetime.combine(day, datetime.min.time()).replace(hour=hour, minute=minute)
    t = entry_instant(day, hour, minute, z)
    back = datetime.fromtimestamp(t, z).replace(tzinfo=None)
    assert back >= wall
    assert back - wall < timedelta(hours=25)


def test_the_current_state_is_the_last_entry_before_now() -> None:
    s = schedule("Europe/Paris", (["mon", "tue"], "07:30", "on"), (["mon"], "19:00", "off"))
    monday_noon = at_utc("2026-12-07T11:00:00")
    last = latest_before(s, monday_noon)
    assert last is not None
    assert (local(last.at, "Europe/Paris"), last.action) == ("2026-12-07 07:30 CET", "on")
    thursday = at_utc("2026-12-10T11:00:00")
    last = latest_before(s, thursday)
    assert last is not None
    assert (local(last.at, "Europe/Paris"), last.action) == ("2026-12-08 07:30 CET", "on")


def test_results_are_posted_in_the_order_they_were_reached(tmp_path: Path) -> None:
    store = CommandStore(tmp_path / "commands.sqlite")
    try:
        for k in range(3):
            assert store.begin(f"c-{k}", "output", {"id": f"c-{k}"}, 1000 + k) is None
        # Finished in another order than received: posted in the order finished.
        for k in (2, 0, 1):
            store.finish(f"c-{k}", "done", None, 2000 + k, {"source": "cloud", "kind": "output"})
        assert [r.command_id for r in store.pending_results()] == ["c-2", "c-0", "c-1"]
        store.posted("c-2")
        assert [r.command_id for r in store.pending_results()] == ["c-0", "c-1"]
        # A redelivered command is never begun again; a posted one is posted again.
        known = store.begin("c-2", "output", {"id": "c-2"}, 3000)
        assert known is not None
        assert (known.state, known.status, known.posted) == ("finished", "done", True)
        store.repost("c-2")
        assert [r.command_id for r in store.pending_results()] == ["c-2", "c-0", "c-1"]
        # One left executing by a crash is found at the next start.
        assert store.begin("c-9", "upload_logs", {"id": "c-9"}, 4000) is None
    finally:
        store.close()
    reopened = CommandStore(tmp_path / "commands.sqlite")
    try:
        assert reopened.interrupted() == [("c-9", "upload_logs", {"id": "c-9"})]
    finally:
        reopened.close()


def test_output_states_are_queued_on_change_only_and_the_audit_is_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("panelfast.commands._store.KEEP_AUDIT", 40)
    store = CommandStore(tmp_path / "commands.sqlite")
    try:
        assert store.record_state("io-1/Q1", False, 1, "local")  # first seen
        assert not store.record_state("io-1/Q1", False, 2, "local")
        assert store.record_state("io-1/Q1", True, 3, "cloud")
        assert store.record_state("io-1/Q1", False, 4, "local")
        pending = store.pending_states(10)
        assert [(p.state, p.ts_ms, p.source) for p in pending] == [
            ("off", 1, "local"),
            ("on", 3, "cloud"),
            ("off", 4, "local"),
        ]
        store.reported(pending[1].seq)
        assert [p.ts_ms for p in store.pending_states(10)] == [4]
        for k in range(45):
            store.audit(k, source="cloud", kind="output", status="done")
        history = store.history(100)
        assert len(history) == 40  # the newest
        assert [h.ts_ms for h in history] == list(range(44, 4, -1))
    finally:
        store.close()


def test_the_bundle_carries_no_secret_of_the_configuration(tmp_path: Path) -> None:
    key = "0123456789abcdef" * 4
    write_secret(tmp_path / "claim.key", key)
    write_secret(tmp_path / "smtp.password", "sm7p-Pa55word")
    settings = parse_settings(
        {
            "identity": {
                "serial": "PS-0042-7A19",
                "mac": "aa:bb:cc:00:42:19",
                "claim_key_file": str(tmp_path / "claim.key"),
            },
            "cloud": {
                "bootstrap_url": "https://cloud.example.net/",
                "proxy": "http://gw-user:pr0xy-Pa55word@proxy.example.net:3128",
            },
            "email": {
                "host": "smtp.example.net",
                "username": "gateway",
                "password_file": str(tmp_path / "smtp.password"),
                "from_address": "gateway@example.net",
                "recipients": ["ops@example.net"],
            },
        }
    )
    secrets = settings_secrets(settings)
    assert {"pr0xy-Pa55word", "sm7p-Pa55word", key} <= set(secrets)
    lines = [
        f"connecting through http://gw-user:pr0xy-Pa55word@proxy with key {key.upper()}",
        "SMTP AUTH gateway sm7p-Pa55word",
    ]
    data = build_bundle(
        BundleParts(settings=settings, log_lines=lines, secrets=[*secrets, "tok-en-value"]),
        created_at=1_795_000_000.0,
    )
    raw = zstandard.ZstdDecompressor().decompressobj().decompress(data)
    for secret in ("pr0xy-Pa55word", "sm7p-Pa55word", key, key.upper()):
        assert secret.encode() not in raw
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        config = json.load(tar.extractfile("panelfast-diagnostics/config.json"))  # type: ignore[arg-type]
        log_text = tar.extractfile("panelfast-diagnostics/logs/recent.log").read().decode()  # type: ignore[union-attr]
        manifest = json.load(tar.extractfile("panelfast-diagnostics/manifest.json"))  # type: ignore[arg-type]
    assert config["cloud"]["proxy"] == "http://gw-user:<removed>@proxy.example.net:3128/"
    assert config["identity"]["claim_key_file"].endswith("claim.key")
    assert config["email"]["password_file"].endswith("smtp.password")
    assert "<removed>" in log_text
    assert manifest["serial"] == "PS-0042-7A19"
    assert "config.json" in manifest["files"]


def test_a_log_file_is_carried_by_its_tail(tmp_path: Path) -> None:
    log_file = tmp_path / "gateway.log"
    log_file.write_text("old line\n" * 10 + "the last line\n", encoding="utf-8")
    write_secret(tmp_path / "claim.key", "ab" * 32)
    settings = parse_settings(
        {
            "identity": {
                "serial": "PS-0042-7A19",
                "mac": "aa:bb:cc:00:42:19",
                "claim_key_file": str(tmp_path / "claim.key"),
            },
            "cloud": {"bootstrap_url": "https://cloud.example.net/"},
        }
    )
    data = build_bundle(
        BundleParts(settings=settings, log_files=[log_file, tmp_path / "missing.log"]), 0.0
    )
    raw = zstandard.ZstdDecompressor().decompressobj().decompress(data)
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        names = tar.getnames()
        text = tar.extractfile("panelfast-diagnostics/logs/gateway.log").read()  # type: ignore[union-attr]
        missing = tar.extractfile("panelfast-diagnostics/logs/missing.log").read()  # type: ignore[union-attr]
    assert "panelfast-diagnostics/logs/gateway.log" in names
    assert text.endswith(b"the last line\n")
    assert b"cannot read" in missing


@pytest.mark.parametrize("zone", ZONES)
def test_next_week_has_seven_daily_entries(zone: str) -> None:
    s = schedule(zone, (["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "12:00", "off"))
    now = at_utc("2026-06-01T00:00:00")
    assert len(occurrences([s], now, now + 7 * 86400)) == 7
