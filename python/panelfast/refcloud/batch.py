"""Checking a data batch against the configuration it claims (spec §7).

The frame itself (zstd, MessagePack, the map's shape) is decoded by the Rust
core's ``decode_batch``, the same code the gateway encodes with; what only the
cloud knows is checked here: the configuration version was issued to this
device, every ``m`` names one of its measurements, ``dt`` is that
measurement's period and ``t0`` is aligned to it, a measurement appears once
per group and its time ranges do not overlap across groups.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from typing import Any, TypeGuard

from panelfast import _native
from panelfast.exceptions import BatchError, RefCloudRequestError

__all__ = ["CheckedBatch", "check_batch", "decode_batch"]

Series = tuple[str, str, int, int, list[float | int | None]]
_INT64 = (-(2**63), 2**63 - 1)


@dataclass(frozen=True)
class CheckedBatch:
    seq: int
    config_version: str
    digest: str
    series: list[Series]


def _bad(message: str) -> RefCloudRequestError:
    return RefCloudRequestError(400, "invalid_payload", message)


def decode_batch(frame: bytes) -> dict[str, Any]:
    """The batch map of a zstd frame, or ``400 invalid_payload`` saying what is wrong."""
    try:
        batch: dict[str, Any] = _native.decode_batch(frame)
    except BatchError as err:
        raise _bad(f"malformed batch: {err}") from None
    return batch


def _digest(batch: dict[str, Any]) -> str:
    """Digest of the decoded content: the same batch re-encoded still compares equal."""
    text = json.dumps(batch, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _period_ms(entry: object, index: int) -> int:
    if not isinstance(entry, dict):
        raise _bad(f"measurement {index} of the configuration is not an object")
    period = entry.get("period_s")
    if isinstance(period, bool) or not isinstance(period, int | float) or period < 1:
        raise _bad(f"measurement {index} of the configuration has no valid period_s")
    return round(float(period) * 1000)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def check_batch(batch: dict[str, Any], config: dict[str, Any]) -> CheckedBatch:
    """Check a decoded batch against the configuration it names; its series to store."""
    if batch.get("v") != 1:
        raise _bad(f"unsupported batch format v={batch.get('v')!r}, expected 1")
    seq = batch.get("seq")
    if not _is_int(seq) or not 1 <= seq < 2**63:
        raise _bad(f"seq must be an integer >= 1, got {seq!r}")
    version = batch.get("config_version")
    if not isinstance(version, str):
        raise _bad("config_version must be a string")
    groups = batch.get("groups")
    if not isinstance(groups, list):
        raise _bad("groups must be a list")
    measurements = config.get("measurements")
    if not isinstance(measurements, list):
        raise _bad(f"configuration {version} has no measurements list")
    ranges: dict[int, list[tuple[int, int, int]]] = {}
    series: list[Series] = []
    for g, group in enumerate(groups):
        where = f"groups[{g}]"
        if not isinstance(group, dict):
            raise _bad(f"{where} is not a map")
        t0, dt, m, v = group.get("t0"), group.get("dt"), group.get("m"), group.get("v")
        if not _is_int(t0) or t0 < 0:
            raise _bad(f"{where}.t0 must be unix milliseconds, got {t0!r}")
        if not _is_int(dt) or dt < 1:
            raise _bad(f"{where}.dt must be an integer >= 1, got {dt!r}")
        if not isinstance(m, list) or not isinstance(v, list):
            raise _bad(f"{where}: m and v must be lists")
        if len(m) != len(v):
            raise _bad(f"{where}: {len(m)} entries in m but {len(v)} in v")
        lengths = {len(col) if isinstance(col, list) else -1 for col in v}
        if -1 in lengths:
            raise _bad(f"{where}.v: every entry must be a list")
        if len(lengths) > 1:
            raise _bad(f"{where}.v: lists of different lengths {sorted(lengths)}")
        n = lengths.pop() if lengths else 0
        if len(set(map(repr, m))) != len(m):
            raise _bad(f"{where}.m: a measurement appears twice")
        for k, index in enumerate(m):
            if not _is_int(index) or not 0 <= index < len(measurements):
                raise _bad(
                    f"{where}.m[{k}] = {index!r} is not an index into the "
                    f"{len(measurements)} measurements of configuration {version}"
                )
            entry = measurements[index]
            period = _period_ms(entry, index)
            if dt != period:
                raise _bad(
                    f"{where}.dt = {dt} but measurement {index} is sampled every {period} ms"
                )
            if t0 % dt:
                raise _bad(f"{where}.t0 = {t0} is not aligned to the period {dt} ms")
            for j, value in enumerate(v[k]):
                if value is None or isinstance(value, float):
                    continue
                if _is_int(value) and _INT64[0] <= value <= _INT64[1]:
                    continue
                raise _bad(f"{where}.v[{k}][{j}] = {value!r} is not a float, int64 or nil")
            if n:
                ranges.setdefault(index, []).append((t0, t0 + (n - 1) * dt, g))
            series.append(
                (str(entry.get("device")), str(entry.get("measurement")), t0, dt, list(v[k]))
            )
    for index, spans in ranges.items():
        spans.sort()
        for (_, end, g1), (start, _, g2) in itertools.pairwise(spans):
            if start <= end:
                raise _bad(
                    f"measurement {index} has overlapping time ranges in groups {g1} and {g2}"
                )
    return CheckedBatch(seq=seq, config_version=version, digest=_digest(batch), series=series)
