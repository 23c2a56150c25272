"""Switching the publication method: cloud, email (alarms) or none, one at a time.

Cloud publication and email publication of alarms are mutually exclusive (the
seed's rule). Switching from one to the other directly is refused: the user
turns the one that is on off first (method ``none``), then enables the other,
so that no alarm is ever published by both, and the switch is a deliberate
act each time. Every change is returned as a :class:`PublicationChange` for
the caller (control API, CLI) to record in the audit log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast, get_args

from panelfast.config import PublicationMethod
from panelfast.exceptions import ConfigError, ConfigIssue, PublicationConflict

__all__ = ["PublicationChange", "change_publication_method"]

_METHODS: tuple[str, ...] = get_args(PublicationMethod)
_EXCLUSIVE = frozenset({"cloud", "email"})


@dataclass(frozen=True, slots=True)
class PublicationChange:
    """A switch of the publication method, as the audit log records it."""

    previous: PublicationMethod
    method: PublicationMethod

    @property
    def changed(self) -> bool:
        return self.previous != self.method

    def audit_text(self) -> str:
        if not self.changed:
            return f"publication method unchanged ({self.method})"
        return f"publication method changed from {self.previous} to {self.method}"


def change_publication_method(current: PublicationMethod, new: object) -> PublicationChange:
    """Check switching from ``current`` to ``new``; returns the change to record.

    Raises :class:`~panelfast.exceptions.PublicationConflict` when ``new``
    is cloud or email while the other is on (saying which to turn off first),
    and :class:`~panelfast.exceptions.ConfigError` for a value that is not a
    method. Setting the method it already has is allowed and changes nothing.
    """
    if new not in _METHODS:
        allowed = ", ".join(repr(m) for m in _METHODS)
        raise ConfigError(
            "(local setting)",
            [ConfigIssue("publication.method", f"must be one of {allowed}, got {new!r}")],
        )
    requested = cast(PublicationMethod, new)
    if current in _EXCLUSIVE and requested in _EXCLUSIVE and requested != current:
        raise PublicationConflict(current, requested)
    return PublicationChange(current, requested)
