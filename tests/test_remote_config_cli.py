"""``panelfast remote-config``: offline check and status, read-only."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from cloud_support import write_config
from panelfast.cli import main
from panelfast.exceptions import ConfigPathError
from panelfast.remote_config import ConfigStore, validate
from panelfast.topology import PublishedTopologyStore, Topology

PAIRS = frozenset({("mb-1", "P"), ("mb-1", "V")})


def gateway(tmp_path: Path) -> tuple[Path, Path]:
    """A gateway's configuration file and its storage folder (``state``)."""
    config = write_config(tmp_path, bootstrap_url="https://cloud.example.net", ca_bundle=None)
    return config, tmp_path / "state"


def published(tmp_path: Path) -> Path:
    """A gateway that published a topology; returns its configuration file."""
    config, storage = gateway(tmp_path)
    topology = Topology(
        body=b"{}", fingerprint="f", measurements=PAIRS, outputs=frozenset(), published_at="t"
    )
    PublishedTopologyStore(storage / "topology.json").record(topology, "tv-1")
    return config


DOC = {
    "version": "17",
    "measurements": [{"device": "mb-1", "measurement": "P", "period_s": 7}],
    "alarms": [],
    "publisher": {"period_s": 600},
}


def test_check_accepts_a_valid_document(tmp_path: Path) -> None:
    document = tmp_path / "doc.json"
    document.write_text(json.dumps(DOC))
    result = CliRunner().invoke(
        main, ["remote-config", "check", str(document), "--config", str(published(tmp_path))]
    )
    assert result.exit_code == 0, result.output
    assert "valid, version '17': 1 measurements (8.57143 samples per minute)" in result.output


def test_check_lists_every_error(tmp_path: Path) -> None:
    document = tmp_path / "doc.json"
    bad = dict(DOC, measurements=[{"device": "mb-2", "measurement": "P", "period_s": 0}])
    document.write_text(json.dumps(bad))
    result = CliRunner().invoke(
        main, ["remote-config", "check", str(document), "--config", str(published(tmp_path))]
    )
    assert result.exit_code == 1
    assert "rejected, 2 error(s)" in result.output
    assert "measurements[0].period_s: must be an integer ≥ 1, got 0" in result.output
    assert "measurements[0].device: unknown device 'mb-2'" in result.output


def test_check_reports_a_corrupt_topology_state(tmp_path: Path) -> None:
    document = tmp_path / "doc.json"
    document.write_text(json.dumps(DOC))
    config, storage = gateway(tmp_path)
    storage.mkdir()
    (storage / "topology.json").write_text("{")
    result = CliRunner().invoke(
        main, ["remote-config", "check", str(document), "--config", str(config)]
    )
    assert result.exit_code == 1
    assert "not valid JSON" in result.output


def test_check_before_any_topology_says_to_publish_one(tmp_path: Path) -> None:
    document = tmp_path / "doc.json"
    document.write_text(json.dumps(DOC))
    config, _ = gateway(tmp_path)
    result = CliRunner().invoke(
        main, ["remote-config", "check", str(document), "--config", str(config)]
    )
    assert result.exit_code == 1
    assert "run `panelfast topology publish` first" in result.output


def test_status_shows_applied_and_rejected(tmp_path: Path) -> None:
    config, storage = gateway(tmp_path)
    storage.mkdir()
    with ConfigStore(storage / "remote-config.sqlite") as store:
        store.save_applied(validate(DOC, PAIRS))
        store.save_rejected("18", [ConfigPathError("alarms[0].threshold", "must be finite")])
    result = CliRunner().invoke(main, ["remote-config", "status", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "gateway not running" in result.output
    assert "applied: version '17', 1 measurements, 0 alarms" in result.output
    assert "received: version '18' rejected (INVALID)" in result.output
    assert "alarms[0].threshold: must be finite" in result.output
