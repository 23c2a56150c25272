"""The durable outbox: nothing lost, nothing sent twice, across crashes."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from panelfast import AlarmSet, SeriesSet, decode_batch, encode_batches
from panelfast.outbox import COMPACT_AFTER, Outbox, SavedAlarm

PERIOD = 60_000


def minutes(first: int, count: int, measurements: int = 50, seed: int = 0) -> SeriesSet:
    """``count`` one-minute samples from minute ``first``: noisy float32 readings."""
    rng = np.random.default_rng(seed + first)
    return SeriesSet.from_series(
        [
            (m, first * PERIOD, PERIOD,
             (230 + rng.normal(0, 1, count)).astype(np.float32).astype(np.float64))
            for m in range(measurements)
        ]
    )  # fmt: skip


def instants(body: bytes) -> set[tuple[int, int]]:
    doc = decode_batch(body)
    return {
        (m, g["t0"] + j * g["dt"])
        for g in doc["groups"]
        for m, values in zip(g["m"], g["v"], strict=True)
        for j in range(len(values))
    }


def test_seal_send_acknowledge(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite", quota_bytes=10**8)
    assert outbox.next_batch() is None
    outbox.add_samples(minutes(0, 10), "3")
    batch = outbox.next_batch()
    assert batch is not None
    assert batch.seq == 1
    assert batch.samples == 500
    assert decode_batch(batch.body)["config_version"] == "3"
    assert len(instants(batch.body)) == 500
    assert outbox.next_batch() == batch, "one sealed batch at a time, resent unchanged"
    outbox.acknowledged(1)
    outbox.acknowledged(1)  # heard twice: harmless
    stats = outbox.stats()
    assert (stats.last_acked, stats.next_seq, stats.pending_samples) == (1, 2, 0)


def test_sealed_content_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    outbox = Outbox(path, quota_bytes=10**8)
    outbox.add_samples(minutes(0, 5), "1")
    sealed = outbox.next_batch()
    outbox.add_samples(minutes(5, 5), "1")
    outbox.close()
    again = Outbox(path, quota_bytes=10**8)
    assert again.next_batch() == sealed, "the same seq carries the same bytes after a crash"


def test_one_configuration_per_batch(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite", quota_bytes=10**8)
    outbox.add_samples(minutes(0, 2), "1")
    outbox.add_samples(minutes(2, 2), "2")
    first = outbox.next_batch()
    assert first is not None
    assert decode_batch(first.body)["config_version"] == "1"
    outbox.acknowledged(first.seq)
    second = outbox.next_batch()
    assert second is not None
    assert (second.seq, decode_batch(second.body)["config_version"]) == (2, "2")


def test_conflict_renumbers_and_keeps_the_samples(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite", quota_bytes=10**8)
    outbox.add_samples(minutes(0, 3), "1")
    before = outbox.next_batch()
    assert before is not None
    after = outbox.renumber(17)
    assert after is not None
    assert after.seq == 17
    assert decode_batch(after.body)["seq"] == 17
    assert instants(after.body) == instants(before.body)
    outbox.acknowledged(17)
    outbox.add_samples(minutes(3, 1), "1")
    nxt = outbox.next_batch()
    assert nxt is not None
    assert nxt.seq == 18


def test_refused_batch_is_set_aside_and_its_seq_reused(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite", quota_bytes=10**8)
    outbox.add_samples(minutes(0, 3), "1")
    refused = outbox.next_batch()
    assert refused is not None
    outbox.refuse(refused.seq, "invalid_payload: unknown measurement")
    assert outbox.stats().refused_batches == 1
    outbox.add_samples(minutes(3, 3), "1")
    nxt = outbox.next_batch()
    assert nxt is not None
    assert nxt.seq == refused.seq
    assert instants(nxt.body) != instants(refused.body)


def test_too_large_for_the_hub_is_split(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite", quota_bytes=10**8, level=3)
    outbox.add_samples(minutes(0, 120), "1")
    whole = outbox.next_batch()
    assert whole is not None
    all_instants = instants(whole.body)
    first = outbox.split(whole.seq)
    assert first is not None
    assert first.seq == whole.seq
    assert len(first.body) <= len(whole.body) // 2 + 1024
    got = instants(first.body)
    outbox.acknowledged(first.seq)
    while (b := outbox.next_batch()) is not None:
        got |= instants(b.body)
        outbox.acknowledged(b.seq)
    assert got == all_instants


def test_offline_compaction_makes_full_batches(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite", quota_bytes=10**9)
    for k in range(COMPACT_AFTER * 4):
        outbox.add_samples(minutes(k, 1, measurements=400), "1")
    chunks_before = outbox.stats().chunks
    assert outbox.compact() == chunks_before
    stats = outbox.stats()
    assert stats.chunks < chunks_before // 4
    assert stats.pending_samples == COMPACT_AFTER * 4 * 400
    got: set[tuple[int, int]] = set()
    while (b := outbox.next_batch()) is not None:
        assert b.seq == outbox.stats().last_acked + 1
        got |= instants(b.body)
        outbox.acknowledged(b.seq)
    assert len(got) == COMPACT_AFTER * 4 * 400


def test_a_compacted_chunk_is_sealed_alone(tmp_path: Path) -> None:
    """Sealing a backlog re-encodes only the batch it seals: the full chunks
    after it stay as compaction left them (same place, same bytes)."""
    path = tmp_path / "o.sqlite"
    outbox = Outbox(path, quota_bytes=10**9)
    for k in range(COMPACT_AFTER * 4):
        outbox.add_samples(minutes(k, 1, measurements=2000), "1")
    outbox.compact()
    with sqlite3.connect(path) as db:
        before = db.execute("SELECT id, full, samples, first_ms, body FROM chunk").fetchall()
    assert len(before) >= 3
    assert all(row[1] for row in before[:-1])
    batch = outbox.next_batch()
    assert batch is not None
    assert (batch.samples, batch.first_ms) == before[0][2:4]
    with sqlite3.connect(path) as db:
        after = db.execute("SELECT id, full, samples, first_ms, body FROM chunk").fetchall()
    assert after == before[1:]


def compacted_backlog(path: Path) -> Outbox:
    """An outbox offline long enough to hold several compacted (full) batches."""
    outbox = Outbox(path, quota_bytes=10**9)
    for k in range(COMPACT_AFTER * 4):
        outbox.add_samples(minutes(k, 1, measurements=2000), "1")
    outbox.compact()
    return outbox


def test_a_compacted_backlog_is_sent_as_compaction_encoded_it(tmp_path: Path) -> None:
    """Compaction numbers its batches as they will be sent: each is sealed with the
    very bytes compaction wrote (no second encoding at zstd 19), its seq inside."""
    path = tmp_path / "o.sqlite"
    outbox = compacted_backlog(path)
    with sqlite3.connect(path) as db:
        chunks = db.execute("SELECT full, seq, body FROM chunk ORDER BY id").fetchall()
    full = [(seq, body) for is_full, seq, body in chunks if is_full]
    assert len(full) >= 3
    assert [seq for seq, _ in full] == list(range(1, len(full) + 1))
    sent = []
    ahead = None
    while (b := outbox.next_batch(prepared=ahead)) is not None:
        assert decode_batch(b.body)["seq"] == b.seq
        ahead = outbox.prepare(b.seq + 1)  # as the publisher does while b is in flight
        sent.append((b.seq, b.body))
        outbox.acknowledged(b.seq)
    assert sent[: len(full)] == full
    assert sum(len(instants(body)) for _, body in sent) == COMPACT_AFTER * 4 * 2000


def test_a_compacted_batch_numbered_otherwise_is_encoded_under_its_seq(tmp_path: Path) -> None:
    """A chunk's number is a guess: when the next seq is another (the cloud's last
    seq was learnt at bootstrap), the batch is encoded again under the right one."""
    path = tmp_path / "o.sqlite"
    outbox = compacted_backlog(path)
    with sqlite3.connect(path) as db:
        (seq, body) = db.execute("SELECT seq, body FROM chunk ORDER BY id LIMIT 1").fetchone()
    assert seq == 1
    outbox.resume_from(40)
    batch = outbox.next_batch()
    assert batch is not None
    assert batch.seq == decode_batch(batch.body)["seq"] == 41
    assert instants(batch.body) == instants(body)


def test_an_outbox_of_the_first_version_is_upgraded(tmp_path: Path) -> None:
    """A file written before chunks kept their seq: its chunks count as provisional."""
    path = tmp_path / "o.sqlite"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE chunk (id INTEGER PRIMARY KEY AUTOINCREMENT, config_version TEXT NOT"
            " NULL, first_ms INTEGER NOT NULL, end_ms INTEGER NOT NULL, samples INTEGER NOT"
            " NULL, full INTEGER NOT NULL DEFAULT 0, body BLOB NOT NULL)"
        )
        for b in encode_batches(minutes(0, 10), "1", 0, level=3):
            db.execute(
                "INSERT INTO chunk (config_version, first_ms, end_ms, samples, body)"
                " VALUES (?, ?, ?, ?, ?)",
                ("1", b.first_ms, b.end_ms, b.samples, b.body),
            )
    outbox = Outbox(path, quota_bytes=10**8)
    batch = outbox.next_batch()
    assert batch is not None
    assert (batch.seq, decode_batch(batch.body)["seq"], batch.samples) == (1, 1, 500)
    outbox.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 1


def test_a_batch_prepared_in_flight_is_sealed_as_prepared(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite", quota_bytes=10**8)
    outbox.add_samples(minutes(0, 40), "1")
    first = outbox.next_batch(max_bytes=4000)
    assert first is not None
    ahead = outbox.prepare(first.seq + 1, max_bytes=4000)  # while `first` is in flight
    assert ahead is not None
    outbox.acknowledged(first.seq)
    second = outbox.next_batch(max_bytes=4000, prepared=ahead)
    assert second is not None
    assert (second.seq, second.body) == (first.seq + 1, ahead.batches[0].body)


def test_a_prepared_batch_never_overtakes_older_data(tmp_path: Path) -> None:
    """A 413 splits the batch in flight: its second half comes back as the oldest
    data, so the batch prepared meanwhile is outdated and the half goes first."""
    outbox = Outbox(tmp_path / "o.sqlite", quota_bytes=10**8)
    outbox.add_samples(minutes(0, 40), "1")
    first = outbox.next_batch(max_bytes=4000)
    assert first is not None
    ahead = outbox.prepare(first.seq + 1, max_bytes=4000)
    assert ahead is not None
    half = outbox.split(first.seq)
    assert half is not None
    outbox.acknowledged(half.seq)
    second = outbox.next_batch(max_bytes=4000, prepared=ahead)
    assert second is not None
    assert second.seq == first.seq + 1
    assert instants(first.body) - instants(half.body) <= instants(second.body)
    got = instants(half.body) | instants(second.body)
    outbox.acknowledged(second.seq)
    while (b := outbox.next_batch(max_bytes=4000)) is not None:
        got |= instants(b.body)
        outbox.acknowledged(b.seq)
    assert len(got) == 40 * 50, "every sample once"


def test_quota_drops_the_oldest_and_counts_it(tmp_path: Path) -> None:
    quota = 150_000
    outbox = Outbox(tmp_path / "o.sqlite", quota_bytes=quota, level=3)
    for k in range(400):
        outbox.add_samples(minutes(k, 1, measurements=100), "1")
    stats = outbox.stats()
    assert stats.dropped_samples > 0
    assert stats.bytes_used <= quota
    assert stats.pending_samples + stats.dropped_samples == 400 * 100
    batch = outbox.next_batch()
    assert batch is not None
    assert min(t for _, t in instants(batch.body)) > 0, "the oldest went first"


def test_resume_after_lost_state(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite", quota_bytes=10**8)
    outbox.resume_from(500)
    outbox.add_samples(minutes(0, 1), "1")
    batch = outbox.next_batch()
    assert batch is not None
    assert batch.seq == 501


def test_alarm_events_wait_in_order(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite", quota_bytes=10**8)
    alarms = AlarmSet([("a1", 0, "over", 10.0, 1.0, 0)])
    events = alarms.evaluate([11.0], [True], [1000]) + alarms.evaluate([8.0], [True], [2000])
    ids = outbox.add_events(events)
    pending = outbox.pending_events()
    assert [p.id for p in pending] == ids
    assert pending[0].body == {"id": ids[0], "alarm": "a1", "state": "active",
                               "ts": 1000, "value": 11.0}  # fmt: skip
    assert pending[1].body["state"] == "inactive"
    outbox.events_acknowledged(ids[:1])
    assert [p.id for p in outbox.pending_events()] == ids[1:]


def test_alarm_states_are_kept_with_their_events_and_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    outbox = Outbox(path, quota_bytes=10**8)
    alarms = AlarmSet([("a1", 0, "over", 10.0, 1.0, 0)])
    events = alarms.evaluate([11.0], [True], [1000])
    states = [SavedAlarm("a1", "def-1", True, None), SavedAlarm("a2", "def-2", False, 900)]
    outbox.add_events(events, states)
    outbox.close()
    again = Outbox(path, quota_bytes=10**8)
    assert again.alarm_states() == {s.id: s for s in states}
    assert len(again.pending_events()) == 1
    again.save_alarm_states([SavedAlarm("a3", "def-3", False, None)])
    assert list(again.alarm_states()) == ["a3"], "the alarms in force, no others"
    again.close()


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    worker = Path(__file__).with_name("outbox_worker.py")
    committed: set[int] = set()
    rng = random.Random(7)
    for _ in range(22):
        proc = subprocess.Popen(
            [sys.executable, str(worker), str(tmp_path), "30"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        # Up and writing (its first commit), then killed at a random moment of its work.
        first = proc.stdout.readline()
        time.sleep(rng.uniform(0.0, 0.6))
        os.kill(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        committed |= {
            int(line.split()[1])
            for line in [first, *out.splitlines()]
            if line.startswith("committed")
        }
    # A last run, not killed, sends what is left.
    subprocess.run([sys.executable, str(worker), str(tmp_path), "drain"], check=True)
    cloud = sqlite3.connect(tmp_path / "cloud.sqlite")
    assert cloud.execute("SELECT count(*) FROM violation").fetchone()[0] == 0
    rows = cloud.execute("SELECT m, t, count(*) FROM sample GROUP BY m, t").fetchall()
    assert all(n == 1 for _, _, n in rows), "no sample stored twice"
    received = {t for m, t, _ in rows if m == 0}
    assert committed <= received, f"{len(committed - received)} committed instants lost"
    assert len(committed) > 20, "the worker got to sample between kills"
