"""The topology (§5): deterministic bytes, no secrets or addresses, size, republish detection."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from panelfast.config import DeviceSettings, IdentitySettings, write_secret
from panelfast.exceptions import StateStoreError, TopologyError
from panelfast.models import DeviceModel, MeasurementDef, OutputDef
from panelfast.topology import (
    MAX_INLINE_BYTES,
    SCHEMA,
    PublishedTopologyStore,
    build_topology,
    canonical_json,
)

CLAIM_KEY = "5e" * 32
WHEN = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)

METER_QUANTITIES = [
    ("ActivePowerTotal", "Active power total", "W", "instantaneous"),
    ("ReactivePowerTotal", "Reactive power total", "var", "instantaneous"),
    ("ApparentPowerTotal", "Apparent power total", "VA", "instantaneous"),
    ("VoltageAN", "Voltage phase A to neutral", "V", "instantaneous"),
    ("VoltageBN", "Voltage phase B to neutral", "V", "instantaneous"),
    ("VoltageCN", "Voltage phase C to neutral", "V", "instantaneous"),
    ("VoltageAB", "Voltage phase A to phase B", "V", "instantaneous"),
    ("VoltageBC", "Voltage phase B to phase C", "V", "instantaneous"),
    ("VoltageCA", "Voltage phase C to phase A", "V", "instantaneous"),
    ("CurrentA", "Current phase A", "A", "instantaneous"),
    ("CurrentB", "Current phase B", "A", "instantaneous"),
    ("CurrentC", "Current phase C", "A", "instantaneous"),
    ("CurrentN", "Current neutral", "A", "instantaneous"),
    ("Frequency", "Frequency", "Hz", "instantaneous"),
    ("PowerFactorTotal", "Power factor total", "", "instantaneous"),
    ("ActivePowerA", "Active power phase A", "W", "instantaneous"),
    ("ActivePowerB", "Active power phase B", "W", "instantaneous"),
    ("ActivePowerC", "Active power phase C", "W", "instantaneous"),
    ("ThdVoltageA", "Total harmonic distortion voltage phase A", "%", "instantaneous"),
    ("ThdVoltageB", "Total harmonic distortion voltage phase B", "%", "instantaneous"),
    ("ThdVoltageC", "Total harmonic distortion voltage phase C", "%", "instantaneous"),
    ("ThdCurrentA", "Total harmonic distortion current phase A", "%", "instantaneous"),
    ("ThdCurrentB", "Total harmonic distortion current phase B", "%", "instantaneous"),
    ("ThdCurrentC", "Total harmonic distortion current phase C", "%", "instantaneous"),
    ("ActiveEnergyDelivered", "Active energy delivered", "Wh", "cumulative"),
    ("ActiveEnergyReceived", "Active energy received", "Wh", "cumulative"),
    ("ReactiveEnergyDelivered", "Reactive energy delivered", "varh", "cumulative"),
    ("ReactiveEnergyReceived", "Reactive energy received", "varh", "cumulative"),
]


def measurement(mid: str, name: str, unit: str, kind: Any, address: int = 0) -> MeasurementDef:
    return MeasurementDef(
        id=mid, name=name, unit=unit, kind=kind, function=3, address=address, type="FLOAT32"
    )


METER = DeviceModel(
    name="PM5560",
    vendor="Schneider Electric",
    measurements=tuple(
        measurement(*q, address=3000 + 2 * i) for i, q in enumerate(METER_QUANTITIES)
    ),
)
IO_MODULE = DeviceModel(
    name="SmartlinkIO",
    vendor="Schneider Electric",
    measurements=(measurement("I1", "Input 1", "", "instantaneous"),),
    outputs=(
        OutputDef(id="Q1", name="Lighting", mode="contactor", command_address=1, status_address=2),
        OutputDef(id="Q2", name="Heating", mode="impulse", command_address=3, status_address=4),
    ),
)
MODELS = {m.name: m for m in (METER, IO_MODULE)}


@pytest.fixture
def identity(tmp_path: Path) -> IdentitySettings:
    key = tmp_path / "claim.key"
    write_secret(key, CLAIM_KEY)
    return IdentitySettings(
        serial="PS-0042-7A19", mac="aa:bb:cc:dd:ee:ff", name="Site gateway", claim_key_file=key
    )


def tcp_device(
    device_id: str, host: str = "10.20.30.40", port: int = 15023, **extra: Any
) -> DeviceSettings:
    return DeviceSettings.model_validate(
        {
            "id": device_id,
            "name": extra.pop("name", f"Meter {device_id}"),
            "model": extra.pop("model", "PM5560"),
            "connection": {"type": "tcp", "host": host, "port": port, "unit_id": 7},
            **extra,
        }
    )


def rtu_device(device_id: str, port: str = "/dev/ttyUSB3", **extra: Any) -> DeviceSettings:
    return DeviceSettings.model_validate(
        {
            "id": device_id,
            "name": extra.pop("name", f"IO {device_id}"),
            "model": extra.pop("model", "SmartlinkIO"),
            "connection": {"type": "rtu", "port": port, "unit_id": 3},
            **extra,
        }
    )


def test_document_follows_section_5(identity: IdentitySettings) -> None:
    devices = [
        tcp_device(
            "mb-1", name="Main incomer", label="Q1", usage="main_incomer", zone="Building A"
        ),
        rtu_device("io-1"),
        DeviceSettings.model_validate(
            {
                "id": "gw-2",
                "name": "Behind converter",
                "model": "PM5560",
                "commodity": "heat",
                "connection": {"type": "rtu-over-tcp", "host": "conv.site.lan", "unit_id": 4},
            }
        ),
    ]
    topology = build_topology(identity, devices, MODELS, published_at=WHEN)
    doc = topology.document()
    assert doc["schema"] == SCHEMA
    assert doc["published_at"] == "2026-11-22T10:00:00Z"
    assert doc["gateway"] == {
        "serial": "PS-0042-7A19",
        "model": "advanced",
        "firmware": "0.1.0",
        "name": "Site gateway",
        "mac": "aa:bb:cc:dd:ee:ff",
    }
    # Listed by id, whatever the configuration file's order.
    assert [d["id"] for d in doc["devices"]] == ["gw-2", "io-1", "mb-1"]
    mb1 = doc["devices"][2]
    assert mb1["name"] == "Main incomer"
    assert mb1["label"] == "Q1"
    assert mb1["usage"] == "main_incomer"
    assert mb1["zone"] == "Building A"
    assert mb1["commodity"] == "electricity"
    assert mb1["model"] == "PM5560"
    assert mb1["vendor"] == "Schneider Electric"
    assert mb1["connection"] == "modbus-tcp"
    assert mb1["measurements"][0] == {
        "id": "ActivePowerTotal",
        "name": "Active power total",
        "unit": "W",
        "kind": "instantaneous",
    }
    assert len(mb1["measurements"]) == len(METER_QUANTITIES)
    io1 = doc["devices"][1]
    assert io1["connection"] == "modbus-rtu"
    assert "label" not in io1  # empty optional fields are left out
    assert io1["outputs"] == [
        {"id": "Q1", "name": "Lighting", "mode": "contactor"},
        {"id": "Q2", "name": "Heating", "mode": "impulse"},
    ]
    assert doc["devices"][0]["connection"] == "modbus-rtu"
    assert doc["devices"][0]["commodity"] == "heat"
    assert ("mb-1", "VoltageAN") in topology.measurements
    assert ("io-1", "I1") in topology.measurements
    assert ("io-1", "Q1") in topology.outputs
    assert len(topology.measurements) == 2 * len(METER_QUANTITIES) + 1
    assert not topology.needs_upload


def test_bytes_are_canonical_and_deterministic(identity: IdentitySettings) -> None:
    devices = [tcp_device("mb-1"), tcp_device("mb-2", label="Q2"), rtu_device("io-1")]
    first = build_topology(identity, devices, MODELS, published_at=WHEN)
    again = build_topology(
        identity, list(reversed(devices)), dict(reversed(MODELS.items())), published_at=WHEN
    )
    assert first.body == again.body
    assert first.fingerprint == again.fingerprint
    assert first.body == canonical_json(json.loads(first.body))
    assert b": " not in first.body
    assert b", " not in first.body

    later = build_topology(identity, devices, MODELS, published_at=datetime(2027, 1, 1, tzinfo=UTC))
    assert later.fingerprint == first.fingerprint
    assert later.body != first.body
    assert later.body.replace(b"2027-01-01T00:00:00Z", b"2026-11-22T10:00:00Z") == first.body


def test_non_ascii_text_is_utf8(identity: IdentitySettings) -> None:
    topology = build_topology(
        identity, [tcp_device("mb-1", zone="Bâtiment Ω")], MODELS, published_at=WHEN
    )
    assert "Bâtiment Ω".encode() in topology.body


def test_no_secret_and_no_address_in_the_bytes(identity: IdentitySettings, tmp_path: Path) -> None:
    devices = [
        tcp_device("mb-1", host="192.168.77.41", port=15023),
        tcp_device("mb-2", host="meter-two.plant.example", port=15024),
        rtu_device("io-1", port="/dev/ttyUSB3"),
    ]
    body = build_topology(identity, devices, MODELS, published_at=WHEN).body
    for forbidden in (
        CLAIM_KEY,
        str(tmp_path),
        "claim",
        "192.168.77.41",
        "meter-two",
        "plant.example",
        "15023",
        "15024",
        "/dev/",
        "ttyUSB3",
        '"host"',
        '"port"',
        '"unit_id"',
        "baud",
    ):
        assert forbidden.encode() not in body, forbidden


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("label", "192.168.1.20"),
        ("name", "Meter at 10.0.0.7"),
        ("zone", "fe80::1 rack"),
        ("usage", "via 10.20.30.40"),
    ],
)
def test_an_address_in_free_text_is_refused(
    identity: IdentitySettings, field: str, value: str
) -> None:
    with pytest.raises(TopologyError, match=field):
        build_topology(identity, [tcp_device("mb-1", **{field: value})], MODELS)


def test_the_device_host_name_in_a_label_is_refused(identity: IdentitySettings) -> None:
    device = tcp_device("mb-1", host="meter7.local", label="see meter7.local")
    with pytest.raises(TopologyError, match="network address"):
        build_topology(identity, [device], MODELS)


def test_every_problem_is_listed(identity: IdentitySettings) -> None:
    broken = DeviceModel(
        name="Broken",
        vendor="X",
        measurements=(
            measurement("P", "Power", "W", "instantaneous"),
            measurement("P", "Power again", "W", "instantaneous"),
            measurement("bad id", "Spaces", "W", "instantaneous"),
        ),
        outputs=(
            OutputDef(id="Q1", name="a", mode="contactor", command_address=1, status_address=2),
            OutputDef(id="Q1", name="b", mode="contactor", command_address=3, status_address=4),
        ),
    )
    devices = [tcp_device("mb-1", model="Broken"), tcp_device("mb-2", model="Unknown")]
    with pytest.raises(TopologyError) as caught:
        build_topology(identity, devices, {**MODELS, "Broken": broken})
    problems = "\n".join(caught.value.problems)
    assert "measurement 'P' twice" in problems
    assert "'bad id' does not match" in problems
    assert "output 'Q1' twice" in problems
    assert "unknown device model 'Unknown'" in problems
    assert len(caught.value.problems) == 4


def test_duplicate_device_ids_are_refused(identity: IdentitySettings) -> None:
    with pytest.raises(TopologyError, match="used twice"):
        build_topology(identity, [tcp_device("mb-1"), rtu_device("mb-1")], MODELS)


def test_no_devices_is_a_valid_topology(identity: IdentitySettings) -> None:
    topology = build_topology(identity, [], MODELS, published_at=WHEN)
    assert topology.document()["devices"] == []
    assert topology.measurements == frozenset()


def test_128_devices_need_the_upload_service(identity: IdentitySettings) -> None:
    small = build_topology(identity, [tcp_device(f"mb-{i}") for i in range(8)], MODELS)
    assert small.size < MAX_INLINE_BYTES
    assert not small.needs_upload
    devices = [
        tcp_device(f"mb-{i:03d}", label=f"Q{i}", zone="Building A, floor 3", usage="feeder")
        for i in range(128)
    ]
    large = build_topology(identity, devices, MODELS)
    assert large.size == len(large.body) > MAX_INLINE_BYTES
    assert large.needs_upload
    assert len(large.measurements) == 128 * len(METER_QUANTITIES)


def test_published_store_tells_when_to_publish_again(
    identity: IdentitySettings, tmp_path: Path
) -> None:
    store = PublishedTopologyStore(tmp_path / "state" / "topology.json")
    devices = [tcp_device("mb-1"), rtu_device("io-1")]
    topology = build_topology(identity, devices, MODELS, published_at=WHEN)
    assert store.load() is None
    assert store.needs_publish(topology)

    store.record(topology, "tv-1")
    # A fresh store object on the same file: what a restarted gateway sees.
    reloaded = PublishedTopologyStore(tmp_path / "state" / "topology.json").load()
    assert reloaded is not None
    assert reloaded.topology_version == "tv-1"
    assert reloaded.fingerprint == topology.fingerprint
    assert reloaded.measurements == topology.measurements
    assert reloaded.outputs == topology.outputs
    assert reloaded.published_at == "2026-11-22T10:00:00Z"
    assert not [p for p in (tmp_path / "state").iterdir() if p.name.endswith(".tmp")]

    rebuilt_later = build_topology(identity, devices, MODELS)
    assert not store.needs_publish(rebuilt_later)
    # Moving a meter to another address changes nothing the cloud sees.
    moved = [tcp_device("mb-1", host="10.9.9.9"), rtu_device("io-1", port="/dev/ttyS1")]
    assert not store.needs_publish(build_topology(identity, moved, MODELS))
    # Renaming, adding or re-modelling a device does.
    renamed = [tcp_device("mb-1", name="Renamed"), rtu_device("io-1")]
    assert store.needs_publish(build_topology(identity, renamed, MODELS))
    added = [*devices, tcp_device("mb-2")]
    assert store.needs_publish(build_topology(identity, added, MODELS))
    remodelled = [tcp_device("mb-1"), rtu_device("io-1", model="PM5560")]
    assert store.needs_publish(build_topology(identity, remodelled, MODELS))


def test_a_torn_temporary_file_does_not_replace_the_state(
    identity: IdentitySettings, tmp_path: Path
) -> None:
    path = tmp_path / "topology.json"
    store = PublishedTopologyStore(path)
    topology = build_topology(identity, [tcp_device("mb-1")], MODELS, published_at=WHEN)
    store.record(topology, "tv-1")
    # A crash while writing the next state leaves a partial temporary file behind.
    (tmp_path / ".topology.json.tmp").write_bytes(b'{"fingerprint": "tru')
    loaded = store.load()
    assert loaded is not None
    assert loaded.topology_version == "tv-1"
    store.record(topology, "tv-2")
    loaded = store.load()
    assert loaded is not None
    assert loaded.topology_version == "tv-2"


@pytest.mark.parametrize(
    "content",
    [
        b"not json",
        b"[]",
        b'{"fingerprint": 1}',
        b'{"fingerprint":"a","topology_version":"b","published_at":"c","measurements":[["x"]],"outputs":[]}',
    ],
)
def test_a_corrupt_state_file_is_a_clear_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "topology.json"
    path.write_bytes(content)
    with pytest.raises(StateStoreError, match="topology"):
        PublishedTopologyStore(path).load()


def test_an_unreadable_state_file_is_a_clear_error(tmp_path: Path) -> None:
    # A folder where the file should be cannot be read, by root included.
    path = tmp_path / "topology.json"
    path.mkdir()
    with pytest.raises(StateStoreError, match="cannot read"):
        PublishedTopologyStore(path).load()
