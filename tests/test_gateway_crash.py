"""Crash safety of the whole gateway: ``panelfast run`` killed (SIGKILL) over and over.

The reference cloud and the simulator stay up in this process; the gateway is
a real child process restarted each time from the same storage. Half the
kills land at a random moment (a quarter starting up, a quarter while it
samples, encodes and sends), half the instant the cloud has stored a new batch,
before its acknowledgement leaves (the cloud's storage, in this process, kills
the gateway itself: between the cloud's store and the gateway recording the
acknowledgement, on a machine however loaded). Data requests are slowed so a
batch is in flight a good part of the time.

What must hold at the end (spec §7):

- the cloud holds every sample at most once (``sample_counts`` all 1), and
  the cloud saw no sequence number reused with other content (it logs every
  409 of the data route; there must be none);
- nothing the gateway committed is lost: after each kill, what the outbox
  file holds plus what the cloud holds is committed, and all of it reaches
  the cloud;
- within each run of the gateway the instants are contiguous: the only
  samples missing are those of the moments no gateway ran, or taken just
  before a kill and not yet written to the outbox.
"""

from __future__ import annotations

import asyncio
import random
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from panelfast.embedded import embedded_system
from reliability_support import (
    MEASUREMENTS,
    GatewayProcess,
    Instant,
    backlog_cli,
    by_measurement,
    commission,
    config_document,
    data_conflicts,
    holes,
    names_of,
    outbox_instants,
    wait_until,
)
from waiting import PATIENCE_S

KILLS = 22
#: How long a run lives once it sampled, before a random-moment kill (s).
LIFE_S = (0.0, 2.5)
#: How long a run lives before a kill while starting up (s): ``panelfast run``
#: takes about a second to start.
STARTING_S = (0.1, 1.2)
#: Data requests take this long at the cloud: batches are often in flight.
DATA_DELAY_S = 0.25


def test_killed_gateway_loses_nothing_committed_and_duplicates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    gateway: GatewayProcess | None = None
    with embedded_system(tmp_path) as system, data_conflicts() as conflicts:
        cloud, serial = system.cloud, system.serial
        asyncio.run(commission(system))
        served = cloud.set_config(serial, config_document(period_s=1, publisher_period_s=1))
        names = {served["version"]: names_of(served["document"])}
        cloud.inject_fault("delay", "data", count=1_000_000, delay_s=DATA_DELAY_S)
        outbox = system.settings.storage.dir / "outbox.sqlite"
        gateway = GatewayProcess(system.config_path, tmp_path / "gateway.log")
        runs: list[tuple[float, float]] = []
        committed: set[Instant] = set()

        # The cloud's storage kills the gateway once it stored the batch, before
        # the acknowledgement is sent: that acknowledgement is lost for sure.
        storage = cloud.state.storage
        store_batch = storage.store_batch
        kill_at_next_store = threading.Event()

        def store_then_kill(*args: Any, **kwargs: Any) -> Any:
            stored = store_batch(*args, **kwargs)
            if kill_at_next_store.is_set():
                kill_at_next_store.clear()
                assert gateway is not None
                gateway.kill_now()
            return stored

        monkeypatch.setattr(storage, "store_batch", store_then_kill)

        def sampled_since(started: float) -> bool:
            return any(t > started * 1000 for _, t in outbox_instants(outbox, names))

        waited_runs = store_kills = 0
        try:
            for k in range(KILLS):
                started = time.time()
                gateway.start()
                if k % 4 == 0:  # starting up
                    time.sleep(rng.uniform(*STARTING_S))
                    gateway.kill()
                elif k % 4 == 2:  # sampling, encoding, sending
                    wait_until(
                        lambda s=started: sampled_since(s),
                        PATIENCE_S,
                        "the gateway samples into its outbox",
                        every_s=0.2,
                    )
                    waited_runs += 1
                    time.sleep(rng.uniform(*LIFE_S))
                    gateway.kill()
                else:  # the cloud stored a batch, its acknowledgement not yet sent
                    kill_at_next_store.set()
                    wait_until(
                        lambda: not gateway.alive,
                        PATIENCE_S,
                        "the cloud stores a batch (and kills the gateway)",
                        every_s=0.02,
                    )
                    gateway.killed()
                    store_kills += 1
                runs.append((started, time.time()))
                committed |= cloud.sample_counts(serial).keys()
                committed |= outbox_instants(outbox, names).keys()

            # A last run, undisturbed, delivers everything committed.
            cloud.clear_faults()
            started = time.time()
            gateway.start()
            wait_until(
                lambda: committed <= cloud.sample_counts(serial).keys(),
                2 * PATIENCE_S,
                "everything committed before the kills reaches the cloud",
                every_s=0.5,
            )
            wait_until(
                lambda: (
                    re.search(r"^Samples waiting:\s+0$", backlog_cli(system.config_path), re.M)
                    is not None
                ),
                PATIENCE_S,
                "panelfast backlog shows nothing pending",
                every_s=0.2,
            )
            gateway.stop()
            runs.append((started, time.time()))
        except BaseException:
            print(f"seed {seed}; gateway log:\n{gateway.tail(80)}")
            raise
        finally:
            gateway.close()

        counts = cloud.sample_counts(serial)
        batches = cloud.batches(serial)
        # Taken by the clean stop after the last publication: durable, not yet sent.
        pending = outbox_instants(outbox, names)

    assert not conflicts, f"the cloud answered 409 on data: {conflicts[:5]}"
    assert [b["seq"] for b in batches] == list(range(1, len(batches) + 1))
    repeated = {key: n for key, n in counts.items() if n != 1}
    assert not repeated, f"samples stored more than once: {sorted(repeated.items())[:10]}"
    assert not set(pending) & set(counts), "a pending sample is already at the cloud"
    assert all(n == 1 for n in pending.values())
    assert committed <= counts.keys()

    series = by_measurement([*counts, *pending])
    expected = {f"{d}/{m}" for d, m in MEASUREMENTS}
    assert set(series) == expected
    # One sampling instant takes every measurement due at once.
    first = series[min(expected)]
    assert all(series[name] == first for name in expected)

    sampled_runs = 0
    for started, ended in runs:
        in_run = [t for t in first if started * 1000 < t < ended * 1000]
        if in_run:
            sampled_runs += 1
            assert not holes(in_run, 1000), f"samples missing inside a run: {holes(in_run, 1000)}"
    outside = [t for t in first if not any(s * 1000 < t < e * 1000 for s, e in runs)]
    assert not outside, "samples at instants when no gateway ran"
    assert sampled_runs >= waited_runs
    duplicates = sum(b["duplicates"] for b in batches)
    # The kills right after the cloud stored a batch beat the gateway to
    # recording the acknowledgement: the batch is sent again after the
    # restart, unchanged, and heals as a duplicate.
    assert duplicates >= store_kills, f"{duplicates} of {store_kills} lost acknowledgements healed"
    print(
        f"seed {seed}: {KILLS} kills, {len(batches)} batches ({duplicates} healed duplicates), "
        f"{len(first)} instants sampled in {sampled_runs} runs"
    )
