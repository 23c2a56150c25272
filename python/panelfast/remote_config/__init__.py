"""Remote configuration (cloud protocol §6): validate whole, apply atomically, read-only.

The cloud decides which measurements are sampled and how often, which alarms
are watched and how often data is published. A document is validated whole
against the last published topology (:func:`validate`, :func:`validate_bytes`);
a valid one becomes an immutable :class:`RemoteConfig`, applied at once by
:class:`AppliedConfig` and kept across restarts by :class:`ConfigStore`; an
invalid one raises :class:`~panelfast.exceptions.RemoteConfigRejected` naming
every problem by path. :func:`report_body` gives the report sent back.
"""

from panelfast.remote_config._apply import (
    MANAGED_SETTINGS,
    SECTIONS,
    Applied,
    AppliedConfig,
    ApplyPlan,
    ApplyProgress,
    Preparer,
    ProgressCallback,
    Section,
    SectionProgress,
    ensure_local_change_allowed,
    plan_apply,
)
from panelfast.remote_config._model import (
    AlarmCondition,
    AlarmRule,
    PeriodGroup,
    RemoteConfig,
    SampledMeasurement,
    Severity,
)
from panelfast.remote_config._store import ConfigStore, ReceivedVersion
from panelfast.remote_config._switchover import ConfigHub, RemoteConfigStatus, Switchover
from panelfast.remote_config._validate import (
    DOCUMENT_PATH,
    MAX_ALARMS,
    MAX_DOCUMENT_BYTES,
    MAX_ERRORS,
    MAX_MEASUREMENTS,
    MAX_SAMPLES_PER_MINUTE,
    MAX_VERSION_LENGTH,
    parse_document,
    report_body,
    restore,
    validate,
    validate_alarms,
    validate_bytes,
)

__all__ = [
    "DOCUMENT_PATH",
    "MANAGED_SETTINGS",
    "MAX_ALARMS",
    "MAX_DOCUMENT_BYTES",
    "MAX_ERRORS",
    "MAX_MEASUREMENTS",
    "MAX_SAMPLES_PER_MINUTE",
    "MAX_VERSION_LENGTH",
    "SECTIONS",
    "AlarmCondition",
    "AlarmRule",
    "Applied",
    "AppliedConfig",
    "ApplyPlan",
    "ApplyProgress",
    "ConfigHub",
    "ConfigStore",
    "PeriodGroup",
    "Preparer",
    "ProgressCallback",
    "ReceivedVersion",
    "RemoteConfig",
    "RemoteConfigStatus",
    "SampledMeasurement",
    "Section",
    "SectionProgress",
    "Severity",
    "Switchover",
    "ensure_local_change_allowed",
    "parse_document",
    "plan_apply",
    "report_body",
    "restore",
    "validate",
    "validate_alarms",
    "validate_bytes",
]
