"""Everything the reference cloud knows, in one SQLite file (WAL).

One connection guarded by a lock: the HTTP routes (event loop thread) and the
in-process operator API (a test's thread) both use it, and each method is one
short transaction, so a route's check-then-store runs without interleaving.
Secrets: claim keys live here, so the file is created 0600; device tokens are
stored as their SHA-256 only.
"""

from __future__ import annotations

from pathlib import Path

from panelfast.refcloud.storage._data import Data
from panelfast.refcloud.storage._devices import Devices
from panelfast.refcloud.storage._documents import Documents
from panelfast.refcloud.storage._exchange import Exchange
from panelfast.refcloud.storage._model import (
    BatchSeries,
    CommandRecord,
    ConfigRecord,
    DeviceRecord,
    SeriesSummary,
    UploadRecord,
)

__all__ = [
    "BatchSeries",
    "CommandRecord",
    "ConfigRecord",
    "DeviceRecord",
    "SeriesSummary",
    "Storage",
    "UploadRecord",
]


class Storage(Devices, Documents, Data, Exchange):
    """The reference cloud's SQLite state; every method is one transaction."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.convert_series_rows()
