"""Schemathesis against the published OpenAPI document of the spec routes, over real HTTPS.

Generated requests (valid per the schema, and invalid ones) go to every spec
operation with a real device token and device id, so they get past
authentication; no answer may be a 5xx, and every answer must conform to the
document: documented status, content type, headers and body schema.
"""

from __future__ import annotations

import os
import re
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from panelfast.refcloud import RefCloud
from refcloud_support import SERIAL, TOPOLOGY, bootstrap_headers

_SPEC_PATH = re.compile(r"^/(bootstrap|hub|upload)/")
# Deterministic by default (same examples every run); REFCLOUD_FUZZ_EXAMPLES=N for a
# longer, random exploration.
_EXAMPLES = int(os.environ.get("REFCLOUD_FUZZ_EXAMPLES", "15"))
_RANDOM = "REFCLOUD_FUZZ_EXAMPLES" in os.environ

# Data batches are opaque bytes to schemathesis (the cloud must refuse random ones).
schemathesis.serializer.alias("application/vnd.panelfast.batch+msgpack", "application/octet-stream")


def test_openapi_describes_every_spec_route(tmp_path: Path) -> None:
    with RefCloud(tmp_path) as cloud:
        root = cloud.bootstrap_url.removesuffix("/bootstrap")
        context = ssl.create_default_context(cafile=cloud.ca_path)
        document = httpx.get(f"{root}/openapi.json", verify=context).json()
    operations = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        if _SPEC_PATH.match(path)
        for method in item
    }
    assert operations == {
        ("POST", "/bootstrap/v1/bootstrap"),
        ("PUT", "/hub/v1/devices/{device_id}/topology"),
        ("GET", "/hub/v1/devices/{device_id}/config"),
        ("POST", "/hub/v1/devices/{device_id}/config/report"),
        ("POST", "/hub/v1/devices/{device_id}/data"),
        ("POST", "/hub/v1/devices/{device_id}/alarms"),
        ("GET", "/hub/v1/devices/{device_id}/commands"),
        ("POST", "/hub/v1/devices/{device_id}/commands/{command_id}/result"),
        ("POST", "/hub/v1/devices/{device_id}/outputs"),
        ("POST", "/hub/v1/devices/{device_id}/disconnect"),
        ("POST", "/upload/v1/devices/{device_id}/uploads"),
        ("PUT", "/upload/v1/blobs/{upload_id}"),
        ("POST", "/upload/v1/devices/{device_id}/uploads/{upload_id}/complete"),
    }
    topology = document["paths"]["/hub/v1/devices/{device_id}/topology"]["put"]
    body = topology["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/Topology"}
    assert "devices" in document["components"]["schemas"]["Topology"]["required"]
    for item in document["paths"].values():
        for operation in item.values():
            assert "422" not in operation["responses"]


def test_spec_routes_conform_to_their_openapi_document(tmp_path: Path) -> None:
    with RefCloud(tmp_path) as cloud:
        root = cloud.bootstrap_url.removesuffix("/bootstrap")
        ca = str(cloud.ca_path)
        key = cloud.enrol(SERIAL)
        with requests.Session() as http:
            http.verify = ca
            http.trust_env = False  # else $REQUESTS_CA_BUNDLE overrides verify
            boot = http.post(
                f"{cloud.bootstrap_url}/v1/bootstrap",
                headers=bootstrap_headers(key),
                json={
                    "serial": SERIAL,
                    "model": "entry",
                    "firmware": "1",
                    "mac": "aa:bb:cc:dd:ee:ff",
                },
            ).json()
            auth = {"Authorization": f"Bearer {boot['token']}"}
            device_id = boot["device_id"]
            hub = f"{boot['hub_url']}/v1/devices/{device_id}"
            assert http.put(f"{hub}/topology", json=TOPOLOGY, headers=auth).status_code == 202
            cloud.generate_config(SERIAL, period_s=60)
            command = cloud.queue_command(SERIAL, {"type": "upload_logs"})
            document = http.get(f"{root}/openapi.json").json()
            schema = schemathesis.openapi.from_dict(document)
            exercised = 0
            for result in schema.get_all_operations():
                operation = result.ok()
                if not _SPEC_PATH.match(operation.path):
                    continue
                exercised += 1
                fixed: dict[str, Any] = {}
                if "{device_id}" in operation.path:
                    fixed["device_id"] = device_id
                if "{command_id}" in operation.path:
                    fixed["command_id"] = command["id"]
                _fuzz(operation, fixed, root, http, auth)
            assert exercised == 13


def _fuzz(
    operation: Any,
    path_parameters: dict[str, Any],
    root: str,
    http: requests.Session,
    auth: dict[str, str],
) -> None:
    strategies = [
        operation.as_strategy(path_parameters=path_parameters),
        operation.as_strategy(GenerationMode.NEGATIVE, path_parameters=path_parameters),
    ]

    @settings(
        max_examples=_EXAMPLES,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        database=None,
        derandomize=not _RANDOM,
    )
    @given(case=st.one_of(strategies))
    def run(case: Any) -> None:
        headers = {**auth, **(case.headers or {})}
        response = case.call(
            base_url=root, session=http, headers=headers, timeout=10, verify=http.verify
        )
        assert response.status_code < 500, (case.method, case.path, response.text)
        checks = [
            status_code_conformance,
            content_type_conformance,
            response_headers_conformance,
            response_schema_conformance,
        ]
        if case.meta is not None and case.meta.generation.mode == GenerationMode.NEGATIVE:
            checks.append(negative_data_rejection)
        case.validate_response(response, checks=checks, headers=headers)

    try:
        run()
    except Exception as err:
        pytest.fail(f"{operation.method.upper()} {operation.path}: {err}")
