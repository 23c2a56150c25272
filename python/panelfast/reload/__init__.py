"""Live reload: the configuration file read again while the gateway runs.

Triggers: ``SIGHUP`` to ``panelfast run``, ``POST /v1/reload`` on the control
API, ``panelfast reload --config F`` (through the daemon). Each reads the
daemon's configuration file again; a file with an error, or one that changes
what cannot change live, is refused with the key named, and the running
configuration stays whole.

What changes live, and when:

==============================  ===============================================
devices: added, removed,        at one sampling instant: polled from then on;
changed; ``gateway.model_dirs``  the remote configuration in force sampled and
(models are read again)          watched on the new set; no instant lost or
                                 repeated, the outbox untouched; a removed
                                 device's measurements sampled nil (as at a
                                 start); the topology must be published again
``storage.quota_mb``             now (the outbox's next write)
``publication.method``           now, as ``panelfast set`` takes it
``time.*``,                      kept in the running configuration, in force
``cloud.request_timeout_s``      at the next start (as ``panelfast set`` keeps them)
anything else                    refused with its reason: the identity, the
                                 storage folder, the control API, the metrics
                                 listener, the log, the cloud's URL, CA and
                                 proxy, email publication
==============================  ===============================================

The publication period is the cloud's (the remote configuration), never the file's.
The log level is ``panelfast run``'s option, not the file's: it is not reloaded.
Unchanged devices keep their alarm states (by definition) and their last
readings while the new engine starts; their Modbus counters start again
from zero (the new engine's; Prometheus counts that as a counter reset).
"""

from panelfast.reload._compare import (
    LOCAL_TAKES_EFFECT,
    DeviceChanges,
    Effect,
    refusals,
    setting_changes,
)
from panelfast.reload._reloader import Reloader, ReloadOutcome, SettingChange

__all__ = [
    "LOCAL_TAKES_EFFECT",
    "DeviceChanges",
    "Effect",
    "ReloadOutcome",
    "Reloader",
    "SettingChange",
    "refusals",
    "setting_changes",
]
