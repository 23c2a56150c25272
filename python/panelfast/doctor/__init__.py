"""``panelfast doctor``: does this site give the gateway what it needs?

The checks run in the order a site's problems are found and fixed: the way to
the cloud layer by layer (DNS of each firewall host, TCP to HTTPS, the proxy's
answer, the TLS chain and its expiry), the clock against the NTP server, the
claim key's file mode, storage space against the outbox quota, then each
Modbus device's reachability and identity. Each :class:`Check` says what it
found and, when it fails, the fix.
"""

from __future__ import annotations

from collections.abc import Iterator

from panelfast.cloud import StateStore
from panelfast.config import Settings
from panelfast.doctor._check import Check
from panelfast.doctor._network import cloud_checks
from panelfast.doctor._site import claim_key_check, clock_check, device_checks, storage_check

__all__ = ["Check", "run_checks"]


def run_checks(settings: Settings, *, timeout_s: float = 5.0) -> Iterator[Check]:
    """Every check, in order, each yielded as soon as it is done."""
    # What the last bootstrap named (hub, upload, NTP server); read, never written.
    state = StateStore(settings.storage.dir).load()
    yield from cloud_checks(settings, state, timeout_s)
    yield clock_check(settings, state, timeout_s)
    yield claim_key_check(settings)
    yield storage_check(settings)
    yield from device_checks(settings, timeout_s)
