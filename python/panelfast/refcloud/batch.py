"""Checking a data batch against the configuration it claims (spec §7).

The frame itself (zstd, MessagePack, the map's shape) is decoded and checked
by the Rust core's ``decode_batch``, the same code the gateway encodes with:
every sample it returns is a float, an int64 or None, the lists of a group
have one length, a group names a measurement once and a measurement's time
ranges are disjoint. What only the cloud knows is checked here: the
configuration version was issued to this device, every ``m`` names one of its
measurements, ``dt`` is that measurement's period and ``t0`` is aligned to it.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeGuard

import msgpack
import numpy as np

from panelfast import _native
from panelfast.exceptions import BatchError, RefCloudRequestError

__all__ = [
    "CheckedBatch",
    "Group",
    "IssuedConfigs",
    "Measurements",
    "batch_digest",
    "check_batch",
    "decode_batch",
]

Value = float | int | None


@dataclass(frozen=True)
class Group:
    """One group of a batch: ``v[k]`` holds measurement ``m[k]``'s samples at ``t0 + j * dt``."""

    t0: int
    dt: int
    m: list[int]
    v: list[list[Value]]

    @property
    def n(self) -> int:
        return len(self.v[0]) if self.v else 0


@dataclass(frozen=True)
class CheckedBatch:
    seq: int
    config_version: str
    digest: str
    #: The groups that hold samples, in the batch's order.
    groups: list[Group]


def _bad(message: str) -> RefCloudRequestError:
    return RefCloudRequestError(400, "invalid_payload", message)


def decode_batch(frame: bytes) -> dict[str, Any]:
    """The batch map of a zstd frame, or ``400 invalid_payload`` saying what is wrong."""
    try:
        batch: dict[str, Any] = _native.decode_batch(frame)
    except BatchError as err:
        raise _bad(f"malformed batch: {err}") from None
    return batch


def batch_digest(batch: dict[str, Any]) -> str:
    """Digest of the decoded content: the same batch encoded otherwise (float32 or
    float64, another zstd level) still compares equal. MessagePack of the decoded
    values, every float as float64: exact, and a hundred times faster than JSON."""
    content = [
        batch["seq"],
        batch["config_version"],
        [[g["t0"], g["dt"], g["m"], g["v"]] for g in batch["groups"]],
    ]
    return hashlib.sha256(msgpack.packb(content)).hexdigest()


def _period_ms(entry: object, index: int) -> int | str:
    """A measurement's period in ms, or why the configuration gives it none."""
    if not isinstance(entry, dict):
        return f"measurement {index} of the configuration is not an object"
    period = entry.get("period_s")
    if isinstance(period, bool) or not isinstance(period, int | float) or period < 1:
        return f"measurement {index} of the configuration has no valid period_s"
    return round(float(period) * 1000)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


class Measurements:
    """What batches of one configuration are checked against: each measurement's period."""

    def __init__(self, version: str, config: dict[str, Any]) -> None:
        self.version = version
        entries = config.get("measurements")
        self.problem = (
            None
            if isinstance(entries, list)
            else f"configuration {version} has no measurements list"
        )
        found = [
            _period_ms(e, k) for k, e in enumerate(entries if isinstance(entries, list) else [])
        ]
        #: Why a measurement has no period (a raw configuration, as a test may issue).
        self.problems = {k: p for k, p in enumerate(found) if isinstance(p, str)}
        self.periods = np.array([0 if isinstance(p, str) else p for p in found], np.int64)

    def check(self, where: str, group: Group) -> None:
        """Every ``m`` indexes the configuration, whose period is ``dt``; ``t0`` is aligned."""
        m = np.asarray(group.m, dtype=np.int64)
        count = len(self.periods)
        outside = np.flatnonzero((m < 0) | (m >= count))
        if outside.size:
            k = int(outside[0])
            raise _bad(
                f"{where}.m[{k}] = {group.m[k]!r} is not an index into the "
                f"{count} measurements of configuration {self.version}"
            )
        wrong = np.flatnonzero(self.periods[m] != group.dt)
        if wrong.size:
            index = group.m[int(wrong[0])]
            if index in self.problems:
                raise _bad(self.problems[index])
            raise _bad(
                f"{where}.dt = {group.dt} but measurement {index} is sampled every "
                f"{self.periods[index]} ms"
            )
        if group.t0 % group.dt:
            raise _bad(f"{where}.t0 = {group.t0} is not aligned to the period {group.dt} ms")


class IssuedConfigs:
    """The configurations issued to devices, as batches are checked against them.

    A configuration never changes once issued, and parsing one of 5,000
    measurements for every batch took longer than storing the batch: each is
    read once, and the most recent few are kept.
    """

    def __init__(self, load: Callable[[str, str], dict[str, Any] | None], keep: int = 32) -> None:
        self._load = load
        self._keep = keep
        self._known: OrderedDict[tuple[str, str], Measurements] = OrderedDict()

    def get(self, device_id: str, version: str) -> Measurements | None:
        """``version`` as issued to the device, or None if it never was."""
        key = (device_id, version)
        found = self._known.get(key)
        if found is None:
            document = self._load(device_id, version)
            if document is None:
                return None  # not kept: it may be issued later
            found = self._known[key] = Measurements(version, document)
            while len(self._known) > self._keep:
                self._known.popitem(last=False)
        self._known.move_to_end(key)
        return found


def check_batch(batch: dict[str, Any], measurements: Measurements) -> CheckedBatch:
    """Check a batch from :func:`decode_batch` against the configuration it names."""
    seq = batch.get("seq")
    if not _is_int(seq) or not 1 <= seq < 2**63:
        raise _bad(f"seq must be an integer >= 1, got {seq!r}")
    version = batch.get("config_version")
    if not isinstance(version, str):
        raise _bad("config_version must be a string")
    if measurements.problem:
        raise _bad(measurements.problem)
    groups: list[Group] = []
    for g, raw in enumerate(batch["groups"]):
        t0, dt = raw["t0"], raw["dt"]
        if t0 < 0:
            raise _bad(f"groups[{g}].t0 must be unix milliseconds, got {t0!r}")
        group = Group(t0, dt, raw["m"], raw["v"])
        if group.m:
            measurements.check(f"groups[{g}]", group)
            groups.append(group)
    return CheckedBatch(seq=seq, config_version=version, digest=batch_digest(batch), groups=groups)
