"""The control plane: one local API into the running gateway.

```
 web pages (browser) ─┐
 panelfast CLI ───────┼──▶ control API (HTTP/JSON on a Unix socket; TCP behind the web login)
 GatewayClient (Py) ──┘        │
                               ▼
                         Gateway (the daemon's, the only one)
```

The daemon (``panelfast run``) owns the gateway's state and serves
:class:`ControlApp` on its control socket (:class:`ControlServer`); one
daemon per storage directory (:class:`StorageLock`). Clients find the socket
from the configuration's storage directory: the CLI through the small
synchronous :mod:`panelfast.control.wire`, services through
:class:`panelfast.client.GatewayClient`.

The names below are loaded when first used: the CLI imports
:mod:`panelfast.control.wire` alone, and must not pay for the server.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from panelfast.control._app import ControlApp
    from panelfast.control._audit import AuditEntry, AuditLog
    from panelfast.control._lock import AlreadyRunning, StorageLock
    from panelfast.control._schema import (
        ConfigOutcome,
        DeviceStatus,
        PublicationInfo,
        PublicationSwitched,
        TestEmailSent,
    )
    from panelfast.control._server import ControlServer, EmbeddedServer, socket_path
    from panelfast.control._text import publication_text, remote_config_text

__all__ = [
    "AlreadyRunning",
    "AuditEntry",
    "AuditLog",
    "ConfigOutcome",
    "ControlApp",
    "ControlServer",
    "DeviceStatus",
    "EmbeddedServer",
    "PublicationInfo",
    "PublicationSwitched",
    "StorageLock",
    "TestEmailSent",
    "publication_text",
    "remote_config_text",
    "socket_path",
]

_WHERE = {
    "ControlApp": "_app",
    "AuditEntry": "_audit",
    "AuditLog": "_audit",
    "AlreadyRunning": "_lock",
    "StorageLock": "_lock",
    "ConfigOutcome": "_schema",
    "DeviceStatus": "_schema",
    "PublicationInfo": "_schema",
    "PublicationSwitched": "_schema",
    "TestEmailSent": "_schema",
    "ControlServer": "_server",
    "EmbeddedServer": "_server",
    "socket_path": "_server",
    "publication_text": "_text",
    "remote_config_text": "_text",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
