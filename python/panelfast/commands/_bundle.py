"""The diagnostics bundle the cloud asks for with ``upload_logs`` (§9, §10): a tar.zst.

What it holds (``manifest.json`` lists it):

``logs/recent.log``
    The gateway's recent log lines, from :class:`RecentLogs`, an in-memory
    ring attached to the ``panelfast`` logger (the newest
    :data:`RecentLogs.capacity` lines: a gateway may log to the journal
    only, so the bundle does not depend on a log file). Log files named by
    the caller are added too (``logs/<name>``, their last
    :data:`LOG_FILE_TAIL` bytes).
``config.json``
    The configuration file as loaded, with every secret removed: the proxy
    URL's password, any ``SecretStr``, any key whose name says password,
    secret or token. The claim key and the SMTP password live in files of
    their own, which are not read into it.
``topology.json``, ``devices.json``, ``status.json``, ``commands.json``, ``versions.json``
    The topology, each device's polling diagnostics, the gateway's status,
    remote control, schedules and the latest audit entries, and the versions
    of panelfast, Python and the libraries it runs on.

Then, as a last guard, every secret the gateway knows (claim key, proxy
password, cloud token, SMTP password) is searched for in every file and
replaced by ``<removed>``: a secret that slipped into a log line does not
leave the gateway either.
"""

from __future__ import annotations

import io
import json
import logging
import platform
import re
import sys
import tarfile
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr

from panelfast.config import Settings
from panelfast.exceptions import ConfigError

__all__ = ["LOG_FILE_TAIL", "BundleParts", "RecentLogs", "build_bundle", "settings_secrets"]

#: How much of each log file goes into the bundle (its end).
LOG_FILE_TAIL = 4 * 1024 * 1024
REMOVED = "<removed>"
CONTENT_TYPE = "application/zstd"
_SECRET_KEY = re.compile(r"(password|passwd|secret|token|claim_key$|api_key)", re.IGNORECASE)
_LIBRARIES = ("numpy", "httpx", "pydantic", "zstandard", "msgpack", "uvloop", "click")


class RecentLogs(logging.Handler):
    """The newest log lines, formatted, in a bounded ring (for the diagnostics bundle)."""

    def __init__(self, capacity: int = 5000) -> None:
        super().__init__()
        self.capacity = capacity
        self._lines: deque[str] = deque(maxlen=capacity)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._lines.append(self.format(record))
        except Exception:  # a log call must never fail the gateway
            self.handleError(record)

    def lines(self) -> list[str]:
        return list(self._lines)


@dataclass(frozen=True)
class BundleParts:
    """What goes into a bundle, gathered by the caller at the time it is asked for."""

    settings: Settings
    topology: bytes | None = None
    devices: Sequence[Mapping[str, Any]] = ()
    status: Mapping[str, Any] | None = None
    commands: Mapping[str, Any] | None = None
    log_lines: Sequence[str] = ()
    log_files: Sequence[Path] = ()
    #: Every secret value that must not leave the gateway (tokens, keys, passwords).
    secrets: Iterable[str] = field(default=())


def settings_secrets(settings: Settings) -> list[str]:
    """The secret values a configuration holds or names: claim key, proxy and other passwords."""
    found: list[str] = []
    try:
        key = settings.identity.claim_key().get_secret_value()
        found += [key, key.upper()]
    except ConfigError:
        pass  # an unreadable key file: no key to leak
    if settings.email is not None:
        try:
            smtp = settings.email.password()
        except ConfigError:
            smtp = None  # unreadable: nothing to leak
        if smtp is not None:
            found.append(smtp.get_secret_value())

    def walk(value: Any) -> None:
        if isinstance(value, SecretStr):
            found.append(value.get_secret_value())
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name))
        elif isinstance(value, tuple | list):
            for item in value:
                walk(item)
        elif hasattr(value, "password") and isinstance(getattr(value, "password", None), str):
            found.append(value.password)  # a URL with user:password

    walk(settings)
    return [s for s in found if s]


def _scrub(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _scrub(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, key) for v in value]
    if isinstance(value, str):
        if _SECRET_KEY.search(key) and not key.endswith("_file"):  # a file's path is no secret
            return REMOVED
        # A URL's password (http://user:password@host): keep the user, drop the password.
        return re.sub(r"(://[^/:@\s]+):[^@/\s]*@", rf"\1:{REMOVED}@", value)
    return value


def scrubbed_settings(settings: Settings) -> dict[str, Any]:
    """The configuration as JSON, secrets removed (see the module docstring)."""
    document = json.loads(settings.model_dump_json())
    return dict(_scrub(document))


def versions() -> dict[str, str]:
    from panelfast import __version__

    found = {
        "panelfast": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }
    for name in _LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def _tail(path: Path) -> bytes:
    try:
        with path.open("rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - LOG_FILE_TAIL))
            return f.read()
    except OSError as exc:
        return f"({path}: cannot read: {exc.strerror})\n".encode()


def _json(value: Any) -> bytes:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str).encode("utf-8")


def build_bundle(parts: BundleParts, created_at: float) -> bytes:
    """The bundle as tar.zst bytes; no secret of ``parts.secrets`` is in it."""
    import zstandard  # only when a bundle is asked for

    files: dict[str, bytes] = {
        "versions.json": _json(versions()),
        "config.json": _json(scrubbed_settings(parts.settings)),
        "logs/recent.log": "\n".join(parts.log_lines).encode("utf-8", "replace") + b"\n",
    }
    for path in parts.log_files:
        files[f"logs/{path.name}"] = _tail(path)
    if parts.topology is not None:
        files["topology.json"] = parts.topology
    files["devices.json"] = _json(list(parts.devices))
    if parts.status is not None:
        files["status.json"] = _json(dict(parts.status))
    if parts.commands is not None:
        files["commands.json"] = _json(dict(parts.commands))
    files["manifest.json"] = _json(
        {
            "schema": "panelfast.diagnostics/1",
            "serial": parts.settings.identity.serial,
            "created_at": created_at,
            "files": sorted(files),
        }
    )
    secrets = sorted({s for s in parts.secrets if len(s) >= 4}, key=len, reverse=True)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            data = _redact(data, secrets)
            info = tarfile.TarInfo(f"panelfast-diagnostics/{name}")
            info.size = len(data)
            info.mtime = int(created_at)
            info.mode = 0o600
            tar.addfile(info, io.BytesIO(data))
    return zstandard.ZstdCompressor(level=9).compress(buffer.getvalue())


def _redact(data: bytes, secrets: Sequence[str]) -> bytes:
    for secret in secrets:
        for form in {secret.encode(), json.dumps(secret)[1:-1].encode()}:
            data = data.replace(form, REMOVED.encode())
    return data
