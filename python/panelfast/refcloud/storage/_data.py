"""Data batches (§7) and the samples they hold, for the gateway and the operator page.

A batch at the product's ceiling holds about 85,000 samples of 5,000
measurements, and the cloud stores it before it acknowledges: storing must be
cheap, and must not slow down as the tables grow. So the samples of a batch
are kept as its groups are, one row per group in ``sample_groups``: ``t0``,
``dt``, ``n``, the measurement indices ``m`` (uint32) and each measurement's
samples as one MessagePack array after the other in ``vals``, ``ends[k]``
saying where the k-th ends. Rows come in time order, one index entry per
group, where one row per measurement put 5,000 entries a batch all over an
index that outgrew the cache. A measurement's samples are read back by
slicing ``vals``; its name comes from the configuration the batch names.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import msgpack
import numpy as np

from panelfast import _native
from panelfast.refcloud.batch import Group, Value, batch_digest
from panelfast.refcloud.storage._model import (
    BatchSeries,
    SeriesSummary,
    _Base,
)

#: How ``m`` and ``ends`` are stored: little-endian uint32.
_U32 = np.dtype("<u4")

Name = tuple[str, str]


def _pack(group: Group) -> tuple[bytes, bytes, bytes]:
    """``m``, ``ends`` and ``vals`` of a group's row."""
    pack = msgpack.Packer().pack  # one packer for the group: packb makes one per call
    packed = [pack(values) for values in group.v]
    ends = np.cumsum([len(p) for p in packed], dtype=np.int64)
    return (
        np.asarray(group.m, dtype=_U32).tobytes(),
        ends.astype(_U32).tobytes(),
        b"".join(packed),
    )


def _unpack(vals: bytes) -> Iterator[list[Value]]:
    """Every measurement's samples of a row, in the order of its ``m``."""
    unpacker = msgpack.Unpacker(max_buffer_size=max(len(vals), 1))
    unpacker.feed(vals)
    return iter(unpacker)


def _names(db: sqlite3.Connection, device_id: str, version: str) -> list[Name]:
    """``(device, measurement)`` of each index of configuration ``version``."""
    row = db.execute(
        "SELECT document FROM configs WHERE device_id = ? AND version = ?",
        (device_id, int(version)),
    ).fetchone()
    entries = json.loads(row[0]).get("measurements", []) if row else []
    return [
        (str(e.get("device")), str(e.get("measurement"))) if isinstance(e, dict) else ("", "")
        for e in entries
    ]


class _Names:
    """The names of a device's configurations, each read once per transaction."""

    def __init__(self, db: sqlite3.Connection, device_id: str) -> None:
        self._db, self._device_id = db, device_id
        self._by_version: dict[str, list[Name]] = {}
        self._indices: dict[tuple[str, Name], np.ndarray] = {}

    def of(self, version: str) -> list[Name]:
        names = self._by_version.get(version)
        if names is None:
            names = self._by_version[version] = _names(self._db, self._device_id, version)
        return names

    def indices(self, version: str, name: Name) -> np.ndarray:
        """The indices that name ``name`` in configuration ``version``."""
        key = (version, name)
        found = self._indices.get(key)
        if found is None:
            found = np.array([k for k, n in enumerate(self.of(version)) if n == name], _U32)
            self._indices[key] = found
        return found


class Data(_Base):
    # -- data ------------------------------------------------------------------------

    def last_seq(self, device_id: str) -> int:
        with self._transaction() as db:
            row = db.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM batches WHERE device_id = ?", (device_id,)
            ).fetchone()
        return int(row[0])

    def batch_digest(self, device_id: str, seq: int) -> str | None:
        with self._transaction() as db:
            row = db.execute(
                "SELECT digest FROM batches WHERE device_id = ? AND seq = ?", (device_id, seq)
            ).fetchone()
        return None if row is None else str(row[0])

    def count_duplicate(self, device_id: str, seq: int) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE batches SET duplicates = duplicates + 1 WHERE device_id = ? AND seq = ?",
                (device_id, seq),
            )

    def store_batch(
        self,
        device_id: str,
        seq: int,
        digest: str,
        body: bytes,
        config_version: str,
        groups: Sequence[Group],
    ) -> None:
        """Store batch ``seq`` (its body as received) and its samples, a row per group."""
        now = time.time()
        rows = [_pack(g) for g in groups]  # outside the lock: the slow part
        with self._transaction() as db:
            db.execute(
                "INSERT INTO batches (device_id, seq, digest, body, config_version, received_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (device_id, seq, digest, body, config_version, now),
            )
            self._insert_groups(db, device_id, seq, config_version, groups, rows)

    @staticmethod
    def _insert_groups(
        db: sqlite3.Connection,
        device_id: str,
        seq: int,
        config_version: str,
        groups: Sequence[Group],
        rows: Sequence[tuple[bytes, bytes, bytes]],
    ) -> None:
        db.executemany(
            "INSERT INTO sample_groups (device_id, seq, config_version, t0, dt, n, m, ends, vals)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (device_id, seq, config_version, g.t0, g.dt, g.n, *row)
                for g, row in zip(groups, rows, strict=True)
            ],
        )

    def convert_series_rows(self) -> None:
        """A file of the first version kept one row of JSON text per measurement
        in ``series``: rebuild its samples from the batch bodies it also kept
        (and their digests, now of another form), then drop that table."""
        with self._transaction() as db:
            if not db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'series'"
            ).fetchone():
                return
            keys = db.execute("SELECT device_id, seq FROM batches ORDER BY rowid").fetchall()
            for device_id, seq in keys:
                (body,) = db.execute(
                    "SELECT body FROM batches WHERE device_id = ? AND seq = ?", (device_id, seq)
                ).fetchone()
                batch = _native.decode_batch(bytes(body))
                groups = [Group(g["t0"], g["dt"], g["m"], g["v"]) for g in batch["groups"]]
                groups = [g for g in groups if g.m]
                db.execute(
                    "UPDATE batches SET digest = ? WHERE device_id = ? AND seq = ?",
                    (batch_digest(batch), device_id, seq),
                )
                self._insert_groups(
                    db, device_id, seq, batch["config_version"], groups, [_pack(g) for g in groups]
                )
            db.execute("DROP TABLE series")

    def batches(self, device_id: str) -> list[dict[str, Any]]:
        with self._transaction() as db:
            rows = db.execute(
                "SELECT seq, config_version, length(body), received_at, duplicates FROM batches "
                "WHERE device_id = ? ORDER BY seq",
                (device_id,),
            ).fetchall()
        return [
            {
                "seq": r[0],
                "config_version": r[1],
                "size": r[2],
                "received_at": r[3],
                "duplicates": r[4],
            }
            for r in rows
        ]

    def batch_body(self, device_id: str, seq: int) -> bytes | None:
        with self._transaction() as db:
            row = db.execute(
                "SELECT body FROM batches WHERE device_id = ? AND seq = ?", (device_id, seq)
            ).fetchone()
        return None if row is None else bytes(row[0])

    def series(self, device_id: str) -> list[BatchSeries]:
        """Every measurement's samples of every group stored, by name and time."""
        out: list[BatchSeries] = []
        with self._transaction() as db:
            names = _Names(db, device_id)
            rows = db.execute(
                "SELECT seq, config_version, t0, dt, m, vals FROM sample_groups "
                "WHERE device_id = ?",
                (device_id,),
            ).fetchall()
            for seq, version, t0, dt, m, vals in rows:
                of = names.of(version)
                for index, values in zip(
                    np.frombuffer(m, _U32).tolist(), _unpack(vals), strict=True
                ):
                    device, measurement = of[index]
                    out.append(BatchSeries(seq, version, device, measurement, t0, dt, values))
        out.sort(key=lambda s: (s.device, s.measurement, s.t0, s.seq))
        return out

    def sample_counts(self, device_id: str) -> Counter[tuple[str, int]]:
        """How many times each ``("<device>/<measurement>", t_ms)`` was received."""
        counts: Counter[tuple[str, int]] = Counter()
        for s in self.series(device_id):
            key = f"{s.device}/{s.measurement}"
            for j in range(len(s.values)):
                counts[(key, s.t0 + j * s.dt)] += 1
        return counts

    # -- what the operator page reads ----------------------------------------------------

    def record_seen(self, device_id: str, at: float) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO presence (device_id, last_seen) VALUES (?, ?) "
                "ON CONFLICT (device_id) "
                "DO UPDATE SET last_seen = MAX(last_seen, excluded.last_seen)",
                (device_id, at),
            )

    def last_seen(self) -> dict[str, float]:
        """When each device last made an authenticated request, as last recorded."""
        with self._transaction() as db:
            rows = db.execute("SELECT device_id, last_seen FROM presence").fetchall()
        return {str(r[0]): float(r[1]) for r in rows}

    def token_expiry(self, device_id: str) -> int | None:
        """When the device's most lasting token expires (None: it never bootstrapped)."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT MAX(expires_at) FROM tokens WHERE device_id = ?", (device_id,)
            ).fetchone()
        return None if row[0] is None else int(row[0])

    def batch_summary(self, device_id: str) -> tuple[int, int, float | None]:
        """How many batches were stored, how many were received again, when the last came."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(duplicates), 0), MAX(received_at) FROM batches "
                "WHERE device_id = ?",
                (device_id,),
            ).fetchone()
        return int(row[0]), int(row[1]), None if row[2] is None else float(row[2])

    def series_summaries(self, device_id: str) -> list[SeriesSummary]:
        """Per measurement received: sample count, first and last instant (no values read)."""
        # Per configuration version: count, first and last instant of each index.
        spans: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        with self._transaction() as db:
            names = _Names(db, device_id)
            for version, t0, dt, n, m in db.execute(
                "SELECT config_version, t0, dt, n, m FROM sample_groups WHERE device_id = ?",
                (device_id,),
            ):
                if version not in spans:
                    size = len(names.of(version))
                    spans[version] = (
                        np.zeros(size, np.int64),
                        np.full(size, np.iinfo(np.int64).max),
                        np.full(size, np.iinfo(np.int64).min),
                    )
                count, first, last = spans[version]
                index = np.frombuffer(m, _U32)
                count[index] += n  # an index appears once in a group
                first[index] = np.minimum(first[index], t0)
                last[index] = np.maximum(last[index], t0 + (n - 1) * dt)
            by_name: dict[Name, tuple[int, int, int]] = {}
            for version, (count, first, last) in spans.items():
                of = names.of(version)
                for k in np.flatnonzero(count).tolist():
                    c, f, e = int(count[k]), int(first[k]), int(last[k])
                    if of[k] in by_name:
                        c0, f0, e0 = by_name[of[k]]
                        c, f, e = c0 + c, min(f0, f), max(e0, e)
                    by_name[of[k]] = (c, f, e)
        return [SeriesSummary(d, m, *by_name[(d, m)]) for d, m in sorted(by_name)]

    def series_between(
        self, device_id: str, device: str, measurement: str, start: int, end: int
    ) -> list[tuple[int, int, list[Value]]]:
        """``(t0, dt, values)`` of every stored group of one measurement that has an
        instant in ``[start, end]`` (ms), in time order; groups may reach outside the range."""
        out: list[tuple[int, int, list[Value]]] = []
        with self._transaction() as db:
            names = _Names(db, device_id)
            rows = db.execute(
                "SELECT rowid, config_version, t0, dt, m, ends FROM sample_groups "
                "WHERE device_id = ? AND t0 <= ? AND t0 + (n - 1) * dt >= ? ORDER BY t0, seq",
                (device_id, end, start),
            ).fetchall()
            for rowid, version, t0, dt, m, ends in rows:
                wanted = names.indices(version, (device, measurement))
                if not wanted.size:
                    continue
                stops = np.frombuffer(ends, _U32)
                for k in np.flatnonzero(np.isin(np.frombuffer(m, _U32), wanted)).tolist():
                    begin = int(stops[k - 1]) if k else 0
                    (piece,) = db.execute(
                        "SELECT substr(vals, ?, ?) FROM sample_groups WHERE rowid = ?",
                        (begin + 1, int(stops[k]) - begin, rowid),
                    ).fetchone()
                    out.append((t0, dt, msgpack.unpackb(piece)))
        return out
