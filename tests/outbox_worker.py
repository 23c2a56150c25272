"""A process that samples, buffers and publishes through the outbox as fast as
it can, to be killed with SIGKILL at random moments by test_outbox.py.

The "cloud" is a SQLite file that applies the §7 sequence rules: expected =
last acknowledged + 1; the same content again is a duplicate; other content
under a taken seq is a violation (recorded) and a conflict.
"""

from __future__ import annotations

import hashlib
import sqlite3
import sys
import time
from pathlib import Path

import numpy as np

from panelfast import SeriesSet, decode_batch
from panelfast.outbox import Outbox

PERIOD_MS = 10


def cloud_receive(cloud: sqlite3.Connection, seq: int, body: bytes) -> tuple[str, int]:
    digest = hashlib.sha256(body).hexdigest()
    cloud.execute("BEGIN IMMEDIATE")  # the batch and its samples are stored together
    try:
        return _store(cloud, seq, body, digest)
    finally:
        cloud.execute("COMMIT")


def _store(cloud: sqlite3.Connection, seq: int, body: bytes, digest: str) -> tuple[str, int]:
    last = cloud.execute("SELECT coalesce(max(seq), 0) FROM batch").fetchone()[0]
    taken = cloud.execute("SELECT digest FROM batch WHERE seq = ?", (seq,)).fetchone()
    if taken is not None:
        if taken[0] == digest:
            return "duplicate", seq
        cloud.execute("INSERT INTO violation (seq) VALUES (?)", (seq,))
        return "conflict", last + 1
    if seq != last + 1:
        return "conflict", last + 1
    cloud.execute("INSERT INTO batch (seq, digest) VALUES (?, ?)", (seq, digest))
    doc = decode_batch(body)
    cloud.executemany(
        "INSERT INTO sample (m, t) VALUES (?, ?)",
        [
            (m, g["t0"] + j * g["dt"])
            for g in doc["groups"]
            for m, values in zip(g["m"], g["v"], strict=True)
            for j in range(len(values))
        ],
    )
    return "ack", seq


def publish(outbox: Outbox, cloud: sqlite3.Connection) -> bool:
    """Send one batch; False when there is nothing to send."""
    batch = outbox.next_batch(max_bytes=2000)
    if batch is None:
        return False
    outcome, seq = cloud_receive(cloud, batch.seq, batch.body)
    if outcome == "conflict":
        outbox.renumber(seq)
    else:
        outbox.acknowledged(seq)
    return True


def main(folder: Path, seconds: str) -> None:
    cloud = sqlite3.connect(folder / "cloud.sqlite", isolation_level=None)
    cloud.execute("PRAGMA journal_mode=WAL")
    cloud.execute("PRAGMA synchronous=FULL")
    cloud.executescript(
        "CREATE TABLE IF NOT EXISTS batch (seq INTEGER PRIMARY KEY, digest TEXT);"
        "CREATE TABLE IF NOT EXISTS sample (m INTEGER, t INTEGER);"
        "CREATE TABLE IF NOT EXISTS violation (seq INTEGER);"
    )
    outbox = Outbox(folder / "outbox.sqlite", quota_bytes=1 << 30, level=3)
    if seconds == "drain":
        while publish(outbox, cloud):
            pass
        return
    deadline = time.monotonic() + float(seconds)
    while time.monotonic() < deadline:
        t = int(time.time() * 1000) // PERIOD_MS * PERIOD_MS
        series = SeriesSet.from_series(
            [(m, t, PERIOD_MS, np.array([float(m) + t % 1000])) for m in range(3)]
        )
        outbox.add_samples(series, "1")
        print(f"committed {t}", flush=True)
        publish(outbox, cloud)
        time.sleep(PERIOD_MS / 1000)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
