"""The operator page's login: the operator token, exchanged for a signed session cookie.

The page is protected by the same secret as the operator API
(``<state>/operator_token``): a browser cannot send a bearer header, so the
operator pastes the token once into the login form and gets a cookie holding
an expiry and an HMAC of it keyed by the token. Nothing is stored on the
server; replacing the token file (and restarting) ends every session. The
cookie is ``HttpOnly; Secure; SameSite=Strict`` and scoped to the page's path,
so no other site can make the browser use it (the page changes nothing, and
its only forms, log in and log out, are same-site only).
"""

from __future__ import annotations

import hashlib
import hmac
import time

__all__ = ["COOKIE", "SESSION_S", "check_token", "new_session", "valid_session"]

COOKIE = "pf_operator"
#: How long a login lasts.
SESSION_S = 12 * 3600


def _signature(token: str, expires: int) -> str:
    message = f"operator page\n{expires}".encode()
    return hmac.new(token.encode(), message, hashlib.sha256).hexdigest()


def check_token(given: str, token: str) -> bool:
    """Whether ``given`` is the operator token (constant time)."""
    return hmac.compare_digest(given.strip().encode(), token.encode())


def new_session(token: str, *, now: float | None = None) -> str:
    """A cookie value valid for :data:`SESSION_S` seconds."""
    expires = int(time.time() if now is None else now) + SESSION_S
    return f"{expires}.{_signature(token, expires)}"


def valid_session(value: str | None, token: str, *, now: float | None = None) -> bool:
    """Whether a cookie value was made by :func:`new_session` with ``token`` and is unexpired."""
    if not value:
        return False
    expires_text, _, signature = value.partition(".")
    if not expires_text.isdigit() or len(expires_text) > 12:
        return False
    expires = int(expires_text)
    if expires <= (time.time() if now is None else now):
        return False
    return hmac.compare_digest(signature.encode(), _signature(token, expires).encode())
