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
"""
