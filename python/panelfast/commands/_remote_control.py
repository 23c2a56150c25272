"""Outputs remote control: off by default, enabled only with an explicit confirmation.

While it is disabled, every ``output`` and ``schedule`` command from the cloud
is rejected with ``remote_control_disabled`` and stored schedules do not act:
nothing is written to any device. The state lives in the command store
(SQLite, ``synchronous=FULL``), so it survives restarts and power cuts, and
every change is audited. Enabling names the risk and refuses unless the
caller confirms it (:data:`RISK`): the CLI asks, or takes
``--yes-i-understand``; the control API and the web page will pass the
user's explicit confirmation the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

from panelfast.clock import Clock
from panelfast.commands._store import CommandStore
from panelfast.exceptions import RemoteControlNotConfirmed

__all__ = [
    "RISK",
    "RemoteControlStatus",
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

    @property
    def scheduling_active(self) -> bool:
        """What the page header shows as "Control scheduling"."""
        return self.enabled and self.schedules > 0


def remote_control_status(store: CommandStore) -> RemoteControlStatus:
    saved = store.setting(_KEY) or {}
    changed = saved.get("changed_at_ms")
    return RemoteControlStatus(
        enabled=saved.get("enabled") is True,
        changed_at_ms=changed if isinstance(changed, int) else None,
        schedules=len(store.schedules()),
    )


def enable_remote_control(
    store: CommandStore, clock: Clock, *, confirmed: bool, source: str = "local"
) -> RemoteControlStatus:
    """Enable it; refuses with :class:`RemoteControlNotConfirmed` unless ``confirmed``."""
    if not confirmed:
        raise RemoteControlNotConfirmed(RISK)
    now_ms = clock.now_ms()
    store.set_setting(
        _KEY,
        {"enabled": True, "changed_at_ms": now_ms, "confirmed": RISK},
        now_ms,
        audit={"source": source, "kind": "remote_control", "status": "enabled", "reason": RISK},
    )
    return remote_control_status(store)


def disable_remote_control(
    store: CommandStore, clock: Clock, *, source: str = "local"
) -> RemoteControlStatus:
    """Disable it: commands are rejected and schedules stop acting, at once."""
    now_ms = clock.now_ms()
    store.set_setting(
        _KEY,
        {"enabled": False, "changed_at_ms": now_ms},
        now_ms,
        audit={"source": source, "kind": "remote_control", "status": "disabled"},
    )
    return remote_control_status(store)
