"""The remote configuration benchmark runs and writes well-formed records."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from panelfast.remote_config import validate_bytes

BENCH = Path(__file__).resolve().parent.parent / "benches" / "remote_config.py"


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("benches_remote_config", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_records() -> None:
    records = load_bench().run(repeat=3)
    assert [r["name"] for r in records] == [
        "remote config validate 5k/100",
        "remote config validate+apply 5k/100",
    ]
    for record in records:
        assert set(record) == {"name", "unit", "ours", "baseline_name", "baseline", "ratio"}
        assert record["unit"] == "ms"
        assert record["baseline_name"] == "target"
        assert record["baseline"] == 50.0
        assert record["ours"] > 0
        assert abs(record["ratio"] - 50.0 / record["ours"]) < 0.01 * record["ratio"]


def test_the_ceiling_document_is_at_every_limit() -> None:
    bench = load_bench()
    config = validate_bytes(bench.ceiling_document("v", 0), bench.PUBLISHED)
    assert len(config.measurements) == 5_000
    assert len(config.alarms) == 100
    assert config.samples_per_minute == 500
