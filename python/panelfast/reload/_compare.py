"""What a configuration file read again changes, and what of it may change live.

Only the devices (and the model folders they are read with) and the local
settings (:data:`~panelfast.local_settings.LOCAL_SETTINGS`) change while the
gateway runs. Everything else is opened or handed out when ``panelfast run``
starts, or is who the gateway is: a change of it is refused, with the reason,
and nothing of the file is applied. An unknown key is refused too: what is
not known to be safe live waits for a restart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from panelfast.config import DeviceSettings, Settings
from panelfast.exceptions import ConfigIssue
from panelfast.local_settings import LOCAL_SETTINGS
from panelfast.models import DeviceModel

__all__ = ["LOCAL_TAKES_EFFECT", "DeviceChanges", "Effect", "refusals", "setting_changes"]

#: When a local setting changed in the file is in force: ``now``, or at the
#: next start of ``panelfast run`` (it is kept in the running configuration,
#: as ``panelfast set`` keeps it, and the file has it).
Effect = Literal["now", "next start"]

#: (A local setting not listed: at the next start.)
LOCAL_TAKES_EFFECT: dict[str, Effect] = {
    # The outbox judges its quota at each write.
    "storage.quota_mb": "now",
    # Alarm transitions go where the method says from the next one on.
    "publication.method": "now",
    # Read when the cloud session opens its connection and its clock synchronisation.
    "cloud.request_timeout_s": "next start",
    "time.mode": "next start",
    "time.ntp_server": "next start",
}

#: What the devices are read with: their model files' folders.
_LIVE = ("gateway.model_dirs",)

_RESTART = "stop panelfast run and start it again with the new file"

#: Key prefix → why it cannot change while the gateway runs.
_WHY: tuple[tuple[str, str], ...] = (
    ("identity", "the gateway's identity cannot change while it runs: the cloud knows it by it"),
    (
        "storage.dir",
        "the outbox, the remote configuration in force and the cloud session are kept in "
        "this folder: it cannot change while the gateway runs; stop panelfast run, move the "
        "folder, then start it with the new file",
    ),
    ("control", f"the control API listens there from the start; {_RESTART}"),
    ("metrics", f"the metrics listener is opened at the start; {_RESTART}"),
    ("web", f"the web pages' listener, certificate and logins are set up at the start; {_RESTART}"),
    ("logging", f"the log is set up at the start; {_RESTART}"),
    ("cloud", f"the cloud connection is set up with it at the start; {_RESTART}"),
    ("email", f"email publication is set up at the start; {_RESTART}"),
)


def _under(key: str, prefix: str) -> bool:
    return key == prefix or key.startswith(prefix + ".")


def _leaves(value: object, prefix: str = "") -> dict[str, object]:
    """A nested document as ``{"section.key": value}`` (lists are one value)."""
    if isinstance(value, Mapping):
        out: dict[str, object] = {}
        for key, inner in value.items():
            out.update(_leaves(inner, f"{prefix}.{key}" if prefix else str(key)))
        if not out and prefix:
            out[prefix] = {}
        return out
    return {prefix: value}


def _changed_keys(running: Settings, new: Settings) -> list[str]:
    before = _leaves(running.model_dump(mode="json", exclude={"devices"}))
    after = _leaves(new.model_dump(mode="json", exclude={"devices"}))
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def refusals(running: Settings, new: Settings) -> list[ConfigIssue]:
    """Each changed key that cannot change while the gateway runs, with the reason."""
    issues = []
    for key in _changed_keys(running, new):
        if key in LOCAL_SETTINGS or any(_under(key, live) for live in _LIVE):
            continue
        why = next(
            (reason for prefix, reason in _WHY if _under(key, prefix)),
            f"cannot change while the gateway runs; {_RESTART}",
        )
        issues.append(ConfigIssue(key, why))
    return issues


def setting_changes(running: Settings, new: Settings) -> list[str]:
    """The local settings the new file changes."""
    return [key for key in _changed_keys(running, new) if key in LOCAL_SETTINGS]


@dataclass(frozen=True, slots=True)
class DeviceChanges:
    """How the new device set differs from the running one."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    #: Same id, other settings or another model (or the same model, edited).
    changed: tuple[str, ...]
    #: Polled as before (same connection, same model): their readings carry over.
    unchanged_polling: tuple[str, ...]
    #: The engine must be rebuilt: the polled set, its order or a device's polling changed.
    repoll: bool

    @classmethod
    def between(
        cls,
        running: tuple[DeviceSettings, ...],
        running_models: Mapping[str, DeviceModel],
        new: tuple[DeviceSettings, ...],
        new_models: Mapping[str, DeviceModel],
    ) -> DeviceChanges:
        before = {d.id: d for d in running}
        after = {d.id: d for d in new}
        both = [d for d in after if d in before]

        def same_polling(device_id: str) -> bool:
            return (
                before[device_id].connection == after[device_id].connection
                and running_models[device_id] == new_models[device_id]
            )

        return cls(
            added=tuple(d for d in after if d not in before),
            removed=tuple(d for d in before if d not in after),
            changed=tuple(
                d for d in both if before[d] != after[d] or running_models[d] != new_models[d]
            ),
            unchanged_polling=tuple(d for d in both if same_polling(d)),
            repoll=list(before) != list(after) or not all(same_polling(d) for d in both),
        )

    @property
    def any(self) -> bool:
        return bool(self.added or self.removed or self.changed or self.repoll)
