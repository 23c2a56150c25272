"""Applying a valid remote configuration: what changes, progress by section, one swap.

The gateway passes a *preparer* that builds, section by section (measurements,
alarms, publisher) and reporting progress, what the new configuration needs
to be put in force, and returns it; applying then persists the configuration
in one transaction and swaps the in-memory reference. If the preparer or the
store fails, nothing is swapped and nothing is persisted: the old
configuration stays applied, whole.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from panelfast.exceptions import RemoteConfigReadOnly, RemoteConfigRejected
from panelfast.remote_config._model import RemoteConfig
from panelfast.remote_config._store import ConfigStore

__all__ = [
    "MANAGED_SETTINGS",
    "SECTIONS",
    "Applied",
    "AppliedConfig",
    "ApplyPlan",
    "ApplyProgress",
    "Preparer",
    "ProgressCallback",
    "Section",
    "SectionProgress",
    "ensure_local_change_allowed",
    "plan_apply",
]

Section = Literal["measurements", "alarms", "publisher"]
SECTIONS: tuple[Section, ...] = ("measurements", "alarms", "publisher")

Key = tuple[str, str]


@dataclass(frozen=True, slots=True)
class ApplyPlan:
    """The difference between the applied configuration and a new one."""

    previous_version: str | None
    new: RemoteConfig
    measurements_added: tuple[Key, ...]
    measurements_removed: tuple[Key, ...]
    #: Still sampled, at another period.
    measurements_changed: tuple[Key, ...]
    alarms_added: tuple[str, ...]
    alarms_removed: tuple[str, ...]
    alarms_changed: tuple[str, ...]
    publisher_changed: bool

    def changes(self, section: Section) -> int:
        """How many items of ``section`` change (the progress total of that section)."""
        if section == "measurements":
            return (
                len(self.measurements_added)
                + len(self.measurements_removed)
                + len(self.measurements_changed)
            )
        if section == "alarms":
            return len(self.alarms_added) + len(self.alarms_removed) + len(self.alarms_changed)
        return int(self.publisher_changed)

    @property
    def unchanged(self) -> bool:
        return not any(self.changes(section) for section in SECTIONS)


def plan_apply(current: RemoteConfig | None, new: RemoteConfig) -> ApplyPlan:
    """What applying ``new`` over ``current`` (None: nothing applied yet) changes."""
    # m[1:3] is (device, measurement): slicing the named tuple is the cheapest
    # way to build 2 × 5,000 keys, and this runs on every apply.
    old_periods = {m[1:3]: m.period_s for m in current.measurements} if current else {}
    new_periods = {m[1:3]: m.period_s for m in new.measurements}
    old_alarms = {a.id: a for a in current.alarms} if current else {}
    new_alarms = {a.id: a for a in new.alarms}
    return ApplyPlan(
        previous_version=current.version if current else None,
        new=new,
        measurements_added=tuple(k for k in new_periods if k not in old_periods),
        measurements_removed=tuple(k for k in old_periods if k not in new_periods),
        measurements_changed=tuple(k for k, p in new_periods.items() if old_periods.get(k, p) != p),
        alarms_added=tuple(i for i in new_alarms if i not in old_alarms),
        alarms_removed=tuple(i for i in old_alarms if i not in new_alarms),
        alarms_changed=tuple(
            i for i, a in new_alarms.items() if i in old_alarms and old_alarms[i] != a
        ),
        publisher_changed=current is None or current.publisher_period_s != new.publisher_period_s,
    )


@dataclass(frozen=True, slots=True)
class ApplyProgress:
    """Where applying stands: ``done`` of ``total`` changes in ``section``."""

    section: Section
    done: int
    total: int

    @property
    def fraction(self) -> float:
        """Overall progress in [0, 1]: each section weighs a third."""
        step = SECTIONS.index(self.section)
        within = 1.0 if self.total == 0 else min(self.done, self.total) / self.total
        return (step + within) / len(SECTIONS)


ProgressCallback = Callable[[ApplyProgress], None]

T = TypeVar("T")


class SectionProgress:
    """Progress of one apply, section by section, for a preparer to report through.

    ``start(section)`` opens a section (every section before it is then
    complete) and returns the function to call with the count of its items
    done so far.
    """

    def __init__(self, plan: ApplyPlan, report: ProgressCallback) -> None:
        self._plan = plan
        self._report = report
        self._next = 0

    def start(self, section: Section) -> Callable[[int], None]:
        self._complete_until(SECTIONS.index(section))
        total = self._plan.changes(section)
        self._report(ApplyProgress(section, 0, total))
        self._next = SECTIONS.index(section) + 1

        def tick(done: int) -> None:
            self._report(ApplyProgress(section, done, total))

        return tick

    def finish(self) -> None:
        self._complete_until(len(SECTIONS))

    def _complete_until(self, stop: int) -> None:
        for section in SECTIONS[self._next : stop]:
            total = self._plan.changes(section)
            self._report(ApplyProgress(section, 0, total))
            self._report(ApplyProgress(section, total, total))
        self._next = max(self._next, stop)


#: Builds what a configuration needs to be put in force (e.g. the new sampling
#: set) without making it live, reporting through the progress; returns it.
Preparer = Callable[[ApplyPlan, SectionProgress], T]


@dataclass(frozen=True, slots=True)
class Applied(Generic[T]):
    """An applied configuration's plan, and what its preparer built."""

    plan: ApplyPlan
    built: T


class AppliedConfig:
    """The in-memory applied configuration, swapped whole on apply.

    Readers take :attr:`current` (one reference read) and see the old or the
    new configuration, never a mix. With a store, the configuration applied
    before a restart is loaded back.
    """

    def __init__(self, store: ConfigStore | None = None) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._current = store.applied() if store is not None else None

    @property
    def current(self) -> RemoteConfig | None:
        return self._current

    def apply(
        self,
        new: RemoteConfig,
        on_progress: ProgressCallback | None = None,
        prepare: Preparer[T] | None = None,
    ) -> Applied[T | None]:
        """Prepare, persist, then swap; on any failure nothing changes."""
        with self._lock:
            plan = plan_apply(self._current, new)
            progress = SectionProgress(plan, on_progress or (lambda _progress: None))
            built = prepare(plan, progress) if prepare is not None else None
            progress.finish()
            if self._store is not None:
                self._store.save_applied(new)
            self._current = new
        return Applied(plan, built)

    def reject(self, rejection: RemoteConfigRejected, version: str | None = None) -> None:
        """Record a rejected document's version (the applied configuration stays)."""
        if self._store is not None:
            self._store.save_rejected(version or rejection.version or "", rejection.errors)

    def ensure_local_change_allowed(self, what: str) -> None:
        """:func:`ensure_local_change_allowed`, naming the applied version."""
        ensure_local_change_allowed(what, self._current.version if self._current else None)


#: What the remote configuration imposes; no local page, command or API changes it (§6).
MANAGED_SETTINGS = frozenset({"measurements", "sampling", "alarms", "publisher", "publication"})


def ensure_local_change_allowed(what: str, version: str | None = None) -> None:
    """Refuse a local change to something the cloud manages.

    ``what`` names the setting as a path (``alarms``, ``alarms[a1].threshold``,
    ``publisher.period_s``); its first segment decides. Anything else (device
    connections, the local page's password) is the user's to change.
    """
    if what.strip().lower() == "publication.method":
        return  # where alarms go (cloud, email, none) is the user's; the period is the cloud's
    head = what.strip().split(".", 1)[0].split("[", 1)[0].lower()
    if head in MANAGED_SETTINGS:
        raise RemoteConfigReadOnly(what, version)
