"""What the user can do about a refused bootstrap: the hint shown under the diagnostic.

The Connection diagnostics say what happened (§4); the hint says what to
check, in the seed's words: claim the serial in the cloud application, set
the time synchronisation mode to Cloud, let NTP through the firewall.
"""

from __future__ import annotations

from panelfast.cloud._identity import Identity, mask_secret
from panelfast.cloud._timesync import SyncStatus
from panelfast.exceptions import BadCredentials, CloudError, NotRegistered

__all__ = ["explain"]


def explain(exc: CloudError, identity: Identity, time: SyncStatus, mode: str) -> None:
    """Give a bootstrap refusal the hint that fits it (``exc.hint``)."""
    serial = identity.serial
    if isinstance(exc, NotRegistered):
        exc.hint = (
            f"the cloud does not know serial {serial}: claim it in the cloud application "
            f"(serial {serial}, claim key {mask_secret(identity.claim_key)})"
        )
    elif isinstance(exc, BadCredentials) and exc.status == 401:
        exc.hint = (
            f"the cloud refused the claim signature of {serial}: {_clock_reason(time, mode)}; "
            "otherwise the claim key does not match the one enrolled"
        )


def _clock_reason(time: SyncStatus, mode: str) -> str:
    if time.state == "manual":
        return (
            "the gateway's clock may be more than 300 s off: set the time "
            'synchronisation mode to Cloud ([time] mode = "cloud")'
        )
    if time.state == "failed":
        return (
            f"time synchronisation failed ({time.error}), so the clock may be more than "
            "300 s off: let NTP (UDP) through the firewall, or set the time "
            "synchronisation mode to Cloud"
        )
    if mode != "cloud":
        return (
            f"the clock follows {time.server} (offset {time.offset_s:+.1f} s); "
            "if that server is off, set the time synchronisation mode to Cloud"
        )
    return f"the clock is synchronised with {time.server} (offset {time.offset_s:+.1f} s)"
