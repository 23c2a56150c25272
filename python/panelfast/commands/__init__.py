"""Cloud commands (protocol §9, §10): outputs remote control, schedules, log upload.

- :class:`CommandService`: the one object the gateway constructs and runs
  (the commands long poll and results, output state reports, schedules,
  the outputs watch, the diagnostics bundle).
- Outputs remote control, off by default: :data:`RISK` is what enabling it
  asks the user to confirm (:func:`enable_remote_control` refuses without);
  :func:`remote_control_status`, :func:`disable_remote_control`.
- :class:`CommandStore`: the durable state (SQLite), which the CLI opens when
  no daemon runs; :class:`AuditEntry`: one line of the history.
- :class:`RecentLogs`: the ring of recent log lines the bundle carries.
"""

from panelfast.commands._bundle import BundleParts, RecentLogs, build_bundle, settings_secrets
from panelfast.commands._calendar import Occurrence, occurrences
from panelfast.commands._model import InvalidCommand, OutputRef, Schedule, parse_command
from panelfast.commands._outputs import OutputInfo, SwitchResult
from panelfast.commands._remote_control import (
    RISK,
    RemoteControlStatus,
    disable_remote_control,
    enable_remote_control,
    remote_control_status,
)
from panelfast.commands._service import STORE_FILE, CommandService
from panelfast.commands._store import AuditEntry, CommandStore

__all__ = [
    "RISK",
    "STORE_FILE",
    "AuditEntry",
    "BundleParts",
    "CommandService",
    "CommandStore",
    "InvalidCommand",
    "Occurrence",
    "OutputInfo",
    "OutputRef",
    "RecentLogs",
    "RemoteControlStatus",
    "Schedule",
    "SwitchResult",
    "build_bundle",
    "disable_remote_control",
    "enable_remote_control",
    "occurrences",
    "parse_command",
    "remote_control_status",
    "settings_secrets",
]
