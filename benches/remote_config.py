"""Remote configuration at the product ceiling: validate and apply in well under 50 ms.

A 5,000-measurement, 100-alarm document (500 samples per minute) is received
as bytes, parsed, validated against a 5,000-measurement topology, planned
against the configuration in force and applied, persisted in SQLite (WAL,
synchronous FULL). Two such documents alternate, so every apply changes
something. The baseline is the 50 ms target itself: ratio = 50 / ours.

Run alone: ``python -m benches.remote_config`` (prints the records as JSON).
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from panelfast.remote_config import AppliedConfig, ConfigStore, validate_bytes

TARGET_MS = 50.0
DEVICES = 100
MEASUREMENTS_PER_DEVICE = 60
PUBLISHED = frozenset(
    (f"mb-{d:03d}", f"Measurement{m:02d}")
    for d in range(DEVICES)
    for m in range(MEASUREMENTS_PER_DEVICE)
)


def ceiling_document(version: str, shift: int) -> bytes:
    """5,000 measurements at 600 s (500 samples/min) and 100 alarms; ``shift`` varies them."""
    pairs = sorted(PUBLISHED)
    chosen = pairs[shift : shift + 5_000]
    document: dict[str, Any] = {
        "version": version,
        "measurements": [{"device": d, "measurement": m, "period_s": 600} for d, m in chosen],
        "alarms": [
            {
                "id": f"alarm-{i}",
                "device": chosen[i * 7][0],
                "measurement": chosen[i * 7][1],
                "condition": "over" if i % 2 else "under",
                "threshold": 230.0 + i + shift,
                "hysteresis": 2.0,
                "delay_s": 10,
                "severity": ("low", "medium", "high")[i % 3],
            }
            for i in range(100)
        ],
        "publisher": {"period_s": 600 + shift},
    }
    return json.dumps(document).encode()


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1_000.0


def run(repeat: int = 15) -> list[dict[str, Any]]:
    documents = [ceiling_document("a", 0), ceiling_document("b", 500)]
    validate_times: list[float] = []
    total_times: list[float] = []
    with tempfile.TemporaryDirectory() as folder, ConfigStore(Path(folder) / "rc.sqlite") as store:
        holder = AppliedConfig(store)
        holder.apply(validate_bytes(documents[1], PUBLISHED))  # warm: something in force
        for i in range(repeat):
            raw = documents[i % 2]
            start = time.perf_counter()
            config = validate_bytes(raw, PUBLISHED)
            validated = time.perf_counter()
            holder.apply(config)
            done = time.perf_counter()
            validate_times.append(validated - start)
            total_times.append(done - start)
            assert len(config.measurements) == 5_000
            assert config.samples_per_minute == 500
    results = []
    for name, samples in (
        ("remote config validate 5k/100", validate_times),
        ("remote config validate+apply 5k/100", total_times),
    ):
        ours = _median_ms(samples)
        results.append(
            {
                "name": name,
                "unit": "ms",
                "ours": round(ours, 3),
                "baseline_name": "target",
                "baseline": TARGET_MS,
                "ratio": round(TARGET_MS / ours, 3),
            }
        )
    return results


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
