"""Readings carried across a change of the device set (a live reload).

The Modbus engine takes its devices at construction, so a reload builds a new
engine. It cannot poll before the old one has let go of the devices (a serial
port is opened by one engine at a time, and a meter may take one Modbus TCP
client only): for a moment, nothing is read. :class:`CarriedReadings` fills
that moment for the devices that did not change (same connection, same
model): their last readings from the old engine stay in the snapshots, under
their new indices and with their true read times, until the new engine has
read them again or they are too old to count (the freshness limit decides
then, as for any reading). A sample is never the old value presented as new.

Everything here is whole-array work on the engine's raw arrays (read times
on the system clock, converted by the caller like every other).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from panelfast._native import ModbusEngine

__all__ = ["CarriedReadings", "RawArrays"]

#: values, integers, valid, read_at_ms (system clock): the engine's snapshot.
RawArrays = tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.bool_], NDArray[np.int64]]


class CarriedReadings:
    """The old engine's readings of the unchanged devices, laid over the new snapshots.

    ``spans`` lists, per carried device, ``(old first index, new first index,
    point count)``; ``until_ms`` (system clock) is when the last of them can no
    longer be fresh: past it, nothing is carried any more.
    """

    def __init__(
        self, old: ModbusEngine, spans: Sequence[tuple[int, int, int]], until_ms: int
    ) -> None:
        self._old: ModbusEngine | None = old
        self._final: RawArrays | None = None
        self._final_texts: dict[int, str] = {}
        self._spans = tuple(spans)
        self._src = np.concatenate(
            [np.arange(a, a + n, dtype=np.int64) for a, _, n in spans] or [np.empty(0, np.int64)]
        )
        self._dst = np.concatenate(
            [np.arange(b, b + n, dtype=np.int64) for _, b, n in spans] or [np.empty(0, np.int64)]
        )
        self.until_ms = until_ms

    def old_stopped(self) -> None:
        """The old engine stopped: keep its last readings, and let it go."""
        if self._old is not None:
            self._final = self._old.snapshot()
            self._final_texts = self._old.texts()
            self._old = None

    def _old_arrays(self) -> tuple[RawArrays, dict[int, str]]:
        if self._old is not None:
            return self._old.snapshot(), self._old.texts()
        assert self._final is not None
        return self._final, self._final_texts

    def fill(self, arrays: RawArrays, texts: dict[int, str], now_ms: int) -> bool:
        """Lay the carried readings newer than the new engine's over ``arrays`` (in
        place) and ``texts``; False once nothing is left to carry."""
        if now_ms > self.until_ms or self._src.size == 0:
            self._old = None
            return False
        (old_v, old_i, old_ok, old_t), old_texts = self._old_arrays()
        values, integers, valid, read_at = arrays
        newer = old_t[self._src] > read_at[self._dst]
        if not newer.any():
            # Every carried point was read again (or never was): done once the
            # old engine cannot read any more.
            return self._old is not None
        src, dst = self._src[newer], self._dst[newer]
        values[dst] = old_v[src]
        integers[dst] = old_i[src]
        valid[dst] = old_ok[src]
        read_at[dst] = old_t[src]
        for index, text in old_texts.items():
            moved = self._moved(index)
            if moved is not None and moved not in texts:
                texts[moved] = text
        return True

    def _moved(self, old_index: int) -> int | None:
        for old_first, new_first, count in self._spans:
            if old_first <= old_index < old_first + count:
                return new_first + old_index - old_first
        return None
