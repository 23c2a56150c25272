"""Bootstrap (cloud protocol §3): prove the claim key, receive the hub and a token.

The signature is ``hex(HMAC-SHA256(claim key bytes, "<serial>\\n<timestamp>"))``
with the timestamp taken from the gateway's *synchronised* clock: the cloud
refuses it when it is more than 300 s off its own.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr

from panelfast.cloud._identity import Identity
from panelfast.cloud._timesync import Clock
from panelfast.cloud._transport import Transport
from panelfast.exceptions import CloudProtocolError

__all__ = ["BootstrapResult", "bootstrap", "claim_signature", "signed_headers"]


def claim_signature(serial: str, timestamp: int, claim_key: SecretStr) -> str:
    """The hex HMAC-SHA256 of ``"<serial>\\n<timestamp>"`` keyed by the claim key's bytes."""
    key = bytes.fromhex(claim_key.get_secret_value())
    message = f"{serial}\n{timestamp}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def signed_headers(identity: Identity, timestamp: int) -> dict[str, str]:
    """The ``X-PF-*`` headers of a bootstrap request."""
    return {
        "X-PF-Serial": identity.serial,
        "X-PF-Timestamp": str(timestamp),
        "X-PF-Signature": claim_signature(identity.serial, timestamp, identity.claim_key),
        "Content-Type": "application/json",
    }


@dataclass(frozen=True)
class BootstrapResult:
    """What a successful bootstrap returns."""

    device_id: str
    hub_url: str
    upload_url: str
    token: SecretStr
    token_expires_at: int
    ntp_server: str | None
    data_seq: int


async def bootstrap(
    transport: Transport, identity: Identity, clock: Clock, bootstrap_url: str
) -> BootstrapResult:
    """``POST {bootstrap_url}/v1/bootstrap``; raises the CloudError of a refusal."""
    url = bootstrap_url.rstrip("/") + "/v1/bootstrap"
    headers = signed_headers(identity, int(clock.now()))
    body = json.dumps(identity.bootstrap_body()).encode()
    response = await transport.request("POST", url, headers=headers, content=body, ok=(200,))
    return parse_bootstrap(response)


def parse_bootstrap(response: httpx.Response) -> BootstrapResult:
    """Validate a bootstrap answer; anything off is a CloudProtocolError."""
    try:
        doc: Any = response.json()
    except ValueError:
        raise CloudProtocolError("the bootstrap answer is not JSON") from None
    if not isinstance(doc, dict):
        raise CloudProtocolError("the bootstrap answer is not a JSON object")

    def text(key: str) -> str:
        value = doc.get(key)
        if not isinstance(value, str) or not value:
            raise CloudProtocolError(f"the bootstrap answer has no {key!r} string")
        return value

    def integer(key: str) -> int:
        value = doc.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise CloudProtocolError(f"the bootstrap answer has no {key!r} integer ≥ 0")
        return value

    urls = {key: text(key) for key in ("hub_url", "upload_url")}
    for key, url in urls.items():
        if not url.startswith("https://"):
            raise CloudProtocolError(f"the bootstrap's {key} {url!r} is not an https:// URL")
    ntp = doc.get("ntp_server")
    if ntp is not None and not isinstance(ntp, str):
        raise CloudProtocolError("the bootstrap's 'ntp_server' is not a string")
    device_id = text("device_id")
    if (
        any(c in device_id for c in "/?#%\\")
        or device_id in (".", "..")
        or device_id.strip() != device_id
    ):
        raise CloudProtocolError(
            f"the bootstrap's device_id {device_id!r} is not a URL path segment"
        )
    return BootstrapResult(
        device_id=device_id,
        hub_url=urls["hub_url"].rstrip("/"),
        upload_url=urls["upload_url"].rstrip("/"),
        token=SecretStr(text("token")),
        token_expires_at=integer("token_expires_at"),
        ntp_server=ntp or None,
        data_seq=integer("data_seq") if "data_seq" in doc else 0,
    )
