"""Remote configuration (§6) end to end: the real Gateway, the reference cloud over HTTPS.

Applied; changed (the switch happens at one sampling instant, checked in the
batches the cloud received); rejected whole when a limit is exceeded by one
(with the paths in the report the cloud receives), accepted exactly at the
limits; progress by section while applying; kept across a restart without the
cloud; and read-only: local changes to what the cloud manages are refused by
the API and the CLI.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from gateway_support import (
    closed_port,
    synthetic_models,
    unreachable_device,
    wait_for,
    with_devices,
)
from panelfast.cli import main
from panelfast.embedded import EmbeddedSystem, embedded_system
from panelfast.exceptions import ConfigError, PublicationConflict, RemoteConfigReadOnly
from panelfast.gateway import Gateway
from panelfast.remote_config import ApplyProgress

V1_MEASUREMENTS = [("mb-1", "VoltageAN"), ("mb-1", "CurrentA"), ("mb-1", "ActivePower")]
# mb-1/ActivePower stays, the rest of v1 is dropped, mb-2/ActivePower is new.
V2_MEASUREMENTS = [("mb-1", "ActivePower"), ("mb-2", "ActivePower"), ("mb-2", "VoltageL1N")]


def _document(
    measurements: list[tuple[str, str]] | list[tuple[str, str, int]],
    *,
    period_s: int = 1,
    alarms: list[dict[str, Any]] | None = None,
    publisher_period_s: int = 1,
) -> dict[str, Any]:
    return {
        "version": "set by the cloud",
        "measurements": [
            {"device": m[0], "measurement": m[1], "period_s": m[2] if len(m) == 3 else period_s}
            for m in measurements
        ],
        "alarms": alarms or [],
        "publisher": {"period_s": publisher_period_s},
    }


@pytest.fixture
def system(tmp_path: Path) -> Iterator[EmbeddedSystem]:
    with embedded_system(tmp_path / "system") as system:
        yield system


def _series_by_version(system: EmbeddedSystem) -> dict[str, dict[str, list[int]]]:
    """Version → ``"<device>/<measurement>"`` → the sample instants received under it."""
    storage = system.cloud.state.storage
    out: dict[str, dict[str, list[int]]] = {}
    for s in storage.series(system.cloud.device_id(system.serial)):
        times = out.setdefault(str(s.config_version), {}).setdefault(
            f"{s.device}/{s.measurement}", []
        )
        times.extend(s.t0 + j * s.dt for j in range(len(s.values)))
    return out


async def test_applied_then_changed_switches_at_one_instant(system: EmbeddedSystem) -> None:
    async with Gateway(system.settings) as gateway:
        await gateway.connect()
        await gateway.publish_topology()
        assert gateway.status().remote_config.valid is None  # nothing received yet

        first = system.cloud.set_config(system.serial, _document(V1_MEASUREMENTS))["version"]
        await wait_for(
            lambda: gateway.status().remote_config.applied_version == first, what="v1 applied"
        )
        status = gateway.status().remote_config
        assert status.valid is True
        assert status.measurements == 3
        assert status.publisher_period_s == 1
        await wait_for(
            lambda: (
                len(v1 := _series_by_version(system).get(first, {})) == 3
                and all(len(times) >= 2 for times in v1.values())
            ),
            what="two instants of v1 data",
        )

        second = system.cloud.set_config(system.serial, _document(V2_MEASUREMENTS))["version"]
        await wait_for(
            lambda: gateway.status().remote_config.applied_version == second, what="v2 applied"
        )

        def v2_delivered() -> bool:
            times = _series_by_version(system).get(second, {})
            return len(times) == 3 and all(len(t) >= 3 for t in times.values())

        await wait_for(v2_delivered, what="three seconds of v2 data")

    reports = system.cloud.reports(system.serial)
    assert [(r["version"], r["status"], r["errors"]) for r in reports] == [
        (first, "applied", []),
        (second, "applied", []),
    ]
    received = _series_by_version(system)
    assert set(received) == {first, second}
    # Each version's batches hold exactly that version's measurements.
    assert set(received[first]) == {f"{d}/{m}" for d, m in V1_MEASUREMENTS}
    assert set(received[second]) == {f"{d}/{m}" for d, m in V2_MEASUREMENTS}
    # One instant T: every v1 series ends at the sampling instant before it,
    # every v2 series starts at it, the measurement kept in both has no gap.
    switch = min(min(times) for times in received[second].values())
    assert switch % 1000 == 0
    for name, times in received[first].items():
        assert max(times) == switch - 1000, name
    for name, times in received[second].items():
        assert min(times) == switch, name
    kept = sorted(received[first]["mb-1/ActivePower"] + received[second]["mb-1/ActivePower"])
    assert kept == list(range(kept[0], kept[-1] + 1000, 1000))


def _limits_settings(system: EmbeddedSystem, folder: Path, devices: int) -> Any:
    models, name = synthetic_models(folder / "models", 500)
    port = closed_port()
    return with_devices(
        system.settings,
        [unreachable_device(f"syn-{k}", name, f"Synthetic {k}", port) for k in range(devices)],
        model_dirs=[models],
    )


def _synthetic(count: int) -> list[tuple[str, str]]:
    """The first ``count`` synthetic measurements, device by device."""
    return [(f"syn-{k // 500}", f"P{k % 500:05d}") for k in range(count)]


def _alarms(count: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"a{k}",
            "device": "syn-0",
            "measurement": f"P{k:05d}",
            "condition": "over",
            "threshold": 1e9,
            "hysteresis": 0,
            "delay_s": 0,
        }
        for k in range(count)
    ]


def _mixed_rate(extra: int) -> list[tuple[str, str, int]]:
    """Mixed periods adding up to 500 + ``extra`` samples per minute (extra ∈ {0, 1})."""
    periods = [1] * 2 + [10] * 20 + [60] * 200 + [120] * (120 + 2 * extra)
    # 2·60 + 20·6 + 200·1 + 120·½ = 500; each further 120 s measurement adds ½.
    return [(d, m, p) for (d, m), p in zip(_synthetic(len(periods)), periods, strict=True)]


async def test_rejected_at_each_limit_plus_one_accepted_at_the_limits(
    system: EmbeddedSystem, tmp_path: Path
) -> None:
    # 11 devices × 500 synthetic measurements: a topology that can name 5,001.
    settings = _limits_settings(system, tmp_path, 11)
    progress: list[ApplyProgress] = []
    cloud = system.cloud
    async with Gateway(settings, ring_capacity=64, on_apply_progress=progress.append) as gateway:
        await gateway.connect()
        await gateway.publish_topology()
        valid = cloud.set_config(system.serial, _document(V1_MEASUREMENTS))["version"]
        await wait_for(lambda: gateway.status().remote_config.valid is True, what="v1 applied")
        await wait_for(lambda: cloud.last_seq(system.serial) > 0, what="v1 data delivered")

        cases = [
            ("5,001 measurements", _document(_synthetic(5001), period_s=3600), "measurements"),
            ("501 samples per minute", _document(_mixed_rate(1)), "measurements"),
            ("101 alarms", _document([], alarms=_alarms(101)), "alarms"),
        ]
        for what, document, path in cases:
            version = cloud.set_config(system.serial, document)["version"]
            await wait_for(
                lambda v=version: gateway.status().remote_config.received_version == v,
                what=f"{what} received",
            )
            status = gateway.status().remote_config
            assert status.valid is False, what  # the cloud service icon turns orange
            assert status.applied_version == valid, what  # nothing of it applied
            assert (status.measurements, status.alarms) == (3, 0), what
            assert [p for p, _ in status.errors] == [path], (what, status.errors)
            await wait_for(
                lambda v=version: any(r["version"] == v for r in cloud.reports(system.serial)),
                what=f"{what} report",
            )
            report = next(r for r in cloud.reports(system.serial) if r["version"] == version)
            assert report["status"] == "rejected", what
            assert [e["path"] for e in report["errors"]] == [path], (what, report)
            assert report["errors"][0]["message"], what

        # While invalid: no data goes out, sampling under v1 goes on into the outbox.
        await wait_for(lambda: not gateway.publisher.sending, what="the last publication ended")
        held_seq = cloud.last_seq(system.serial)
        waiting = gateway.backlog().samples_left
        await wait_for(
            lambda: gateway.backlog().samples_left >= waiting + 2 * 3,
            what="two more instants of v1 sampled into the outbox",
        )
        assert cloud.last_seq(system.serial) == held_seq

        # Exactly at every limit: 5,000 measurements at 500 samples per minute
        # (periods 900 s and 150 s), and 100 alarms.
        periods = [900] * 4500 + [150] * 500
        at_limits = [(d, m, p) for (d, m), p in zip(_synthetic(5000), periods, strict=True)]
        progress.clear()
        limit_version = cloud.set_config(system.serial, _document(at_limits, alarms=_alarms(100)))[
            "version"
        ]
        await wait_for(
            lambda: gateway.status().remote_config.applied_version == limit_version,
            what="the configuration at the limits applied",
        )
        status = gateway.status().remote_config
        assert status.valid is True  # green again
        assert (status.measurements, status.alarms) == (5000, 100)
        # Data held back while invalid goes out now.
        await wait_for(lambda: cloud.last_seq(system.serial) > held_seq, what="held data sent")
        # Progress was visible section by section, in order, each reaching its total.
        sections = [p.section for p in progress]
        assert sections == sorted(sections, key=("measurements", "alarms", "publisher").index)
        finals = {p.section: p for p in progress if p.done == p.total}
        assert finals["measurements"].total == 3 + 5000  # 3 dropped, 5,000 added
        assert finals["alarms"].total == 100
        assert finals["publisher"].total == 0  # the period stays 1 s
        assert progress[-1].fraction == 1.0
        assert gateway.status().applying is None  # done

        # A mixed-period rate of exactly 500 is accepted too.
        rate_version = cloud.set_config(system.serial, _document(_mixed_rate(0)))["version"]
        await wait_for(
            lambda: gateway.status().remote_config.applied_version == rate_version,
            what="500 samples per minute applied",
        )
        # Applied first, reported next: the cloud hears of it a moment later.
        await wait_for(
            lambda: any(r["version"] == rate_version for r in cloud.reports(system.serial)),
            what="its report received",
        )

    statuses = [(r["version"], r["status"]) for r in cloud.reports(system.serial)]
    assert statuses == [
        (valid, "applied"),
        *[(str(int(valid) + k), "rejected") for k in (1, 2, 3)],
        (limit_version, "applied"),
        (rate_version, "applied"),
    ]


async def test_applied_configuration_survives_a_restart_without_the_cloud(
    system: EmbeddedSystem,
) -> None:
    async with Gateway(system.settings) as gateway:
        await gateway.connect()
        await gateway.publish_topology()
        version = system.cloud.set_config(system.serial, _document(V1_MEASUREMENTS))["version"]
        await wait_for(lambda: gateway.status().remote_config.applied_version == version)
    system.cloud.stop()  # the cloud is gone for good

    restarted_at = int(time.time() * 1000)
    # Rings go to the outbox every second (not every 10 s): the backlog shows them sooner.
    async with Gateway(system.settings, flush_s=1.0) as gateway:
        status = gateway.status().remote_config
        # In force from start-up: no cloud was asked.
        assert (status.applied_version, status.valid, status.measurements) == (version, True, 3)
        await wait_for(lambda: gateway.backlog().samples_left >= 6, what="sampling under v1")
    outbox = sqlite3.connect(system.settings.storage.dir / "outbox.sqlite")
    try:
        # Pending samples are chunks, or the batch sealed for sending (the
        # publisher seals one before it finds the cloud gone).
        rows = outbox.execute(
            "SELECT config_version, count(*) FROM (SELECT config_version, first_ms FROM chunk"
            " UNION ALL SELECT config_version, first_ms FROM sealed) WHERE first_ms >= ?"
            " GROUP BY 1",
            (restarted_at,),
        ).fetchall()
    finally:
        outbox.close()
    assert [r[0] for r in rows] == [version]


# -- read-only: local changes to what the cloud manages ---------------------------------------


async def test_local_changes_to_managed_settings_are_refused_by_the_api(
    system: EmbeddedSystem,
) -> None:
    async with Gateway(system.settings) as gateway:
        await gateway.connect()
        await gateway.publish_topology()
        version = system.cloud.set_config(system.serial, _document(V1_MEASUREMENTS))["version"]
        await wait_for(lambda: gateway.status().remote_config.applied_version == version)

        for key, value in [
            ("sampling.period_s", 10),
            ("measurements[0].period_s", 60),
            ("alarms.a1.threshold", 250.0),
            ("publisher.period_s", 60),
        ]:
            with pytest.raises(RemoteConfigReadOnly) as refused:
                gateway.change_setting(key, value)
            message = str(refused.value)
            assert key in message
            assert "managed by the cloud" in message
            assert repr(version) in message
        # Nothing changed.
        assert gateway.status().remote_config.applied_version == version
        assert gateway.status().remote_config.publisher_period_s == 1

        # A local setting is the user's: taken, validated, in force at once.
        assert gateway.settings.publication.method == "cloud"
        with pytest.raises(PublicationConflict, match="Disconnect first"):
            await gateway.change_publication_method("email")
        with pytest.raises(PublicationConflict, match="Disconnect first"):
            await gateway.change_publication_method("none")
        await gateway.disconnect()
        change = await gateway.change_publication_method("none")
        assert change.audit_text() == "publication method changed from cloud to none"
        assert gateway.settings.publication.method == "none"
        assert gateway.status().publication.method == "none"
        # What older code reads: the mirror of publication.method.
        assert gateway.settings.cloud.alarm_publication == "none"
        with pytest.raises(ConfigError, match=r"publication\.method"):
            await gateway.change_publication_method("pigeon")
        with pytest.raises(ConfigError, match="switched by change_publication_method"):
            gateway.change_setting("publication.method", "cloud")
        with pytest.raises(ConfigError, match=r"replaced by publication\.method"):
            gateway.change_setting("cloud.alarm_publication", "cloud")
        with pytest.raises(ConfigError, match="not a setting changed locally"):
            gateway.change_setting("identity.serial", "PS-1")
        assert gateway.settings.publication.method == "none"


def test_panelfast_set_refuses_managed_settings_and_edits_local_ones(
    system: EmbeddedSystem,
) -> None:
    runner = CliRunner()
    path = system.config_path
    original = path.read_text(encoding="utf-8")
    for key in ("publisher.period_s", "alarms", "sampling.period_s"):
        result = runner.invoke(main, ["set", "--config", str(path), key, "60"])
        assert result.exit_code == 1, result.output
        assert "managed by the cloud" in result.output
        assert "read-only" in result.output
    assert path.read_text(encoding="utf-8") == original

    bad = runner.invoke(main, ["set", "--config", str(path), "storage.quota_mb", "zero"])
    assert bad.exit_code == 1
    assert "storage.quota_mb" in bad.output
    unknown = runner.invoke(main, ["set", "--config", str(path), "identity.serial", "X-1"])
    assert unknown.exit_code == 1
    assert "not a setting changed locally" in unknown.output
    assert path.read_text(encoding="utf-8") == original

    result = runner.invoke(main, ["set", "--config", str(path), "publication.method", "none"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["set", "--config", str(path), "storage.quota_mb", "750"])
    assert result.exit_code == 0, result.output
    # Outputs remote control needs the user's confirmation: not a file setting.
    result = runner.invoke(
        main, ["set", "--config", str(path), "gateway.outputs_remote_control", "true"]
    )
    assert result.exit_code == 1
    assert "panelfast outputs remote-control enable" in result.output
    document = tomllib.loads(path.read_text(encoding="utf-8"))
    assert document["publication"]["method"] == "none"
    assert document["storage"]["quota_mb"] == 750
    assert "outputs_remote_control" not in document.get("gateway", {})
    # Everything else kept as it was.
    before = tomllib.loads(original)
    assert document["devices"] == before["devices"]
    assert document["identity"] == before["identity"]


async def test_panelfast_set_names_the_applied_configuration(system: EmbeddedSystem) -> None:
    async with Gateway(system.settings) as gateway:
        await gateway.connect()
        await gateway.publish_topology()
        version = system.cloud.set_config(system.serial, _document(V1_MEASUREMENTS))["version"]
        await wait_for(lambda: gateway.status().remote_config.applied_version == version)
    result = CliRunner().invoke(
        main, ["set", "--config", str(system.config_path), "publisher.period_s", "60"]
    )
    assert result.exit_code == 1
    assert f"remote configuration {version!r}" in result.output


async def test_status_between_apply_and_the_next_sampling_instant(system: EmbeddedSystem) -> None:
    """A configuration applied is made live at the next sampling instant; until
    then the live alarms are the previous configuration's, and status() names
    them by it (it used to zip the new configuration's alarms with the old set
    and raise when their counts differed)."""
    hot = {
        "id": "hot",
        "device": "mb-1",
        "measurement": "VoltageAN",
        "condition": "under",
        "threshold": 1e9,
        "hysteresis": 0,
        "delay_s": 0,
    }
    async with Gateway(system.settings) as gateway:
        await gateway.connect()
        await gateway.publish_topology()
        system.cloud.set_config(system.serial, _document(V1_MEASUREMENTS, alarms=[hot]))
        await wait_for(lambda: gateway.status().active_alarms == ("hot",), what="alarm active")

    # Not started: no sampling instant comes, so the switch stays pending.
    gateway = Gateway(system.settings)
    try:
        assert gateway.status().remote_config.alarms == 1
        two = [{**hot, "id": "cold"}, {**hot, "id": "warm"}]
        document = {**_document(V2_MEASUREMENTS, alarms=two), "version": "local-2"}
        assert await gateway.receive_config("local-2", document)
        status = gateway.status()
        assert status.remote_config.applied_version == "local-2"
        assert status.remote_config.alarms == 2
        # The live set is still v1's, its state restored from before the restart
        # (issue 9.3), and named by v1: "hot", not v2's "cold" or "warm".
        assert status.active_alarms == ("hot",)
    finally:
        await gateway.stop()


async def test_apply_progress_is_visible_in_status_while_applying(system: EmbeddedSystem) -> None:
    """Applying runs off the event loop: status().applying shows the section in
    progress (held here at the alarms step until the test has seen it)."""
    at_alarms, release = threading.Event(), threading.Event()

    def hold_at_alarms(step: ApplyProgress) -> None:
        if step.section == "alarms" and not at_alarms.is_set():
            at_alarms.set()
            release.wait(10)  # bounded: a failing test must not hang the gateway

    alarm = {
        "id": "a1",
        "device": "mb-1",
        "measurement": "VoltageAN",
        "condition": "over",
        "threshold": 1e9,
        "hysteresis": 0,
        "delay_s": 0,
    }
    async with Gateway(system.settings, on_apply_progress=hold_at_alarms) as gateway:
        await gateway.connect()
        await gateway.publish_topology()
        document = _document(V1_MEASUREMENTS, alarms=[alarm])
        version = system.cloud.set_config(system.serial, document)["version"]
        try:
            await wait_for(at_alarms.is_set, what="applying reached the alarms")
            applying = gateway.status().applying
            assert applying is not None
            assert (applying.section, applying.done, applying.total) == ("alarms", 0, 1)
            assert 1 / 3 <= applying.fraction < 2 / 3
            # Not applied yet: the previous state (nothing) is what status shows.
            assert gateway.status().remote_config.applied_version is None
        finally:
            release.set()
        await wait_for(lambda: gateway.status().remote_config.applied_version == version)
        assert gateway.status().applying is None


def test_panelfast_set_keeps_comments_and_refuses_a_form_it_cannot_edit(tmp_path: Path) -> None:
    claim = tmp_path / "claim.key"
    claim.write_text("ab" * 32)
    claim.chmod(0o600)
    identity = (
        f'[identity]\nserial = "PS-1234"\nmac = "aa:bb:cc:dd:ee:ff"\nclaim_key_file = "{claim}"\n\n'
    )
    path = tmp_path / "panelfast.toml"
    path.write_text(
        identity + "# how we reach the cloud\n[cloud]\n"
        'bootstrap_url = "https://cloud.example/bootstrap"\n'
        'alarm_publication = "cloud"  # the default\n\n'
        "# where state lives\n[storage]\n"
        f'dir = "{tmp_path / "state"}"\n',
        encoding="utf-8",
    )
    runner = CliRunner()
    for value in ("none", "cloud", "none"):
        result = runner.invoke(main, ["set", "--config", str(path), "publication.method", value])
        assert result.exit_code == 0, result.output
    text = path.read_text(encoding="utf-8")
    # The method's former key is replaced, not left to contradict it.
    assert "alarm_publication" not in text
    assert text.count("method =") == 1
    assert "# how we reach the cloud" in text
    assert "# where state lives" in text
    assert tomllib.loads(text)["publication"]["method"] == "none"

    # The [cloud] table written inline: not edited, and the file left as it was.
    inline = tmp_path / "inline.toml"
    inline.write_text(
        'cloud = { bootstrap_url = "https://cloud.example/bootstrap" }\n\n' + identity,
        encoding="utf-8",
    )
    before = inline.read_text(encoding="utf-8")
    result = runner.invoke(main, ["set", "--config", str(inline), "cloud.request_timeout_s", "5"])
    assert result.exit_code == 1
    assert "cannot edit" in result.output
    assert inline.read_text(encoding="utf-8") == before
