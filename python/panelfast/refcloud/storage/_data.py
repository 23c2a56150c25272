"""Data batches (§7) and the series they hold, for the gateway and the operator page."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from panelfast.refcloud.storage._model import (
    BatchSeries,
    SeriesSummary,
    _Base,
)


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
        series: Sequence[tuple[str, str, int, int, list[float | int | None]]],
    ) -> None:
        """Store batch ``seq`` and its samples, one row per (group, measurement)."""
        now = time.time()
        with self._transaction() as db:
            db.execute(
                "INSERT INTO batches (device_id, seq, digest, body, config_version, received_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (device_id, seq, digest, body, config_version, now),
            )
            db.executemany(
                "INSERT INTO series (device_id, seq, config_version, device, measurement, "
                "t0, dt, n, vals) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        device_id,
                        seq,
                        config_version,
                        dev,
                        meas,
                        t0,
                        dt,
                        len(vals),
                        json.dumps(vals),
                    )
                    for dev, meas, t0, dt, vals in series
                ],
            )

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
        with self._transaction() as db:
            rows = db.execute(
                "SELECT seq, config_version, device, measurement, t0, dt, vals FROM series "
                "WHERE device_id = ? ORDER BY device, measurement, t0, seq",
                (device_id,),
            ).fetchall()
        return [
            BatchSeries(
                seq=r[0],
                config_version=r[1],
                device=r[2],
                measurement=r[3],
                t0=r[4],
                dt=r[5],
                values=list(json.loads(r[6])),
            )
            for r in rows
        ]

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
        with self._transaction() as db:
            rows = db.execute(
                "SELECT device, measurement, SUM(n), MIN(t0), MAX(t0 + (n - 1) * dt) FROM series "
                "WHERE device_id = ? AND n > 0 GROUP BY device, measurement "
                "ORDER BY device, measurement",
                (device_id,),
            ).fetchall()
        return [SeriesSummary(r[0], r[1], int(r[2]), int(r[3]), int(r[4])) for r in rows]

    def series_between(
        self, device_id: str, device: str, measurement: str, start: int, end: int
    ) -> list[tuple[int, int, list[float | int | None]]]:
        """``(t0, dt, values)`` of every stored row of one measurement that has an instant
        in ``[start, end]`` (ms), in time order; rows may reach outside the range."""
        with self._transaction() as db:
            rows = db.execute(
                "SELECT t0, dt, vals FROM series WHERE device_id = ? AND device = ? "
                "AND measurement = ? AND t0 <= ? AND t0 + (n - 1) * dt >= ? ORDER BY t0, seq",
                (device_id, device, measurement, end, start),
            ).fetchall()
        return [(int(r[0]), int(r[1]), list(json.loads(r[2]))) for r in rows]
