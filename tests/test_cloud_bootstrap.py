"""The claim signature and the validation of a bootstrap answer."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from panelfast.cloud._bootstrap import claim_signature, parse_bootstrap
from panelfast.exceptions import CloudProtocolError

GOOD: dict[str, Any] = {
    "device_id": "d-6f1c",
    "hub_url": "https://hub.example.net/",
    "upload_url": "https://upload.example.net",
    "token": "opaque",
    "token_expires_at": 1_795_000_000,
    "ntp_server": "time.example.net",
    "data_seq": 41,
}


def test_signature_is_hmac_sha256_of_serial_newline_timestamp() -> None:
    # Computed once with: printf 'PS-0042-7A19\n1795000000' |
    #   openssl dgst -sha256 -mac HMAC -macopt hexkey:<32 bytes of 0x5a>
    expected = "983447a000456d57ce3976040c7594b2ba553e49ae8027d29f705395fc8034fd"
    assert claim_signature("PS-0042-7A19", 1_795_000_000, SecretStr("5a" * 32)) == expected


def test_a_good_answer_is_read() -> None:
    result = parse_bootstrap(httpx.Response(200, json=GOOD))
    assert result.device_id == "d-6f1c"
    assert result.hub_url == "https://hub.example.net"
    assert result.token.get_secret_value() == "opaque"
    assert "opaque" not in repr(result)
    assert (result.data_seq, result.ntp_server) == (41, "time.example.net")
    assert (
        parse_bootstrap(httpx.Response(200, json={**GOOD, "ntp_server": None})).ntp_server is None
    )


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"hub_url": "http://hub.example.net"}, "https"),
        ({"token": ""}, "token"),
        ({"device_id": "../admin"}, "path segment"),
        ({"token_expires_at": "soon"}, "token_expires_at"),
        ({"data_seq": -1}, "data_seq"),
        ({"ntp_server": 5}, "ntp_server"),
    ],
)
def test_a_bad_answer_is_a_protocol_error(change: dict[str, Any], complaint: str) -> None:
    with pytest.raises(CloudProtocolError, match=complaint):
        parse_bootstrap(httpx.Response(200, json={**GOOD, **change}))


def test_not_json_is_a_protocol_error() -> None:
    with pytest.raises(CloudProtocolError, match="not JSON"):
        parse_bootstrap(httpx.Response(200, content=b"<html>"))
