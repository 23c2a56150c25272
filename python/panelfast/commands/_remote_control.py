"""Outputs remote control: off by default, enabled only with an explicit confirmation.

While it is disabled, every ``output`` and ``schedule`` command from the cloud
is rejected with ``remote_control_disabled`` and stored schedules do not act:
nothing is written to any device. The state lives in the command store
(SQLite, ``synchronous=FULL``), so it survives restarts and power cuts, and
every change is audited, with who made it. Enabling names the risk and
refuses unless the caller confirms it (:data:`RISK`): the CLI asks (in a
terminal), or takes ``--yes-i-understand``; the control API and the web page
take the risk sentence itself, sent back as the user's confirmation
(:func:`confirms`).
"""

from __future__ import annotations

from dataclasses import dataclass

from panelfast.clock import Clock
from panelfast.commands._store import CommandStore
from panelfast.exceptions import RemoteControlNotConfirmed

__all__ = [
    "RISK",
    "RemoteControlStatus",
    "confirms",
    "disable_remote_control",
    "enable_remote_control",
    "remote_control_status",
]

#: What the user must confirm to enable outputs remote control.
RISK = (
    "Only allow remote and/or scheduled control of loads for non-critical electrical loads "
    "that can safely be left unattended"
)
_KEY = "remote_control"


@dataclass(frozen=True, slots=True)
class RemoteControlStatus:
    enabled: bool
    #: When it was last enabled or disabled (unix ms), None if never.
    changed_at_ms: int | None
    #: Schedules stored (they act only while remote control is enabled).
    schedules: int
    #: What the page header shows as "Control scheduling": enabled, and a schedule stored.
    scheduling_active: bool
    #: Who last changed it (``socket:uid=1000``, ``web:admin``...), None if never.
    changed_by: str | None = None
    #: What enabling it asks the user to confirm (sent back as the confirmation).
    risk: str = RISK


def confirms(confirmation: object) -> bool:
    """Whether ``confirmation`` is the risk sentence, as a page or a client sends it back
    (surrounding blanks and a final full stop aside)."""
    return isinstance(confirmation, str) and confirmation.strip().rstrip(".") == RISK


def remote_control_status(store: CommandStore) -> RemoteControlStatus:
    saved = store.setting(_KEY) or {}
    changed = saved.get("changed_at_ms")
    who = saved.get("who")
    enabled = saved.get("enabled") is True
    schedules = store.schedule_count()
    return RemoteControlStatus(
        enabled=enabled,
        changed_at_ms=changed if isinstance(changed, int) else None,
        schedules=schedules,
        scheduling_active=enabled and schedules > 0,
        changed_by=who if isinstance(who, str) else None,
    )


def enable_remote_control(
    store: CommandStore,
    clock: Clock,
    *,
    confirmed: bool,
    source: str = "local",
    who: str | None = None,
) -> RemoteControlStatus:
    """Enable it; refuses with :class:`RemoteControlNotConfirmed` unless ``confirmed``."""
    if not confirmed:
        raise RemoteControlNotConfirmed(RISK)
    now_ms = clock.now_ms()
    store.set_setting(
        _KEY,
        {"enabled": True, "changed_at_ms": now_ms, "confirmed": RISK, "who": who},
        now_ms,
        audit={
            "source": source,
            "kind": "remote_control",
            "status": "enabled",
            "reason": RISK,
            "who": who,
        },
    )
    return remote_control_status(store)


def disable_remote_control(
    store: CommandStore, clock: Clock, *, source: str = "local", who: str | None = None
) -> RemoteControlStatus:
    """Disable it: commands are rejected and schedules stop acting, at once."""
    now_ms = clock.now_ms()
    store.set_setting(
        _KEY,
        {"enabled": False, "changed_at_ms": now_ms, "who": who},
        now_ms,
        audit={"source": source, "kind": "remote_control", "status": "disabled", "who": who},
    )
    return remote_control_status(store)
