"""Cloud commands (protocol §9, §10): outputs remote control, schedules, log upload.

- :class:`CommandService`: the one object the gateway constructs and runs
  (the commands long poll and results, output state reports, schedules,
  the outputs watch, the diagnostics bundle); :class:`OutputsStatus` is its
  part of the gateway's status, :class:`OutputInfo` one output,
  :class:`StoredSchedule` one schedule. :class:`OutputControl` switches
  outputs (the CLI uses it alone when no daemon runs).
- Outputs remote control, off by default: :data:`RISK` is what enabling it
  asks the user to confirm (:func:`enable_remote_control` refuses without,
  :func:`confirms` checks a confirmation sent back);
  :func:`remote_control_status`, :func:`disable_remote_control`.
- :class:`CommandStore`: the durable state (SQLite), which the CLI opens when
  no daemon runs; :class:`HistoryEntry`: one line of the command history.
- :class:`RecentLogs`: the ring of recent log lines the bundle carries.
"""

from panelfast.commands._bundle import BundleParts, RecentLogs, build_bundle, settings_secrets
from panelfast.commands._calendar import Occurrence, occurrences
from panelfast.commands._model import (
    InvalidCommand,
    OutputRef,
    Schedule,
    ScheduleEntry,
    parse_command,
)
from panelfast.commands._outputs import OutputControl, OutputInfo, SwitchResult
from panelfast.commands._remote_control import (
    RISK,
    RemoteControlStatus,
    confirms,
    disable_remote_control,
    enable_remote_control,
    remote_control_status,
)
from panelfast.commands._scheduler import StoredSchedule, stored_schedules
from panelfast.commands._service import STORE_FILE, CommandService, OutputsStatus
from panelfast.commands._store import CommandStore, HistoryEntry, KnownState

__all__ = [
    "RISK",
    "STORE_FILE",
    "BundleParts",
    "CommandService",
    "CommandStore",
    "HistoryEntry",
    "InvalidCommand",
    "KnownState",
    "Occurrence",
    "OutputControl",
    "OutputInfo",
    "OutputRef",
    "OutputsStatus",
    "RecentLogs",
    "RemoteControlStatus",
    "Schedule",
    "ScheduleEntry",
    "StoredSchedule",
    "SwitchResult",
    "build_bundle",
    "confirms",
    "disable_remote_control",
    "enable_remote_control",
    "occurrences",
    "parse_command",
    "remote_control_status",
    "settings_secrets",
    "stored_schedules",
]
