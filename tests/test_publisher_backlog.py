"""The publisher drains a backlog to the reference cloud, encoding each next
batch while the one before is in flight: every sample arrives once, in order."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from panelfast import SeriesSet
from panelfast.cloud import CloudSession
from panelfast.embedded import embedded_system
from panelfast.outbox import Outbox
from panelfast.publisher import Publisher

PERIOD = 60_000
T0 = 1_795_000_020_000
MEASUREMENTS = 200
HOURS = 24


def minutes(first: int, count: int) -> SeriesSet:
    rng = np.random.default_rng(first)
    return SeriesSet.from_series(
        [
            (m, T0 + first * PERIOD, PERIOD,
             (230 + rng.normal(0, 1, count)).astype(np.float32).astype(np.float64))
            for m in range(MEASUREMENTS)
        ]
    )  # fmt: skip


async def test_a_backlog_arrives_whole_and_once(tmp_path: Path) -> None:
    with embedded_system(tmp_path) as system:
        served = system.cloud.set_config(
            system.serial,
            {
                "measurements": [
                    {"device": "mb-1", "measurement": f"M{k}", "period_s": 60}
                    for k in range(MEASUREMENTS)
                ],
                "alarms": [],
                "publisher": {"period_s": 60},
            },
        )
        outbox = Outbox(tmp_path / "outbox.sqlite", quota_bytes=10**9)
        for hour in range(HOURS):  # a day offline, an hour a chunk
            outbox.add_samples(minutes(60 * hour, 60), served["version"])
        session = CloudSession(system.settings)
        try:
            await session.connect()
            sent = await Publisher(outbox, session.hub).publish_data()
        finally:
            await session.aclose()
            stats = outbox.stats()
            outbox.close()
        total = HOURS * 60 * MEASUREMENTS
        assert sent == total
        assert (stats.pending_samples, stats.last_acked) == (0, stats.next_seq - 1)
        batches = system.cloud.batches(system.serial)
        assert [b["seq"] for b in batches] == list(range(1, len(batches) + 1))
        assert len(batches) > 2, "a backlog of several batches"
        counts = system.cloud.sample_counts(system.serial)
        assert len(counts) == total
        assert set(counts.values()) == {1}
