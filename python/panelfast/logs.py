"""The daemon's log: human lines or JSON lines, to standard error or a rotated file.

Every event of the gateway's life is logged once, where it happens, with its
fields in ``extra=``. The field ``event`` names it; the others are:

==========================  ==============================================================
``event``                   fields
==========================  ==============================================================
gateway.started / stopped   serial, devices, config_version
gateway.loop_failed         loop (and the traceback)
cloud.connect_requested     —
cloud.bootstrapped          cloud_device_id
cloud.connected             diagnostic
cloud.connection_failed     diagnostic, error, hint (an outage, a refusal)
cloud.attempt_failed        error
cloud.retry                 endpoint, attempt
cloud.disconnected          —
time.synchronised           server, offset_s
time.sync_failed            server, error
device.answering / back     device, state, previous_state
device.offline              device, state, previous_state, error
topology.published          topology_version, bytes
config.applied              config_version, measurements, samples_per_minute, alarms,
                            publisher_period_s, apply_s
config.rejected             config_version, errors (``path: message``), error_count
config.live                 config_version, from_ms (the sampling instant)
config.reloaded             source, devices_added, devices_removed, devices_changed,
                            settings (local keys), from_ms, topology_must_be_published
config.reload_refused       source, errors (``key: reason``)
sampling.instants_missed    instants, from_ms
config.poll_failed          error
config.report_failed        config_version
alarm.active / inactive     alarm, ts_ms, value
publication.failed          what (data, alarms), error
batch.refused               seq, samples, reason
batch.renumbered            seq, expected_seq
batch.split                 seq
outbox.dropped              samples, quota_bytes
outbox.compacted            chunks
web.listening               listen (and the certificate's SHA-256 in the message)
web.password_generated      file (where the password made at first start waits; never it)
web.login / login_refused   client
==========================  ==============================================================

Text lines show the message (which says the same in words); JSON lines carry
``ts`` (ISO 8601, UTC), ``level``, ``logger``, ``message`` and every field.

Secrets are never put in a log record. As a second line of defence, the
handler masks the values it is told are secret (:meth:`Redactor.watch`: the
claim key, the proxy password, the hub token) wherever they would appear.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from panelfast.clock import Clock, ClockFormatter

__all__ = ["JsonFormatter", "LogFormat", "Redactor", "configure_logging"]

LogFormat = Literal["text", "json"]

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
MASK = "********"

# Attributes every LogRecord has: anything else on a record came through ``extra=``.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (by the gateway's clock), level, logger, message,
    then the ``extra=`` fields."""

    def __init__(self, clock: Clock | None = None) -> None:
        super().__init__()
        self.clock = clock or Clock()

    def format(self, record: logging.LogRecord) -> str:
        t = record.created + self.clock.offset_s
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        # default=str: a field of another type (a Path, an enum) is written as its text.
        return json.dumps(entry, default=str, ensure_ascii=False)


class Redactor:
    """Masks secret values in formatted records; sources are asked at each record,
    so a secret that changes (the hub token, renewed) is masked in its new value too."""

    def __init__(self) -> None:
        self._sources: list[Callable[[], Iterable[str | None]]] = []

    def watch(self, source: Callable[[], Iterable[str | None]]) -> None:
        self._sources.append(source)

    def masking(self, formatter: logging.Formatter) -> logging.Formatter:
        """``formatter``, its output masked by this redactor (for another handler)."""
        return _Masking(formatter, self)

    def __call__(self, text: str) -> str:
        for source in self._sources:
            for secret in source():
                # Short values would mask ordinary words: a secret is longer than that.
                if secret and len(secret) >= 4 and secret in text:
                    text = text.replace(secret, MASK)
        return text


class _Masking(logging.Formatter):
    def __init__(self, inner: logging.Formatter, redact: Redactor) -> None:
        super().__init__()
        self._inner = inner
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        return self._redact(self._inner.format(record))


def configure_logging(
    *,
    level: str = "info",
    log_format: LogFormat = "text",
    file: Path | None = None,
    max_bytes: int = 10_000_000,
    backups: int = 5,
    clock: Clock | None = None,
) -> Redactor:
    """Send the process's log to standard error, or to ``file`` rotated at ``max_bytes``
    keeping ``backups`` older files; returns the redactor to tell secrets to."""
    handler: logging.Handler
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(
            file, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
        )
    else:
        handler = logging.StreamHandler(sys.stderr)
    # Stamped by the gateway's clock: a line about an event carries the event's own time.
    clock = clock or Clock()
    inner = JsonFormatter(clock) if log_format == "json" else ClockFormatter(TEXT_FORMAT, clock)
    redactor = Redactor()
    handler.setFormatter(_Masking(inner, redactor))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # The cloud client's HTTP library logs every request at INFO: too chatty for a daemon.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return redactor
