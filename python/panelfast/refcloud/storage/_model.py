"""The reference cloud's file: its schema, the records it hands out, the base of its parts."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from panelfast._sqlite import Database

__all__ = [
    "BatchSeries",
    "CommandRecord",
    "ConfigRecord",
    "DeviceRecord",
    "SeriesSummary",
    "UploadRecord",
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY, serial TEXT NOT NULL UNIQUE, claim_key TEXT NOT NULL,
    enrolled INTEGER NOT NULL, enrolled_at REAL NOT NULL,
    model TEXT, firmware TEXT, mac TEXT, last_bootstrap REAL);
CREATE TABLE IF NOT EXISTS tokens (
    token_hash TEXT PRIMARY KEY, device_id TEXT NOT NULL, issued_at REAL NOT NULL,
    expires_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS topologies (
    device_id TEXT NOT NULL, version TEXT NOT NULL, document TEXT NOT NULL,
    PRIMARY KEY (device_id, version));
CREATE TABLE IF NOT EXISTS topology_receipts (
    id INTEGER PRIMARY KEY, device_id TEXT NOT NULL, version TEXT NOT NULL,
    via TEXT NOT NULL, received_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS configs (
    device_id TEXT NOT NULL, version INTEGER NOT NULL, document TEXT NOT NULL,
    created_at REAL NOT NULL, PRIMARY KEY (device_id, version));
CREATE TABLE IF NOT EXISTS config_reports (
    id INTEGER PRIMARY KEY, device_id TEXT NOT NULL, version TEXT NOT NULL,
    status TEXT NOT NULL, errors TEXT NOT NULL, received_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS batches (
    device_id TEXT NOT NULL, seq INTEGER NOT NULL, digest TEXT NOT NULL, body BLOB NOT NULL,
    config_version TEXT NOT NULL, received_at REAL NOT NULL, duplicates INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (device_id, seq));
CREATE TABLE IF NOT EXISTS sample_groups (
    device_id TEXT NOT NULL, seq INTEGER NOT NULL, config_version TEXT NOT NULL,
    t0 INTEGER NOT NULL, dt INTEGER NOT NULL, n INTEGER NOT NULL,
    m BLOB NOT NULL, ends BLOB NOT NULL, vals BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS sample_groups_by_time ON sample_groups (device_id, t0);
CREATE TABLE IF NOT EXISTS alarm_events (
    event_id TEXT PRIMARY KEY, device_id TEXT NOT NULL, content TEXT NOT NULL,
    received_at REAL NOT NULL, seen INTEGER NOT NULL DEFAULT 1);
CREATE TABLE IF NOT EXISTS commands (
    num INTEGER PRIMARY KEY AUTOINCREMENT, command_id TEXT NOT NULL UNIQUE,
    device_id TEXT NOT NULL, body TEXT NOT NULL, created_at REAL NOT NULL,
    deliveries INTEGER NOT NULL DEFAULT 0, result_status TEXT, result_reason TEXT,
    result_at REAL);
CREATE TABLE IF NOT EXISTS output_states (
    id INTEGER PRIMARY KEY, device_id TEXT NOT NULL, output TEXT NOT NULL, state TEXT NOT NULL,
    ts INTEGER NOT NULL, source TEXT NOT NULL, received_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS uploads (
    upload_id TEXT PRIMARY KEY, device_id TEXT NOT NULL, kind TEXT NOT NULL,
    size INTEGER NOT NULL, sha256 TEXT NOT NULL, content_type TEXT NOT NULL,
    created_at REAL NOT NULL, received_size INTEGER, received_sha256 TEXT,
    completed_at REAL, topology_version TEXT);
CREATE TABLE IF NOT EXISTS disconnects (
    id INTEGER PRIMARY KEY, device_id TEXT NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS presence (device_id TEXT PRIMARY KEY, last_seen REAL NOT NULL);
"""


@dataclass(frozen=True)
class DeviceRecord:
    device_id: str
    serial: str
    claim_key: str
    enrolled: bool
    model: str | None
    firmware: str | None
    mac: str | None
    last_bootstrap: float | None


@dataclass(frozen=True)
class ConfigRecord:
    version: str
    document: dict[str, Any]
    created_at: float


@dataclass(frozen=True)
class BatchSeries:
    """The samples of one measurement in one group of a stored batch."""

    seq: int
    config_version: str
    device: str
    measurement: str
    t0: int
    dt: int
    values: list[float | int | None]


@dataclass(frozen=True)
class SeriesSummary:
    """What was received of one measurement: how many samples, over which instants."""

    device: str
    measurement: str
    samples: int
    first: int
    last: int


@dataclass(frozen=True)
class CommandRecord:
    command_id: str
    body: dict[str, Any]
    created_at: float
    deliveries: int
    result_status: str | None
    result_reason: str | None


@dataclass(frozen=True)
class UploadRecord:
    upload_id: str
    device_id: str
    kind: str
    size: int
    sha256: str
    content_type: str
    received_size: int | None
    received_sha256: str | None
    completed: bool
    topology_version: str | None


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


#: Version 1: the samples of a batch are kept one row per group (see ``_data``),
#: no longer one row of JSON text per measurement; an older file is converted
#: from the batch bodies it holds when it is opened.
_SCHEMA_VERSION = 1


class _Base(Database):
    """The reference cloud's SQLite file; every method of its parts is one transaction."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            path, _SCHEMA, synchronous="NORMAL", private=True, schema_version=_SCHEMA_VERSION
        )
