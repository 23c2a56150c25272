"""Property tests: valid documents round-trip, malformed ones are rejected, never a crash."""

from __future__ import annotations

import copy
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from panelfast.exceptions import RemoteConfigRejected
from panelfast.remote_config import (
    MAX_ERRORS,
    AppliedConfig,
    ConfigStore,
    RemoteConfig,
    report_body,
    validate,
    validate_bytes,
)

PUBLISHED = frozenset((f"mb-{d}", f"M{m}") for d in range(10) for m in range(20))
PAIRS = sorted(PUBLISHED)

ids = st.from_regex(r"[A-Za-z0-9_.-]{1,64}", fullmatch=True)
finite = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-(10**15), 10**15))
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=30,
)

#: What a strict JSON parser accepts (no NaN or Infinity): for unknown fields of valid documents.
strict_json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=20),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=30,
)


def attempt(document: object) -> RemoteConfig | RemoteConfigRejected:
    """Validate, returning the rejection instead of raising it."""
    try:
        return validate(document, PUBLISHED)
    except RemoteConfigRejected as rejection:
        return rejection


def maybe_float(value: int) -> st.SearchStrategy[int | float]:
    """An integer as JSON may carry it: 60 or 60.0."""
    return st.sampled_from([value, float(value)]) if value < 2**53 else st.just(value)


@st.composite
def valid_documents(draw: st.DrawFn, min_entries: int = 0) -> dict[str, Any]:
    pairs = draw(st.lists(st.sampled_from(PAIRS), unique=True, min_size=min_entries, max_size=50))
    measurements = []
    for device, measurement in pairs:
        # Periods of at least 6 s keep 50 measurements within 500 samples per minute.
        period = draw(st.integers(6, 10**7).flatmap(maybe_float))
        entry: dict[str, Any] = {"device": device, "measurement": measurement, "period_s": period}
        if draw(st.booleans()):
            entry[draw(st.sampled_from(["note", "x-extra", "unit"]))] = draw(strict_json_values)
        measurements.append(entry)
    alarms = []
    for alarm_id in draw(st.lists(ids, unique=True, min_size=min_entries, max_size=20)):
        device, measurement = draw(st.sampled_from(PAIRS))
        alarm: dict[str, Any] = {
            "id": alarm_id,
            "device": device,
            "measurement": measurement,
            "condition": draw(st.sampled_from(["over", "under"])),
            "threshold": draw(finite),
            "hysteresis": draw(
                st.floats(min_value=0, allow_infinity=False) | st.integers(0, 10**6)
            ),
            "delay_s": draw(st.integers(0, 10**6).flatmap(maybe_float)),
        }
        if draw(st.booleans()):
            alarm["severity"] = draw(st.sampled_from(["low", "medium", "high"]))
        alarms.append(alarm)
    doc: dict[str, Any] = {
        "version": draw(st.text(min_size=1, max_size=40)),
        "measurements": measurements,
        "alarms": alarms,
        "publisher": {"period_s": draw(st.integers(1, 86_400).flatmap(maybe_float))},
    }
    if draw(st.booleans()):
        doc["future_field"] = draw(strict_json_values)
    return doc


@settings(max_examples=100, deadline=None)
@given(valid_documents())
def test_valid_documents_are_accepted_and_round_trip(doc: dict[str, Any]) -> None:
    config = validate(doc, PUBLISHED)
    assert config.version == doc["version"]
    assert [m.key for m in config.measurements] == [
        (m["device"], m["measurement"]) for m in doc["measurements"]
    ]
    assert [m.position for m in config.measurements] == list(range(len(doc["measurements"])))
    assert [m.period_s for m in config.measurements] == [
        int(m["period_s"]) for m in doc["measurements"]
    ]
    assert [a.id for a in config.alarms] == [a["id"] for a in doc["alarms"]]
    assert [a.severity for a in config.alarms] == [
        a.get("severity", "medium") for a in doc["alarms"]
    ]
    assert config.samples_per_minute <= 500
    assert sum(len(g.indices) for g in config.period_groups) == len(config.measurements)
    # Round trip, as values and as the bytes the hub would send.
    assert validate(config.to_document(), PUBLISHED) == config
    assert validate_bytes(json.dumps(doc).encode(), PUBLISHED) == config
    assert report_body(config)["status"] == "applied"


Mutation = Callable[[dict[str, Any]], str]


def _measurement(doc: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = doc["measurements"][0]
    return entry


def _alarm(doc: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = doc["alarms"][0]
    return entry


def _set(
    target: Callable[[dict[str, Any]], dict[str, Any]], key: str, value: Any, path: str
) -> Mutation:
    def mutate(doc: dict[str, Any]) -> str:
        target(doc)[key] = value
        return path

    return mutate


def _drop(target: Callable[[dict[str, Any]], dict[str, Any]], key: str, path: str) -> Mutation:
    def mutate(doc: dict[str, Any]) -> str:
        del target(doc)[key]
        return path

    return mutate


def _top(doc: dict[str, Any]) -> dict[str, Any]:
    return doc


def _publisher(doc: dict[str, Any]) -> dict[str, Any]:
    publisher: dict[str, Any] = doc["publisher"]
    return publisher


def _duplicate_measurement(doc: dict[str, Any]) -> str:
    doc["measurements"].append(dict(doc["measurements"][0]))
    return f"measurements[{len(doc['measurements']) - 1}]"


def _duplicate_alarm(doc: dict[str, Any]) -> str:
    doc["alarms"].append(dict(doc["alarms"][0]))
    return f"alarms[{len(doc['alarms']) - 1}].id"


BAD_PERIODS = [0, -1, 0.5, 1.000001, True, False, None, "60", [60], float("nan"), float("inf")]
BAD_NUMBERS = [float("nan"), float("inf"), float("-inf"), True, None, "1", {}, 10**400]

MUTATIONS: list[Mutation] = [
    _drop(_top, "version", "version"),
    _set(_top, "version", 17, "version"),
    _drop(_top, "measurements", "measurements"),
    _set(_top, "measurements", {}, "measurements"),
    _drop(_top, "alarms", "alarms"),
    _set(_top, "alarms", "none", "alarms"),
    _drop(_top, "publisher", "publisher"),
    _set(_top, "publisher", 600, "publisher"),
    _drop(_publisher, "period_s", "publisher.period_s"),
    *(_set(_publisher, "period_s", bad, "publisher.period_s") for bad in BAD_PERIODS),
    *(_set(_measurement, "period_s", bad, "measurements[0].period_s") for bad in BAD_PERIODS),
    _set(_measurement, "device", "unknown-device", "measurements[0].device"),
    _set(_measurement, "measurement", "NoSuch", "measurements[0].measurement"),
    _set(_measurement, "device", 12, "measurements[0].device"),
    _drop(_measurement, "measurement", "measurements[0].measurement"),
    _duplicate_measurement,
    _duplicate_alarm,
    _set(_alarm, "id", "bad id!", "alarms[0].id"),
    _set(_alarm, "id", None, "alarms[0].id"),
    _set(_alarm, "device", "ghost", "alarms[0].device"),
    _set(_alarm, "condition", "equal", "alarms[0].condition"),
    *(_set(_alarm, "threshold", bad, "alarms[0].threshold") for bad in BAD_NUMBERS),
    *(_set(_alarm, "hysteresis", bad, "alarms[0].hysteresis") for bad in [*BAD_NUMBERS, -1]),
    *(_set(_alarm, "delay_s", bad, "alarms[0].delay_s") for bad in [*BAD_PERIODS[1:], -5]),
    _set(_alarm, "severity", "urgent", "alarms[0].severity"),
]


@settings(max_examples=200, deadline=None)
@given(valid_documents(min_entries=1), st.sampled_from(MUTATIONS))
def test_malformed_documents_are_rejected_at_the_right_path(
    doc: dict[str, Any], mutate: Mutation
) -> None:
    path = mutate(doc)
    rejection = attempt(doc)
    assert isinstance(rejection, RemoteConfigRejected), f"accepted a document broken at {path}"
    assert path in [error.path for error in rejection.errors], rejection.errors
    body = report_body(rejection, version="etag")
    assert body["status"] == "rejected"
    json.dumps(body, allow_nan=False)  # always sendable


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        json_values,
        st.dictionaries(
            st.sampled_from(["version", "measurements", "alarms", "publisher", "other"]),
            json_values,
        ),
        st.fixed_dictionaries(
            {
                "version": json_values,
                "measurements": st.lists(
                    st.dictionaries(
                        st.sampled_from(["device", "measurement", "period_s"]), json_values
                    )
                    | json_values,
                    max_size=5,
                ),
                "alarms": st.lists(
                    st.dictionaries(
                        st.sampled_from(
                            [
                                "id",
                                "device",
                                "measurement",
                                "condition",
                                "threshold",
                                "hysteresis",
                                "delay_s",
                                "severity",
                            ]
                        ),
                        json_values,
                    ),
                    max_size=5,
                ),
                "publisher": st.dictionaries(st.just("period_s"), json_values) | json_values,
            }
        ),
    )
)
def test_junk_never_crashes(junk: object) -> None:
    result = attempt(junk)
    if isinstance(result, RemoteConfigRejected):
        assert 1 <= len(result.errors) <= MAX_ERRORS
        json.dumps(report_body(result, version="v"), allow_nan=False)
    else:
        assert validate(result.to_document(), PUBLISHED) == result


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_junk_bytes_never_crash(raw: bytes) -> None:
    with pytest.raises(RemoteConfigRejected) as caught:
        validate_bytes(raw, PUBLISHED)
    assert caught.value.errors


@settings(max_examples=20, deadline=None)
@given(
    st.lists(
        st.one_of(
            valid_documents(),
            valid_documents(min_entries=1).map(lambda d: {**d, "alarms": 1}),
            json_values,
        ),
        min_size=1,
        max_size=6,
    )
)
def test_the_store_is_never_half_changed(docs: list[object]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "rc.sqlite"
        with ConfigStore(path) as store:
            holder = AppliedConfig(store)
            expected: RemoteConfig | None = None
            for doc in docs:
                before = copy.deepcopy(doc)
                try:
                    holder.apply(validate(doc, PUBLISHED))
                    expected = holder.current
                except RemoteConfigRejected as rejection:
                    holder.reject(rejection, version="v")
                assert doc == before  # validation never changes its input
                assert holder.current == expected
                assert store.applied() == expected
        with ConfigStore(path) as reopened:
            assert reopened.applied() == expected
