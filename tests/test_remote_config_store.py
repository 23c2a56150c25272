"""Applying a remote configuration: plan, progress, atomic swap, SQLite store, read-only."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from panelfast.exceptions import (
    ConfigPathError,
    PanelfastError,
    RemoteConfigReadOnly,
    RemoteConfigRejected,
    StateStoreError,
)
from panelfast.remote_config import (
    AppliedConfig,
    ApplyPlan,
    ApplyProgress,
    ConfigStore,
    RemoteConfig,
    SectionProgress,
    ensure_local_change_allowed,
    plan_apply,
    validate,
)

PUBLISHED = frozenset((f"mb-{d}", f"M{m}") for d in range(10) for m in range(10))


def config(
    version: str,
    measurements: dict[tuple[str, str], int],
    alarms: dict[str, float] | None = None,
    publisher: int = 600,
) -> RemoteConfig:
    return validate(
        {
            "version": version,
            "measurements": [
                {"device": d, "measurement": m, "period_s": p} for (d, m), p in measurements.items()
            ],
            "alarms": [
                {
                    "id": alarm_id,
                    "device": "mb-0",
                    "measurement": "M0",
                    "condition": "over",
                    "threshold": threshold,
                    "hysteresis": 1,
                    "delay_s": 5,
                }
                for alarm_id, threshold in (alarms or {}).items()
            ],
            "publisher": {"period_s": publisher},
        },
        PUBLISHED,
    )


Opener = Callable[[Path], ConfigStore]


@pytest.fixture
def open_store() -> Iterator[Opener]:
    """Open stores on paths, all closed at the end of the test."""
    opened: list[ConfigStore] = []

    def open_(path: Path) -> ConfigStore:
        store = ConfigStore(path)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()


V1 = config("1", {("mb-0", "M0"): 60, ("mb-0", "M1"): 60, ("mb-1", "M0"): 600}, {"a": 1, "b": 2})
V2 = config("2", {("mb-0", "M1"): 60, ("mb-1", "M0"): 300, ("mb-2", "M2"): 60}, {"b": 3, "c": 4})


def test_the_plan_of_a_first_configuration() -> None:
    plan = plan_apply(None, V1)
    assert plan.previous_version is None
    assert plan.measurements_added == (("mb-0", "M0"), ("mb-0", "M1"), ("mb-1", "M0"))
    assert plan.measurements_removed == ()
    assert plan.alarms_added == ("a", "b")
    assert plan.publisher_changed
    assert plan.changes("measurements") == 3
    assert plan.changes("alarms") == 2
    assert plan.changes("publisher") == 1


def test_the_plan_between_two_configurations() -> None:
    plan = plan_apply(V1, V2)
    assert plan.previous_version == "1"
    assert plan.measurements_added == (("mb-2", "M2"),)
    assert plan.measurements_removed == (("mb-0", "M0"),)
    assert plan.measurements_changed == (("mb-1", "M0"),)
    assert plan.alarms_added == ("c",)
    assert plan.alarms_removed == ("a",)
    assert plan.alarms_changed == ("b",)
    assert not plan.publisher_changed
    assert not plan.unchanged
    again = config(
        "3", {("mb-0", "M1"): 60, ("mb-1", "M0"): 300, ("mb-2", "M2"): 60}, {"b": 3, "c": 4}
    )
    assert plan_apply(V2, again).unchanged


def test_apply_reports_progress_by_section_then_swaps(tmp_path: Path, open_store: Opener) -> None:
    holder = AppliedConfig(open_store(tmp_path / "rc.sqlite"))
    seen: list[ApplyProgress] = []
    during: list[RemoteConfig | None] = []

    def prepare_measurements(plan: ApplyPlan, progress: SectionProgress) -> str:
        tick = progress.start("measurements")
        for done in range(1, plan.changes("measurements") + 1):
            tick(done)
        during.append(holder.current)
        return f"built for {plan.new.version}"

    holder.apply(V1, prepare=prepare_measurements)
    applied = holder.apply(V2, seen.append, prepare_measurements)
    plan = applied.plan
    assert applied.built == "built for 2", "what the preparer built is handed back"
    assert plan.previous_version == "1"
    assert holder.current == V2
    # Preparers run before the swap: they see the configuration being replaced.
    assert during == [None, V1]
    assert [(p.section, p.done, p.total) for p in seen] == [
        ("measurements", 0, 3),
        ("measurements", 1, 3),
        ("measurements", 2, 3),
        ("measurements", 3, 3),
        ("alarms", 0, 3),
        ("alarms", 3, 3),
        ("publisher", 0, 0),
        ("publisher", 0, 0),
    ]
    fractions = [p.fraction for p in seen]
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0
    assert fractions[0] == 0.0


def test_the_applied_configuration_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "state" / "remote-config.sqlite"
    with ConfigStore(path) as store:
        assert store.applied() is None
        assert store.last_received() is None
        AppliedConfig(store).apply(V1)
    with ConfigStore(path) as store:
        holder = AppliedConfig(store)
        assert holder.current == V1
        assert holder.current.samples_per_minute == V1.samples_per_minute
        received = store.last_received()
        assert received is not None
        assert (received.version, received.status, received.errors, received.valid) == (
            "1",
            "applied",
            (),
            True,
        )


def test_a_rejection_is_remembered_and_the_applied_configuration_kept(tmp_path: Path) -> None:
    path = tmp_path / "rc.sqlite"
    with ConfigStore(path) as store:
        holder = AppliedConfig(store)
        holder.apply(V1)
        with pytest.raises(RemoteConfigRejected) as caught:
            validate({"version": "2", "measurements": [], "alarms": 3, "publisher": {}}, PUBLISHED)
        holder.reject(caught.value)
        assert holder.current == V1
    with ConfigStore(path) as store:
        assert store.applied() == V1
        received = store.last_received()
        assert received is not None
        assert received.version == "2"  # what the next If-None-Match carries
        assert received.status == "rejected"
        assert not received.valid
        assert received.errors == (
            ConfigPathError("alarms", "must be a list, got 3"),
            ConfigPathError("publisher.period_s", "required"),
        )


def test_a_failing_preparer_changes_nothing(tmp_path: Path, open_store: Opener) -> None:
    store = open_store(tmp_path / "rc.sqlite")
    holder = AppliedConfig(store)
    holder.apply(V1)

    def broken(plan: ApplyPlan, progress: SectionProgress) -> None:
        progress.start("alarms")
        raise RuntimeError("sampling engine refused")

    with pytest.raises(RuntimeError, match="refused"):
        holder.apply(V2, prepare=broken)
    assert holder.current == V1
    assert store.applied() == V1
    received = store.last_received()
    assert received is not None
    assert received.version == "1"


def test_a_write_failing_mid_transaction_changes_nothing(
    tmp_path: Path, open_store: Opener
) -> None:
    path = tmp_path / "rc.sqlite"
    store = open_store(path)
    holder = AppliedConfig(store)
    holder.apply(V1)
    # The second statement of the transaction fails: the first must be rolled back.
    with sqlite3.connect(path) as other:
        other.execute(
            "CREATE TRIGGER fail BEFORE INSERT ON received "
            "BEGIN SELECT RAISE(ABORT, 'disk gone'); END"
        )
    with pytest.raises(StateStoreError, match="disk gone"):
        holder.apply(V2)
    assert holder.current == V1
    assert store.applied() == V1
    with sqlite3.connect(path) as other:
        assert other.execute("SELECT version FROM applied").fetchall() == [("1",)]
        other.execute("DROP TRIGGER fail")
    holder.apply(V2)
    assert open_store(path).applied() == V2


def test_a_crash_at_any_instant_leaves_one_whole_configuration(tmp_path: Path) -> None:
    """SIGKILL a process that applies configurations in a loop; reopen; check consistency."""
    path = tmp_path / "rc.sqlite"
    script = textwrap.dedent(
        f"""
        import sys
        from panelfast.remote_config import AppliedConfig, ConfigStore, validate
        published = {{("mb-0", f"M{{m}}") for m in range(100)}}
        holder = AppliedConfig(ConfigStore({str(path)!r}))
        n = 0
        while True:
            n += 1
            count = 1 + n % 100
            holder.apply(validate({{
                "version": str(n),
                "measurements": [
                    {{"device": "mb-0", "measurement": f"M{{m}}", "period_s": 60}}
                    for m in range(count)
                ],
                "alarms": [],
                "publisher": {{"period_s": count}},
            }}, published))
            if n == 3:
                print("running", flush=True)
        """
    )
    for delay in (0.05, 0.2, 0.4):
        process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
        assert process.stdout is not None
        assert process.stdout.readline() == b"running\n"
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
        process.stdout.close()
        with ConfigStore(path) as store:
            applied = store.applied()
            received = store.last_received()
        assert applied is not None
        assert received is not None
        # Whole: its parts agree with each other and with its version.
        count = 1 + int(applied.version) % 100
        assert len(applied.measurements) == count
        assert applied.publisher_period_s == count
        assert received.version == applied.version
        assert received.status == "applied"


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "rc.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version=99")
    with pytest.raises(StateStoreError, match="newer panelfast"):
        ConfigStore(path)


def test_a_corrupt_stored_configuration_is_a_clear_error(
    tmp_path: Path, open_store: Opener
) -> None:
    path = tmp_path / "rc.sqlite"
    open_store(path).save_applied(V1)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE applied SET document = ?", (json.dumps({"version": "1"}),))
    with pytest.raises(StateStoreError, match="corrupt"):
        open_store(path).applied()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE applied SET document = 'garbage'")
    with pytest.raises(StateStoreError, match="corrupt"):
        AppliedConfig(open_store(path))


def test_a_store_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "rc.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StateStoreError, match="cannot open"):
        ConfigStore(path)


def test_a_restored_configuration_is_kept_even_if_the_topology_changed(
    tmp_path: Path, open_store: Opener
) -> None:
    path = tmp_path / "rc.sqlite"
    open_store(path).save_applied(V1)
    # Nothing about the published topology is needed to bring back what was applied.
    assert open_store(path).applied() == V1


# --- read-only -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "what",
    ["measurements", "alarms", "alarms[a1].threshold", "publisher.period_s", "Sampling", " alarms"],
)
def test_what_the_cloud_imposes_is_read_only(what: str) -> None:
    with pytest.raises(RemoteConfigReadOnly, match="managed by the cloud") as caught:
        ensure_local_change_allowed(what, "17")
    assert caught.value.what == what
    assert "'17'" in str(caught.value)
    assert isinstance(caught.value, PanelfastError)


@pytest.mark.parametrize("what", ["devices[0].connection.host", "identity.name", "web.password"])
def test_local_settings_stay_changeable(what: str) -> None:
    ensure_local_change_allowed(what)


def test_the_holder_names_the_applied_version(tmp_path: Path) -> None:
    holder = AppliedConfig()
    with pytest.raises(RemoteConfigReadOnly, match="managed by the cloud") as caught:
        holder.ensure_local_change_allowed("alarms")
    assert caught.value.version is None
    holder.apply(V2)
    with pytest.raises(RemoteConfigReadOnly, match="remote configuration '2'"):
        holder.ensure_local_change_allowed("measurements[3].period_s")
