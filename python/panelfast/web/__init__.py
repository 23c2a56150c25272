"""The local web pages: Settings > Publication and Devices, as a Panel Server user knows them.

```
 browser ──HTTPS [web] listen──▶ Guard (login, session, CSRF) ──▶ pages (Jinja2 templates)
                                                               ──▶ control API routes (/v1/...)
                                                               ──▶ /metrics
```

Served by ``panelfast run`` when ``[web] listen`` is set (off otherwise: the
daemon then imports none of this package, nor Jinja2, argon2 or
cryptography). HTTPS always: a self-signed certificate made once and kept in
the storage folder, or the user's (``[web] certificate``, ``key``). One
user (``[web] user``, ``admin``) whose password is set with ``panelfast web
set-password``, or made at the first start and shown once. The pages are
server-side templates and one small script from the package; they follow
the control API's event stream and fetch a section again when what it shows
changes. The same control API routes as on the Unix socket are served
behind the login; changes are audited as ``web:<user>``.

- :class:`WebListener`, :func:`serve_web`: what the daemon uses.
- :class:`PasswordFile`: the password (``panelfast web set-password``).
"""

from panelfast.web._password import MIN_LENGTH, PasswordFile, WebPasswordError
from panelfast.web._server import WebListener, serve_web

__all__ = ["MIN_LENGTH", "PasswordFile", "WebListener", "WebPasswordError", "serve_web"]
