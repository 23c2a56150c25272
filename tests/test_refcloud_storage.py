"""The reference cloud's storage of data batches: a row per group, read back exactly.

Batches go through the cloud's own decoding and checking (as the data route
does) into a real SQLite file; what is read back must be what was sent.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import sqlite3
from pathlib import Path
from typing import Any

import msgpack
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from panelfast.exceptions import RefCloudRequestError
from panelfast.refcloud.batch import IssuedConfigs, Measurements, check_batch, decode_batch
from panelfast.refcloud.storage import Storage

T0 = 1_795_000_020_000  # aligned to the minute
MIN = 60_000
NAMES = [("mb-1", "ActivePowerTotal"), ("mb-1", "VoltageAN"), ("mb-1", "EnergyTotal")]


def config(names: list[tuple[str, str]]) -> dict[str, Any]:
    return {"measurements": [{"device": d, "measurement": m, "period_s": 60} for d, m in names]}


def frame(
    seq: int, version: str, groups: list[dict[str, Any]], *, single: bool = False, level: int = 3
) -> bytes:
    body = {"v": 1, "seq": seq, "config_version": version, "groups": groups}
    packed = msgpack.Packer(use_single_float=single).pack(body)
    return zstandard.ZstdCompressor(level=level).compress(packed)


def store(storage: Storage, device_id: str, body: bytes) -> str:
    """Decode, check and store ``body`` as the data route does; its digest."""
    batch = decode_batch(body)
    version = batch["config_version"]
    issued = storage.config(device_id, version)
    assert issued is not None
    checked = check_batch(batch, Measurements(version, issued.document))
    storage.store_batch(
        device_id, checked.seq, checked.digest, body, checked.config_version, checked.groups
    )
    return checked.digest


def exact(values: list[Any]) -> bytes:
    """Values compared bit for bit: NaN equals itself, 1 is not 1.0."""
    return bytes(msgpack.packb(values))


samples = st.one_of(
    st.none(),
    st.floats(width=64),
    st.floats(width=32),
    st.integers(-(2**63), 2**63 - 1),
)


@st.composite
def batches(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Groups one after the other in time, each naming some of the measurements."""
    groups, t0 = [], T0
    for _ in range(draw(st.integers(1, 4))):
        n = draw(st.integers(1, 6))
        m = draw(st.lists(st.integers(0, len(NAMES) - 1), min_size=1, unique=True))
        v = [draw(st.lists(samples, min_size=n, max_size=n)) for _ in m]
        groups.append({"t0": t0, "dt": MIN, "m": m, "v": v})
        t0 += (n + draw(st.integers(0, 3))) * MIN
    return groups


def test_samples_read_back_equal_what_was_sent(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "cloud.db")
    devices = (f"dev-{k}" for k in itertools.count())
    try:

        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
        @given(sent=st.lists(batches(), min_size=1, max_size=3))
        def run(sent: list[list[dict[str, Any]]]) -> None:
            device_id = next(devices)
            version = storage.add_config(device_id, config(NAMES), raw=False).version
            shift = 0
            expected: dict[tuple[str, str], list[tuple[int, bytes]]] = {}
            for seq, groups in enumerate(sent, start=1):
                for g in groups:  # each batch after the one before
                    g["t0"] += shift
                    for index, values in zip(g["m"], g["v"], strict=True):
                        expected.setdefault(NAMES[index], []).append((g["t0"], exact(values)))
                shift = max(g["t0"] + len(g["v"][0]) * MIN for g in groups) - T0
                store(storage, device_id, frame(seq, version, groups))
            got: dict[tuple[str, str], list[tuple[int, bytes]]] = {}
            for s in storage.series(device_id):
                got.setdefault((s.device, s.measurement), []).append((s.t0, exact(s.values)))
            assert got == {k: sorted(v) for k, v in expected.items()}
            summaries = {(s.device, s.measurement): s for s in storage.series_summaries(device_id)}
            assert summaries.keys() == expected.keys()
            for name, rows in expected.items():
                total = sum(len(msgpack.unpackb(v)) for _, v in rows)
                assert summaries[name].samples == total
                assert summaries[name].first == min(t for t, _ in rows)
                between = storage.series_between(device_id, *name, 0, 2**62)
                assert [(t0, exact(v)) for t0, _, v in between] == sorted(rows)

        run()
    finally:
        storage.close()


def test_one_measurement_over_a_range_across_configurations(tmp_path: Path) -> None:
    """A measurement at another index in a later configuration is still one series."""
    storage = Storage(tmp_path / "cloud.db")
    try:
        first = storage.add_config("d", config(NAMES), raw=False).version
        later = storage.add_config("d", config(NAMES[::-1]), raw=False).version
        power = [float(j) for j in range(10)]
        sent = [
            (first, {"t0": T0, "m": [0, 2], "v": [power, [7] * 10]}),
            (later, {"t0": T0 + 10 * MIN, "m": [1, 2], "v": [[None] * 5, [1.5] * 5]}),
            (later, {"t0": T0 + 20 * MIN, "m": [2], "v": [[2.5] * 5]}),
        ]
        for seq, (version, group) in enumerate(sent, start=1):
            store(storage, "d", frame(seq, version, [{**group, "dt": MIN}]))
        rows = storage.series_between("d", "mb-1", "ActivePowerTotal", T0 + 12 * MIN, T0 + 21 * MIN)
        assert rows == [(T0 + 10 * MIN, MIN, [1.5] * 5), (T0 + 20 * MIN, MIN, [2.5] * 5)]
        assert storage.series_between("d", "mb-1", "ActivePowerTotal", 0, T0 + 9 * MIN) == [
            (T0, MIN, power)
        ]
        assert storage.series_between("d", "mb-1", "Frequency", 0, 2**62) == []
        summaries = {s.measurement: s for s in storage.series_summaries("d")}
        assert summaries.keys() == {"ActivePowerTotal", "EnergyTotal", "VoltageAN"}
        power_summary = summaries["ActivePowerTotal"]
        assert (power_summary.samples, power_summary.first, power_summary.last) == (
            20,
            T0,
            T0 + 24 * MIN,
        )
        assert storage.sample_counts("d")[("mb-1/EnergyTotal", T0 + 9 * MIN)] == 1
    finally:
        storage.close()


def test_duplicates_are_known_by_their_content_not_their_encoding(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "cloud.db")
    try:
        version = storage.add_config("d", config(NAMES), raw=False).version
        groups = [{"t0": T0, "dt": MIN, "m": [0, 2], "v": [[1.5, None, 0.25], [10, 11, 2**40]]}]
        digest = store(storage, "d", frame(1, version, groups))
        assert storage.batch_digest("d", 1) == digest
        measurements = Measurements(version, config(NAMES))

        def digest_of(body: bytes) -> str:
            return check_batch(decode_batch(body), measurements).digest

        # float32 where exact, another zstd level: the same content.
        assert digest_of(frame(1, version, groups, single=True, level=19)) == digest
        changed = [{**groups[0], "v": [[1.5, None, 0.25], [10, 11, 2**40 + 1]]}]
        as_float = [{**groups[0], "v": [[1.5, None, 0.25], [10.0, 11, 2**40]]}]
        other_seq = frame(2, version, groups)
        for other in (frame(1, version, changed), frame(1, version, as_float), other_seq):
            assert digest_of(other) != digest
    finally:
        storage.close()


def test_a_batch_against_its_configuration_says_what_is_wrong(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "cloud.db")
    try:
        raw = {"measurements": [{"device": "d", "measurement": "m", "period_s": 60}, "bad"]}
        version = storage.add_config("d", raw, raw=False).version

        def load(device_id: str, version: str) -> dict[str, Any] | None:
            found = storage.config(device_id, version)
            return None if found is None else found.document

        issued = IssuedConfigs(load)
        assert issued.get("other", version) is None
        measurements = issued.get("d", version)
        assert measurements is not None
        assert issued.get("d", version) is measurements, "read once"
        cases = [
            ({"t0": T0, "dt": MIN, "m": [2], "v": [[1.0]]}, "not an index into the 2"),
            ({"t0": T0, "dt": MIN, "m": [1], "v": [[1.0]]}, "measurement 1 of the configuration"),
            ({"t0": T0, "dt": 30_000, "m": [0], "v": [[1.0]]}, "sampled every 60000 ms"),
            ({"t0": T0 + 1, "dt": MIN, "m": [0], "v": [[1.0]]}, "not aligned"),
        ]
        for group, message in cases:
            with pytest.raises(RefCloudRequestError) as caught:
                check_batch(decode_batch(frame(1, version, [group])), measurements)
            assert caught.value.status == 400
            assert message in str(caught.value)
    finally:
        storage.close()


def test_a_file_of_the_first_version_is_converted(tmp_path: Path) -> None:
    """The first version kept a row of JSON text per measurement and digested JSON:
    opened now, its samples are rebuilt from the batch bodies it kept, and a batch
    sent again is still known as a duplicate."""
    path = tmp_path / "cloud.db"
    storage = Storage(path)
    version = storage.add_config("d", config(NAMES), raw=False).version
    groups = [{"t0": T0, "dt": MIN, "m": [0, 2], "v": [[1.5, None], [10, 11]]}]
    bodies = [frame(1, version, groups), frame(2, version, [{**groups[0], "t0": T0 + 2 * MIN}])]
    for body in bodies:
        store(storage, "d", body)
    before = storage.series("d")
    storage.close()
    # Back to the first version's file, as that version wrote it.
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM sample_groups")
        db.execute(
            "CREATE TABLE series (device_id TEXT NOT NULL, seq INTEGER NOT NULL, "
            "config_version TEXT NOT NULL, device TEXT NOT NULL, measurement TEXT NOT NULL, "
            "t0 INTEGER NOT NULL, dt INTEGER NOT NULL, n INTEGER NOT NULL, vals TEXT NOT NULL)"
        )
        for s in before:
            db.execute(
                "INSERT INTO series VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                ("d", s.seq, s.config_version, s.device, s.measurement, s.t0, s.dt,
                 len(s.values), json.dumps(s.values)),
            )  # fmt: skip
        db.execute("UPDATE batches SET digest = ?", (hashlib.sha256(b"json").hexdigest(),))
        db.execute("PRAGMA user_version = 0")
    db.close()
    storage = Storage(path)
    try:
        assert storage.series("d") == before
        assert (
            storage.batch_digest("d", 1)
            == check_batch(decode_batch(bodies[0]), Measurements(version, config(NAMES))).digest
        )
        assert [b["seq"] for b in storage.batches("d")] == [1, 2]
    finally:
        storage.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 1
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    db.close()
    assert "series" not in tables
