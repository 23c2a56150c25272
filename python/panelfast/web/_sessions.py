"""Web logins: sessions with an idle and an absolute expiry, and a rate limit on attempts.

A session lives in the daemon's memory only (a restart logs everyone out) and
is named by a random cookie value; the table holds its SHA-256, so a memory
dump shows no cookie. Each session has its own CSRF token, which every change
must carry in ``X-CSRF-Token``. A session ends after ``idle_s`` without a
request from the person (the page's own background reads — the event
stream, live values — do not count), ``max_s`` after the login whatever
happens, at logout, and when the password changes.

Durations are measured on the monotonic clock: a time synchronisation step
must neither end every login nor stretch one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["LoginLimiter", "Session", "Sessions"]


def _digest(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()


@dataclass(slots=True)
class Session:
    user: str
    csrf: str
    created: float
    last_seen: float
    #: The password's fingerprint at login: a changed password ends the session.
    password: str


class Sessions:
    """At most ``limit`` sessions; a new login beyond ends the least recently used."""

    def __init__(
        self,
        *,
        idle_s: float,
        max_s: float,
        limit: int = 64,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.idle_s = idle_s
        self.max_s = max_s
        self.limit = limit
        self._clock = clock
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def open(self, user: str, password: str) -> tuple[str, Session]:
        """A new session: (the cookie value, the session)."""
        self._drop_expired()
        while len(self._sessions) >= self.limit:
            self._sessions.popitem(last=False)
        cookie = secrets.token_urlsafe(32)
        now = self._clock()
        session = Session(user, secrets.token_urlsafe(32), now, now, password)
        self._sessions[_digest(cookie)] = session
        return cookie, session

    def get(self, cookie: str | None, password: str, *, activity: bool) -> Session | None:
        """The live session ``cookie`` names; ``activity`` (a person's request) keeps it."""
        if not cookie or len(cookie) > 128:
            return None
        key = _digest(cookie)
        session = self._sessions.get(key)
        if session is None:
            return None
        now = self._clock()
        if self.expires_at(session) <= now or not hmac.compare_digest(session.password, password):
            del self._sessions[key]
            return None
        if activity:
            session.last_seen = now
            self._sessions.move_to_end(key)
        return session

    def expires_at(self, session: Session) -> float:
        """When ``session`` ends unless the person does something (monotonic seconds)."""
        return min(session.created + self.max_s, session.last_seen + self.idle_s)

    def alive(self, session: Session, password: str) -> bool:
        """Whether ``session`` is still open: not expired, logged out, nor outlived by
        its password."""
        return (
            self.expires_at(session) > self._clock()
            and session.password == password
            and any(s is session for s in self._sessions.values())
        )

    def close(self, cookie: str | None) -> None:
        if cookie:
            self._sessions.pop(_digest(cookie), None)

    def now(self) -> float:
        return self._clock()

    def __len__(self) -> int:
        return len(self._sessions)

    def _drop_expired(self) -> None:
        now = self._clock()
        for key in [k for k, s in self._sessions.items() if self.expires_at(s) <= now]:
            del self._sessions[key]


class LoginLimiter:
    """At most ``attempts`` failed logins per client address in ``window_s``.

    Bounded: the addresses tracked are at most ``clients``, the least recent
    forgotten first (an attacker with that many addresses is slowed by argon2
    itself, one verification at a time).
    """

    def __init__(
        self,
        *,
        attempts: int = 5,
        window_s: float = 300.0,
        clients: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.attempts = attempts
        self.window_s = window_s
        self.clients = clients
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def wait_s(self, client: str) -> float:
        """Seconds before ``client`` may try again (0: now)."""
        failures = self._recent(client)
        if failures is None or len(failures) < self.attempts:
            return 0.0
        return max(0.0, failures[0] + self.window_s - self._clock())

    def left(self, client: str) -> int:
        """Failed attempts ``client`` may still make before it must wait."""
        failures = self._recent(client)
        return self.attempts - (len(failures) if failures is not None else 0)

    def failed(self, client: str) -> None:
        failures = self._recent(client)
        if failures is None:
            while len(self._failures) >= self.clients:
                self._failures.popitem(last=False)
            failures = self._failures[client] = deque(maxlen=self.attempts)
        failures.append(self._clock())
        self._failures.move_to_end(client)

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)

    def _recent(self, client: str) -> deque[float] | None:
        failures = self._failures.get(client)
        if failures is None:
            return None
        horizon = self._clock() - self.window_s
        while failures and failures[0] <= horizon:
            failures.popleft()
        return failures
