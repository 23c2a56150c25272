"""Remote configuration validation (§6): every rule, every limit, every error with its path."""

from __future__ import annotations

import json
from fractions import Fraction
from typing import Any

import pytest

from panelfast.exceptions import ConfigPathError, RemoteConfigRejected
from panelfast.remote_config import (
    MAX_DOCUMENT_BYTES,
    MAX_ERRORS,
    PeriodGroup,
    RemoteConfig,
    parse_document,
    report_body,
    validate,
    validate_bytes,
)

#: 100 devices × 60 measurements: room for 5,001 distinct measurements.
PUBLISHED = frozenset((f"mb-{d}", f"M{m}") for d in range(100) for m in range(60))
PAIRS = sorted(PUBLISHED)


def document(
    measurements: list[dict[str, Any]] | None = None,
    alarms: list[dict[str, Any]] | None = None,
    **top: Any,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "version": "17",
        "measurements": measurements
        if measurements is not None
        else [{"device": "mb-1", "measurement": "M1", "period_s": 600}],
        "alarms": alarms if alarms is not None else [alarm("a1")],
        "publisher": {"period_s": 600},
    }
    doc.update(top)
    return doc


def alarm(alarm_id: str, **fields: Any) -> dict[str, Any]:
    entry = {
        "id": alarm_id,
        "device": "mb-1",
        "measurement": "M2",
        "condition": "over",
        "threshold": 253.0,
        "hysteresis": 2.0,
        "delay_s": 10,
        "severity": "high",
    }
    entry.update(fields)
    return entry


def sampled(count: int, period: int) -> list[dict[str, Any]]:
    return [{"device": d, "measurement": m, "period_s": period} for d, m in PAIRS[:count]]


def rejected(doc: object) -> list[ConfigPathError]:
    with pytest.raises(RemoteConfigRejected) as caught:
        validate(doc, PUBLISHED)
    return caught.value.errors


def paths(doc: object) -> list[str]:
    return [error.path for error in rejected(doc)]


def test_the_spec_example_is_accepted() -> None:
    published = {("mb-1", "ActivePowerTotal"), ("mb-1", "VoltageAN")}
    doc = {
        "version": "17",
        "measurements": [{"device": "mb-1", "measurement": "ActivePowerTotal", "period_s": 600}],
        "alarms": [
            {
                "id": "a1",
                "device": "mb-1",
                "measurement": "VoltageAN",
                "condition": "over",
                "threshold": 253.0,
                "hysteresis": 2.0,
                "delay_s": 10,
                "severity": "high",
            }
        ],
        "publisher": {"period_s": 600},
    }
    config = validate(doc, published)
    assert config.version == "17"
    assert config.measurements[0].key == ("mb-1", "ActivePowerTotal")
    assert config.measurements[0].position == 0
    assert config.alarms[0].threshold == 253.0
    assert config.alarms[0].severity == "high"
    assert config.publisher_period_s == 600
    assert config.samples_per_minute == Fraction(1, 10)


def test_order_is_kept_and_derived_groups_are_exact() -> None:
    doc = document(
        [
            {"device": "mb-2", "measurement": "M5", "period_s": 60},
            {"device": "mb-1", "measurement": "M1", "period_s": 7},
            {"device": "mb-1", "measurement": "M0", "period_s": 60.0},
        ]
    )
    config = validate(doc, PUBLISHED)
    assert [(m.position, m.key, m.period_s) for m in config.measurements] == [
        (0, ("mb-2", "M5"), 60),
        (1, ("mb-1", "M1"), 7),
        (2, ("mb-1", "M0"), 60),
    ]
    assert isinstance(config.measurements[2].period_s, int)
    assert config.period_groups == (PeriodGroup(7, (1,)), PeriodGroup(60, (0, 2)))
    assert config.samples_per_minute == Fraction(60, 7) + 2


def test_unknown_fields_are_ignored_and_severity_defaults_to_medium() -> None:
    doc = document(alarms=[alarm("a1", extra={"x": [1, 2]})], future={"nested": True})
    del doc["alarms"][0]["severity"]
    doc["measurements"][0]["comment"] = "ignored"
    doc["publisher"]["compression"] = "zstd"
    config = validate(doc, PUBLISHED)
    assert config.alarms[0].severity == "medium"


def test_integers_may_be_written_as_floats() -> None:
    doc = document(alarms=[alarm("a1", delay_s=10.0, threshold=253, hysteresis=0)])
    doc["publisher"]["period_s"] = 600.0
    config = validate(doc, PUBLISHED)
    assert config.alarms[0].delay_s == 10
    assert config.alarms[0].threshold == 253.0
    assert config.publisher_period_s == 600


def test_round_trip_through_the_document() -> None:
    doc = document(
        sampled(30, 60),
        [alarm(f"a{i}", severity=s) for i, s in enumerate(("low", "medium", "high"))],
    )
    config = validate(doc, PUBLISHED)
    assert validate(config.to_document(), PUBLISHED) == config
    assert validate_bytes(json.dumps(config.to_document()).encode(), PUBLISHED) == config


@pytest.mark.parametrize(
    ("mutate", "path", "message"),
    [
        (lambda d: d.pop("version"), "version", "required"),
        (lambda d: d.update(version=17), "version", "non-empty string"),
        (lambda d: d.update(version=""), "version", "non-empty string"),
        (lambda d: d.pop("measurements"), "measurements", "required"),
        (lambda d: d.update(measurements={"a": 1}), "measurements", "must be a list"),
        (lambda d: d.pop("alarms"), "alarms", "required"),
        (lambda d: d.update(alarms=None), "alarms", "must be a list"),
        (lambda d: d.pop("publisher"), "publisher", "required"),
        (lambda d: d.update(publisher=[600]), "publisher", "must be an object"),
        (lambda d: d["publisher"].pop("period_s"), "publisher.period_s", "required"),
        (lambda d: d["publisher"].update(period_s=0), "publisher.period_s", "integer ≥ 1"),
        (lambda d: d["publisher"].update(period_s=1.5), "publisher.period_s", "integer ≥ 1"),
        (lambda d: d["publisher"].update(period_s=True), "publisher.period_s", "got true"),
        (lambda d: d["publisher"].update(period_s="600"), "publisher.period_s", "got '600'"),
        (lambda d: d["measurements"].append(7), "measurements[1]", "must be an object"),
        (lambda d: d["measurements"][0].pop("device"), "measurements[0].device", "required"),
        (
            lambda d: d["measurements"][0].update(device=1),
            "measurements[0].device",
            "must be a string",
        ),
        (
            lambda d: d["measurements"][0].update(measurement=None),
            "measurements[0].measurement",
            "must be a string",
        ),
        (
            lambda d: d["measurements"][0].update(device="nope"),
            "measurements[0].device",
            "unknown device 'nope'",
        ),
        (
            lambda d: d["measurements"][0].update(measurement="Nope"),
            "measurements[0].measurement",
            "has no measurement 'Nope'",
        ),
        (lambda d: d["measurements"][0].pop("period_s"), "measurements[0].period_s", "required"),
        (
            lambda d: d["measurements"][0].update(period_s=0),
            "measurements[0].period_s",
            "integer ≥ 1",
        ),
        (
            lambda d: d["measurements"][0].update(period_s=-60),
            "measurements[0].period_s",
            "got -60",
        ),
        (
            lambda d: d["measurements"][0].update(period_s=0.5),
            "measurements[0].period_s",
            "got 0.5",
        ),
        (
            lambda d: d["measurements"][0].update(period_s=False),
            "measurements[0].period_s",
            "got false",
        ),
        (
            lambda d: d["measurements"][0].update(period_s=float("inf")),
            "measurements[0].period_s",
            "got inf",
        ),
        (
            lambda d: d["measurements"].append(dict(d["measurements"][0], period_s=60)),
            "measurements[1]",
            "already listed at measurements[0]",
        ),
        (lambda d: d["alarms"].append("a2"), "alarms[1]", "must be an object"),
        (lambda d: d["alarms"][0].pop("id"), "alarms[0].id", "required"),
        (lambda d: d["alarms"][0].update(id=5), "alarms[0].id", "must be a string"),
        (lambda d: d["alarms"][0].update(id="a 1"), "alarms[0].id", "does not match"),
        (lambda d: d["alarms"][0].update(id="x" * 65), "alarms[0].id", "does not match"),
        (lambda d: d["alarms"][0].update(id=""), "alarms[0].id", "does not match"),
        (lambda d: d["alarms"].append(alarm("a1")), "alarms[1].id", "already used by alarms[0]"),
        (lambda d: d["alarms"][0].update(device="ghost"), "alarms[0].device", "unknown device"),
        (
            lambda d: d["alarms"][0].update(measurement="Ghost"),
            "alarms[0].measurement",
            "has no measurement",
        ),
        (lambda d: d["alarms"][0].pop("condition"), "alarms[0].condition", "required"),
        (lambda d: d["alarms"][0].update(condition="above"), "alarms[0].condition", "'above'"),
        (lambda d: d["alarms"][0].pop("threshold"), "alarms[0].threshold", "required"),
        (lambda d: d["alarms"][0].update(threshold=float("nan")), "alarms[0].threshold", "finite"),
        (
            lambda d: d["alarms"][0].update(threshold=float("-inf")),
            "alarms[0].threshold",
            "finite",
        ),
        (lambda d: d["alarms"][0].update(threshold=True), "alarms[0].threshold", "got true"),
        (lambda d: d["alarms"][0].update(threshold="253"), "alarms[0].threshold", "finite"),
        (lambda d: d["alarms"][0].update(threshold=10**400), "alarms[0].threshold", "bits"),
        (lambda d: d["alarms"][0].pop("hysteresis"), "alarms[0].hysteresis", "required"),
        (lambda d: d["alarms"][0].update(hysteresis=-0.1), "alarms[0].hysteresis", "≥ 0"),
        (
            lambda d: d["alarms"][0].update(hysteresis=float("inf")),
            "alarms[0].hysteresis",
            "finite",
        ),
        (lambda d: d["alarms"][0].pop("delay_s"), "alarms[0].delay_s", "required"),
        (lambda d: d["alarms"][0].update(delay_s=-1), "alarms[0].delay_s", "integer ≥ 0"),
        (lambda d: d["alarms"][0].update(delay_s=2.5), "alarms[0].delay_s", "integer ≥ 0"),
        (lambda d: d["alarms"][0].update(delay_s=True), "alarms[0].delay_s", "got true"),
        (lambda d: d["alarms"][0].update(severity="critical"), "alarms[0].severity", "critical"),
        (lambda d: d["alarms"][0].update(severity=None), "alarms[0].severity", "got null"),
    ],
)
def test_each_rule_names_its_path(mutate: Any, path: str, message: str) -> None:
    doc = document()
    mutate(doc)
    errors = rejected(doc)
    assert [e.path for e in errors] == [path], errors
    assert message in errors[0].message


@pytest.mark.parametrize("junk", [None, [], "config", 17, 1.5, True])
def test_a_document_that_is_not_an_object(junk: object) -> None:
    errors = rejected(junk)
    assert [e.path for e in errors] == ["(document)"]
    assert "JSON object" in errors[0].message


def test_every_error_is_reported_not_just_the_first() -> None:
    doc = document(
        [
            {"device": "mb-1", "measurement": "M1", "period_s": 0},
            {"device": "mb-1", "measurement": "M1", "period_s": 60},
            {"device": "zz", "measurement": "M1", "period_s": 60},
        ],
        [alarm("a1", threshold=float("nan")), alarm("a1")],
        version=None,
        publisher={"period_s": -5},
    )
    assert paths(doc) == [
        "version",
        "measurements[0].period_s",
        "measurements[1]",
        "measurements[2].device",
        "alarms[0].threshold",
        "alarms[1].id",
        "publisher.period_s",
    ]


def test_an_alarm_measurement_need_not_be_sampled() -> None:
    config = validate(document([], [alarm("a1", device="mb-99", measurement="M59")]), PUBLISHED)
    assert config.measurements == ()
    assert config.alarms[0].key == ("mb-99", "M59")


# --- limits --------------------------------------------------------------------------------


def test_exactly_at_every_limit_is_accepted() -> None:
    doc = document(sampled(5_000, 600), [alarm(f"a{i}") for i in range(100)])
    config = validate(doc, PUBLISHED)
    assert len(config.measurements) == 5_000
    assert len(config.alarms) == 100
    assert config.samples_per_minute == 500


def test_5001_measurements_are_rejected() -> None:
    errors = rejected(document(sampled(5_001, 3_600)))
    assert [(e.path, e.message) for e in errors] == [
        ("measurements", "5001 measurements; at most 5,000")
    ]


def test_101_alarms_are_rejected() -> None:
    errors = rejected(document(alarms=[alarm(f"a{i}") for i in range(101)]))
    assert [(e.path, e.message) for e in errors] == [("alarms", "101 alarms; at most 100")]


def mixed_periods(extra: list[int]) -> list[dict[str, Any]]:
    """3×1 s (180) + 4×3 s (80) + 10×6 s (100) + 14×7 s (120) + 20×60 s (20) = 500/min."""
    periods = [1] * 3 + [3] * 4 + [6] * 10 + [7] * 14 + [60] * 20 + extra
    return [
        {"device": d, "measurement": m, "period_s": p}
        for (d, m), p in zip(PAIRS, periods, strict=False)
    ]


def test_500_samples_per_minute_of_mixed_periods_is_accepted() -> None:
    config = validate(document(mixed_periods([])), PUBLISHED)
    assert config.samples_per_minute == 500
    assert [g.period_s for g in config.period_groups] == [1, 3, 6, 7, 60]


def test_501_samples_per_minute_of_mixed_periods_is_rejected() -> None:
    errors = rejected(document(mixed_periods([60])))
    assert [e.path for e in errors] == ["measurements"]
    assert errors[0].message.startswith("501 samples per minute")


def test_a_fraction_of_a_sample_over_the_limit_is_rejected() -> None:
    # 500 + 60/7: a fractional total is reported exactly.
    errors = rejected(document(mixed_periods([7])))
    assert errors[0].message.startswith("3560/7 (≈ 508.571) samples per minute")


def test_the_rate_is_exact_where_floats_would_drift() -> None:
    # 75 × 60/9 is exactly 500; summed as floats it is 500.00000000000057.
    drift = 0.0
    for _ in range(75):
        drift += 60 / 9
    assert drift > 500
    config = validate(document(sampled(75, 9)), PUBLISHED)
    assert config.samples_per_minute == 500


def test_limits_and_entry_errors_are_reported_together() -> None:
    measurements = sampled(5_001, 1)
    measurements[4711]["period_s"] = 2.5
    errors = rejected(document(measurements, [alarm(f"a{i}") for i in range(101)]))
    found = [e.path for e in errors]
    assert found == ["measurements", "measurements", "alarms", "measurements[4711].period_s"]


def test_limit_errors_are_listed_first_even_behind_thousands_of_entry_errors() -> None:
    """Issue 9.6: 5,001 measurements, each naming a device the topology lacks."""
    measurements = [
        {"device": f"gone-{k}", "measurement": "M1", "period_s": 1} for k in range(5_001)
    ]
    alarms = [alarm(f"a{i}", device=f"gone-{i}") for i in range(101)]
    errors = rejected(document(measurements, alarms))
    assert len(errors) == MAX_ERRORS
    assert [(e.path, e.message.split(";")[0]) for e in errors[:3]] == [
        ("measurements", "5001 measurements"),
        ("measurements", "300060 samples per minute (sum of 60 / period_s)"),
        ("alarms", "101 alarms"),
    ]
    assert all(e.path.startswith("measurements[") for e in errors[3:-1])
    assert errors[-1].message == f"… {3 + 5_001 + 101 - (MAX_ERRORS - 1)} more errors not listed"
    assert "at most 5,000" in errors[0].message


# --- parsing bytes -------------------------------------------------------------------------


def test_bytes_are_parsed_strictly() -> None:
    good = json.dumps(document()).encode()
    assert validate_bytes(good, PUBLISHED).version == "17"
    for raw, needle in [
        (good.replace(b"253.0", b"NaN"), "NaN is not a JSON number"),
        (good.replace(b"253.0", b"Infinity"), "Infinity is not a JSON number"),
        (good.replace(b"253.0", b"-Infinity"), "-Infinity is not a JSON number"),
        (good[:-3], "not valid JSON"),
        (b"", "not valid JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[" * 200_000 + b"]" * 200_000, "nested too deeply"),
        (b"1" * 10_000, "not valid JSON"),
    ]:
        with pytest.raises(RemoteConfigRejected) as caught:
            validate_bytes(raw, PUBLISHED)
        assert [e.path for e in caught.value.errors] == ["(document)"]
        assert needle in caught.value.errors[0].message, caught.value.errors


def test_deep_junk_in_an_unknown_field_is_ignored_when_parsed() -> None:
    doc = document()
    junk: Any = []
    for _ in range(500):
        junk = [junk, {"k": junk}] if len(str(junk)) < 1000 else [junk]
    doc["junk"] = junk
    assert validate_bytes(json.dumps(doc).encode(), PUBLISHED).version == "17"


def test_a_50_mb_document_is_refused_before_parsing() -> None:
    filler = {"device": "mb-1", "measurement": "M1", "period_s": 60}
    one = json.dumps(filler).encode()
    raw = b'{"version":"x","measurements":[' + b",".join([one] * (50_000_000 // len(one))) + b"]}"
    assert len(raw) > 49_000_000
    with pytest.raises(RemoteConfigRejected) as caught:
        parse_document(raw)
    (error,) = caught.value.errors
    assert error.path == "(document)"
    assert f"at most {MAX_DOCUMENT_BYTES:,} bytes" in error.message


def test_a_huge_bad_document_gives_a_bounded_report() -> None:
    """Just under the size guard, every entry wrong: the report still fits one hub request."""
    entry = {"device": "d" * 5_000, "measurement": "m" * 5_000, "period_s": -1}
    count = (MAX_DOCUMENT_BYTES - 20_000) // (len(json.dumps(entry)) + 2)
    raw = json.dumps(
        {"version": "v" * 10_000, "measurements": [entry] * count, "alarms": [], "publisher": {}}
    ).encode()
    assert len(raw) <= MAX_DOCUMENT_BYTES
    with pytest.raises(RemoteConfigRejected) as caught:
        validate_bytes(raw, PUBLISHED)
    errors = caught.value.errors
    assert len(errors) == MAX_ERRORS
    assert errors[-1].path == "(document)"
    assert errors[-1].message == f"… {1 + 2 * count + 1 - (MAX_ERRORS - 1)} more errors not listed"
    body = json.dumps(report_body(caught.value, version="v-etag")).encode()
    assert len(body) < 256_000


def test_exactly_max_errors_are_all_listed() -> None:
    measurements = [{"device": d, "measurement": m, "period_s": 0} for d, m in PAIRS[:MAX_ERRORS]]
    errors = rejected(document(measurements))
    assert len(errors) == MAX_ERRORS
    assert all(e.path.endswith(".period_s") for e in errors)


# --- the report ----------------------------------------------------------------------------


def test_report_bodies() -> None:
    config = validate(document(), PUBLISHED)
    assert report_body(config) == {"version": "17", "status": "applied", "errors": []}
    with pytest.raises(RemoteConfigRejected) as caught:
        validate(document(alarms=[alarm("a1", threshold="high")]), PUBLISHED)
    assert caught.value.version == "17"
    assert report_body(caught.value) == {
        "version": "17",
        "status": "rejected",
        "errors": [
            {"path": "alarms[0].threshold", "message": "must be a finite number, got 'high'"}
        ],
    }
    # An unreadable document is reported under the version the hub served (its ETag).
    with pytest.raises(RemoteConfigRejected) as unreadable:
        validate_bytes(b"{oops", PUBLISHED)
    assert unreadable.value.version is None
    body = report_body(unreadable.value, version="18")
    assert body["version"] == "18"
    assert body["status"] == "rejected"
    assert body["errors"][0]["path"] == "(document)"


def test_a_remote_config_is_immutable() -> None:
    config = validate(document(), PUBLISHED)
    with pytest.raises(AttributeError):
        config.version = "18"  # type: ignore[misc]
    assert isinstance(config.measurements, tuple)
    assert isinstance(config, RemoteConfig)
