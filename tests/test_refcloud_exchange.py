"""The reference cloud over real HTTPS: data, alarms, commands, outputs, uploads, disconnect."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import ssl
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import msgpack
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from panelfast.refcloud import RefCloud
from refcloud_support import (
    IDENTITY,
    SERIAL,
    TOPOLOGY,
    Session,
    assert_error,
    bootstrap_headers,
    cloud_fixture,
    do_bootstrap,
    encode_batch,
    http_fixture,
    session_fixture,
)
from waiting import PATIENCE_S, eventually

__all__ = ["cloud_fixture", "http_fixture", "session_fixture"]  # fixtures used by name

T0 = 1_795_000_020_000  # aligned to the minute
MIN = 60_000


@pytest.fixture
async def configured(session: Session) -> Session:
    """A session whose topology is published and a 60 s configuration (version 1) issued."""
    await session.put_topology()
    session.cloud.generate_config(SERIAL, period_s=60)
    return session


def group(t0: int, m: list[int], v: list[list[Any]], dt: int = MIN) -> dict[str, Any]:
    return {"t0": t0, "dt": dt, "m": m, "v": v}


# -- data (spec §7) ------------------------------------------------------------------------


async def test_data_sequence_rules(configured: Session) -> None:
    s = configured
    first = encode_batch(1, "1", [group(T0, [0, 2], [[1.5, None], [10, 11]])])
    response = await s.post_batch(first)
    assert response.status_code == 200
    assert response.json() == {"ack": 1}
    # A lost acknowledgement heals: same content (even encoded differently) again.
    same = {
        "v": 1,
        "seq": 1,
        "config_version": "1",
        "groups": [group(T0, [0, 2], [[1.5, None], [10, 11]])],
    }
    again = zstandard.ZstdCompressor().compress(msgpack.Packer(use_single_float=True).pack(same))
    assert again != first
    duplicate = await s.post_batch(again)
    assert duplicate.status_code == 200
    assert duplicate.json() == {"ack": 1, "duplicate": True}
    other = encode_batch(1, "1", [group(T0, [0], [[2.5, 3.5]])])
    conflict = assert_error(await s.post_batch(other), 409, "conflict")
    assert conflict["expected"] == 2
    ahead = encode_batch(3, "1", [group(T0 + 2 * MIN, [0], [[1.0]])])
    assert assert_error(await s.post_batch(ahead), 409, "conflict")["expected"] == 2
    second = encode_batch(2, "1", [group(T0 + 2 * MIN, [0, 1], [[1.0], [230.5]])])
    assert (await s.post_batch(second)).json() == {"ack": 2}
    counts = s.cloud.sample_counts(SERIAL)
    assert counts == {
        ("mb-1/ActivePowerTotal", T0): 1,
        ("mb-1/ActivePowerTotal", T0 + MIN): 1,
        ("mb-1/ActivePowerTotal", T0 + 2 * MIN): 1,
        ("mb-1/EnergyTotal", T0): 1,
        ("mb-1/EnergyTotal", T0 + MIN): 1,
        ("mb-1/VoltageAN", T0 + 2 * MIN): 1,
    }
    samples = s.cloud.samples(SERIAL)
    assert samples["mb-1/ActivePowerTotal"] == [(T0, 1.5), (T0 + MIN, None), (T0 + 2 * MIN, 1.0)]
    assert samples["mb-1/EnergyTotal"] == [(T0, 10), (T0 + MIN, 11)]
    batches = s.cloud.batches(SERIAL)
    assert [(b["seq"], b["duplicates"]) for b in batches] == [(1, 1), (2, 0)]
    assert s.cloud.state.storage.batch_body(s.device_id, 1) == first
    # A gateway that lost its state learns where to continue.
    rebooted = (await do_bootstrap(s.http, s.cloud, s.key)).json()
    assert rebooted["data_seq"] == 2
    coverage = s.cloud.coverage(SERIAL)["mb-1/ActivePowerTotal"]
    assert coverage["spans"] == [[T0, T0 + 2 * MIN]]
    assert (coverage["samples"], coverage["nil"], coverage["repeated"]) == (3, 1, 0)


async def test_data_accepts_float32_float64_int64_and_nil(configured: Session) -> None:
    packer = msgpack.Packer(use_single_float=True)
    body = {
        "v": 1,
        "seq": 1,
        "config_version": "1",
        "groups": [group(T0, [0, 2], [[0.5, None], [2**62, -(2**63)]])],
    }
    frame = zstandard.ZstdCompressor().compress(packer.pack(body))
    assert (await configured.post_batch(frame)).json() == {"ack": 1}
    samples = configured.cloud.samples(SERIAL)
    assert samples["mb-1/EnergyTotal"] == [(T0, 2**62), (T0 + MIN, -(2**63))]
    empty = encode_batch(2, "1", [])
    assert (await configured.post_batch(empty)).json() == {"ack": 2}


def _broken(**change: Any) -> bytes:
    body: dict[str, Any] = {
        "v": 1,
        "seq": 1,
        "config_version": "1",
        "groups": [group(T0, [0], [[1.0, 2.0]])],
    }
    body.update(change)
    return zstandard.ZstdCompressor().compress(msgpack.packb(body))


@pytest.mark.parametrize(
    ("frame", "expect"),
    [
        (b"not zstd at all", "malformed batch"),
        (zstandard.ZstdCompressor().compress(b"\xc1\xc1"), "malformed batch"),
        (_broken(config_version="7"), "never issued"),
        (_broken(v=2), "v=2"),
        (_broken(seq=0), "seq"),
        (_broken(groups=[group(T0, [3], [[1.0]])]), "not an index"),
        (_broken(groups=[group(T0, [0, 1], [[1.0, 2.0], [1.0]])]), "has 1 samples"),
        (_broken(groups=[group(T0, [0, 1], [[1.0]])]), "value lists"),
        (_broken(groups=[group(T0, [0, 0], [[1.0], [2.0]])]), "twice"),
        (_broken(groups=[group(T0, [0], [[1.0]], dt=30_000)]), "every 60000 ms"),
        (_broken(groups=[group(T0 + 1, [0], [[1.0]])]), "not aligned"),
        (_broken(groups=[group(T0, [0], [["1.0"]])]), "not a number or nil"),
        (_broken(groups=[group(T0, [0], [[1.0, 2.0]]), group(T0 + MIN, [0], [[3.0]])]), "overlap"),
    ],
)
async def test_malformed_batches_are_invalid_payload_and_free_their_seq(
    configured: Session, frame: bytes, expect: str
) -> None:
    body = assert_error(await configured.post_batch(frame), 400, "invalid_payload")
    assert expect in body["message"]
    ok = encode_batch(1, "1", [group(T0, [0], [[1.0]])])
    assert (await configured.post_batch(ok)).json() == {"ack": 1}


async def test_data_content_type_and_encoding_are_required(configured: Session) -> None:
    frame = encode_batch(1, "1", [group(T0, [0], [[1.0]])])
    for headers in (
        {"Content-Type": "application/msgpack"},
        {"Content-Encoding": "gzip"},
        {"Content-Encoding": "identity"},
    ):
        response = await configured.post_batch(frame, **headers)
        assert_error(response, 400, "invalid_payload")


async def test_bodies_over_256000_bytes_on_the_wire_are_too_large(configured: Session) -> None:
    rng = random.Random(7)
    noise = [rng.random() for _ in range(40_000)]  # random mantissas do not compress
    frame = encode_batch(1, "1", [group(T0, [0], [noise])], level=1)
    assert len(frame) > 256_000
    assert_error(await configured.post_batch(frame), 413, "payload_too_large")
    exactly = b"\0" * 256_000
    # 256,000 bytes is allowed through (and then refused as a malformed frame, not as size).
    assert_error(await configured.post_batch(exactly), 400, "invalid_payload")
    assert_error(await configured.post_batch(exactly + b"\0"), 413, "payload_too_large")

    async def chunked() -> Any:
        for _ in range(300):
            yield b"\0" * 1_000

    streamed = await configured.call(
        "POST",
        "/alarms",
        content=chunked(),
        headers={"Content-Type": "application/json"},
    )
    assert_error(streamed, 413, "payload_too_large")


# -- alarms (spec §8) ----------------------------------------------------------------------


def event(**change: Any) -> dict[str, Any]:
    base = {
        "id": str(uuid.uuid4()),
        "alarm": "a1",
        "state": "active",
        "ts": T0,
        "value": 254.1,
    }
    return {**base, **change}


async def test_alarm_events_are_idempotent_by_id(session: Session) -> None:
    first, second = event(), event(state="inactive", ts=T0 + 5_000, value=250)
    response = await session.call("POST", "/alarms", json={"events": [first, second]})
    assert response.status_code == 200
    assert response.json() == {"ack": 2}
    again = await session.call("POST", "/alarms", json={"events": [second]})
    assert again.json() == {"ack": 1}
    stored = session.cloud.alarm_events(SERIAL)
    assert [(e["id"], e["seen"]) for e in stored] == [(first["id"], 1), (second["id"], 2)]
    changed = await session.call("POST", "/alarms", json={"events": [{**first, "value": 1.0}]})
    assert_error(changed, 409, "conflict")
    twice = await session.call(
        "POST", "/alarms", json={"events": [first, {**first, "state": "inactive"}]}
    )
    assert_error(twice, 409, "conflict")
    assert len(session.cloud.alarm_events(SERIAL)) == 2


@pytest.mark.parametrize(
    "body",
    [
        {"events": [event(id="not-a-uuid")]},
        {"events": [event(state="on")]},
        {"events": [event(ts="yesterday")]},
        {"events": [{k: v for k, v in event().items() if k != "value"}]},
        {"alarms": []},
    ],
)
async def test_malformed_alarm_events_are_invalid_payload(
    session: Session, body: dict[str, Any]
) -> None:
    assert_error(await session.call("POST", "/alarms", json=body), 400, "invalid_payload")
    assert session.cloud.alarm_events(SERIAL) == []


# -- commands and outputs (spec §9) --------------------------------------------------------


async def test_commands_are_delivered_until_their_result(session: Session) -> None:
    cloud = session.cloud
    output = cloud.queue_command(
        SERIAL, {"type": "output", "output": "io-1/Q1", "action": "on", "expires_at": 1}
    )
    schedule = cloud.queue_command(
        SERIAL,
        {
            "type": "schedule",
            "schedule": {
                "id": "s1",
                "output": "io-1/Q1",
                "timezone": "Europe/Paris",
                "entries": [{"days": ["mon", "tue"], "at": "07:30", "action": "on"}],
            },
        },
    )
    logs = cloud.queue_command(SERIAL, {"type": "upload_logs"})
    assert output["id"] != schedule["id"]
    for _ in range(2):
        delivered = (await session.call("GET", "/commands")).json()["commands"]
        assert delivered == [output, schedule, logs]
    assert output == {
        "id": output["id"],
        "type": "output",
        "output": "io-1/Q1",
        "action": "on",
        "expires_at": 1,
    }
    result = f"/commands/{output['id']}/result"
    missing = await session.call("POST", result, json={"status": "rejected"})
    assert "reason" in assert_error(missing, 400, "invalid_payload")["message"]
    rejected = {"status": "rejected", "reason": "expired"}
    response = await session.call("POST", result, json=rejected)
    assert response.status_code == 204
    assert (await session.call("POST", result, json=rejected)).status_code == 204
    assert_error(await session.call("POST", result, json={"status": "done"}), 409, "conflict")
    done = await session.call("POST", f"/commands/{logs['id']}/result", json={"status": "done"})
    assert done.status_code == 204
    assert (await session.call("GET", "/commands")).json() == {"commands": [schedule]}
    unknown = await session.call("POST", "/commands/c-999/result", json={"status": "done"})
    assert_error(unknown, 404, "not_found")
    bad = await session.call(
        "POST", f"/commands/{schedule['id']}/result", json={"status": "ok", "reason": "x"}
    )
    assert_error(bad, 400, "invalid_payload")
    history = {c["command"]["id"]: c for c in cloud.commands(SERIAL)}
    assert history[output["id"]]["result"] == rejected
    assert history[output["id"]]["deliveries"] == 2
    assert history[schedule["id"]]["result"] is None


async def test_commands_long_poll(session: Session) -> None:
    started = time.monotonic()
    empty = await session.call("GET", "/commands", params={"wait": 1})
    assert empty.json() == {"commands": []}
    assert time.monotonic() - started >= 0.9
    started = time.monotonic()
    poll = asyncio.create_task(session.call("GET", "/commands", params={"wait": 20}))
    await eventually(lambda: session.cloud.state.signals.waiting, "the poll waiting")
    assert not poll.done()
    queued = await asyncio.to_thread(
        session.cloud.queue_command, SERIAL, {"type": "schedule_delete", "schedule_id": "s1"}
    )
    response = await asyncio.wait_for(poll, PATIENCE_S)
    assert response.json() == {"commands": [queued]}
    assert time.monotonic() - started < 20, "answered when the command came"


def test_operator_commands_are_checked(cloud: Any) -> None:
    from panelfast.exceptions import RefCloudError

    cloud.enrol(SERIAL)
    for bad in (
        {"type": "output", "output": "Q1", "action": "on"},
        {"type": "output", "output": "io-1/Q1", "action": "blink"},
        {"type": "reboot"},
        {"type": "schedule_delete"},
        {
            "type": "schedule",
            "schedule": {"id": "s", "output": "io-1/Q1", "timezone": "Mars/Olympus", "entries": []},
        },
    ):
        with pytest.raises(RefCloudError, match="invalid command"):
            cloud.queue_command(SERIAL, bad)
    # Raw: queued as given, to see the gateway refuse it.
    queued = cloud.queue_command(SERIAL, {"type": "reboot", "id": "ignored"}, raw=True)
    assert queued["type"] == "reboot"
    assert queued["id"].startswith("c-")


async def test_output_states_are_stored(session: Session) -> None:
    states = [
        {"output": "io-1/Q1", "state": "on", "ts": T0, "source": "cloud"},
        {"output": "io-1/Q1", "state": "off", "ts": T0 + 1, "source": "schedule"},
    ]
    response = await session.call("POST", "/outputs", json={"states": states})
    assert response.status_code == 204
    assert session.cloud.output_states(SERIAL) == states
    for bad in ({**states[0], "state": "half"}, {**states[0], "output": "Q1"}):
        response = await session.call("POST", "/outputs", json={"states": [bad]})
        assert_error(response, 400, "invalid_payload")


async def test_disconnect_is_recorded(session: Session) -> None:
    response = await session.call("POST", "/disconnect")
    assert response.status_code == 204
    assert len(session.cloud.disconnects(SERIAL)) == 1


# -- uploads (spec §10) --------------------------------------------------------------------


async def _announce(session: Session, data: bytes, kind: str, **change: Any) -> dict[str, Any]:
    body = {
        "kind": kind,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "content_type": "application/json",
        **change,
    }
    response = await session.http.post(session.upload("/uploads"), json=body, headers=session.auth)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    assert created["put_url"].startswith(session.upload_url)
    return created


async def test_large_topology_through_the_upload_service(session: Session) -> None:
    big = json.loads(json.dumps(TOPOLOGY))
    big["devices"] += [
        {
            "id": f"dev-{i}",
            "name": f"Meter {i}",
            "model": "PM5560",
            "measurements": [
                {"id": f"M{j}", "name": f"Measurement {j}", "unit": "W", "kind": "instantaneous"}
                for j in range(40)
            ],
        }
        for i in range(80)
    ]
    data = json.dumps(big).encode()
    assert len(data) > 250_000
    created = await _announce(session, data, "topology")
    put = await session.http.put(created["put_url"], content=data)  # no bearer token
    assert put.status_code == 201
    complete = await session.http.post(
        session.upload(f"/uploads/{created['upload_id']}/complete"), headers=session.auth
    )
    assert complete.status_code == 200
    version = complete.json()["topology_version"]
    stored = session.cloud.topology(SERIAL)
    assert stored is not None
    assert stored["version"] == version
    assert len(stored["document"]["devices"]) == 82
    # Same topology through the hub: same version.
    small = {**big, "devices": big["devices"][:2]}
    assert await session.put_topology(small) == await session.put_topology(TOPOLOGY)


async def test_upload_size_or_digest_mismatch_is_invalid_payload(session: Session) -> None:
    logs = b"2026-11-24 log line\n" * 100
    wrong_size = await _announce(session, logs, "logs", size=len(logs) + 1)
    wrong_digest = await _announce(session, logs, "logs", sha256="0" * 64)
    for created in (wrong_size, wrong_digest):
        assert (await session.http.put(created["put_url"], content=logs)).status_code == 201
        response = await session.http.post(
            session.upload(f"/uploads/{created['upload_id']}/complete"), headers=session.auth
        )
        assert_error(response, 400, "invalid_payload")
    good = await _announce(session, logs, "logs", content_type="text/plain")
    never_put = await session.http.post(
        session.upload(f"/uploads/{good['upload_id']}/complete"), headers=session.auth
    )
    assert_error(never_put, 400, "invalid_payload")
    assert (await session.http.put(good["put_url"], content=logs)).status_code == 201
    done = await session.http.post(
        session.upload(f"/uploads/{good['upload_id']}/complete"), headers=session.auth
    )
    assert done.status_code == 200
    assert done.json() == {"upload_id": good["upload_id"]}
    assert session.cloud.upload_bytes(good["upload_id"]) == logs
    again = await session.http.put(good["put_url"], content=logs)
    assert_error(again, 409, "conflict")


async def test_put_url_is_the_only_authorisation(session: Session) -> None:
    created = await _announce(session, b"x", "logs")
    packed = await session.http.put(
        created["put_url"], content=b"x", headers={"Content-Encoding": "zstd"}
    )
    assert_error(packed, 400, "invalid_payload")
    forged = created["put_url"].replace("sig=", "sig=0")
    assert_error(await session.http.put(forged, content=b"x"), 401, "bad_credentials")
    unknown = await session.http.post(
        session.upload("/uploads/u-0000/complete"), headers=session.auth
    )
    assert_error(unknown, 404, "not_found")
    no_token = await session.http.post(session.upload("/uploads"), json={})
    assert_error(no_token, 401, "bad_credentials")
    bad_kind = await session.http.post(
        session.upload("/uploads"),
        json={"kind": "video", "size": 1, "sha256": "0" * 64, "content_type": "x"},
        headers=session.auth,
    )
    assert_error(bad_kind, 400, "invalid_payload")


async def test_invalid_uploaded_topology_is_invalid_payload(session: Session) -> None:
    for data in (b"not json", json.dumps({**TOPOLOGY, "devices": "none"}).encode()):
        created = await _announce(session, data, "topology")
        assert (await session.http.put(created["put_url"], content=data)).status_code == 201
        response = await session.http.post(
            session.upload(f"/uploads/{created['upload_id']}/complete"), headers=session.auth
        )
        assert_error(response, 400, "invalid_payload")
    assert session.cloud.topology(SERIAL) is None


async def test_batches_of_the_gateway_encoder_are_accepted_whole(configured: Session) -> None:
    """The Rust encoder the gateway uses (float32 where exact, NaN as nil, several batches)."""
    import numpy as np

    from panelfast._native import SeriesSet, encode_batches

    n = 30_000
    floats = np.random.default_rng(1).random(n)
    floats[::7] = np.nan
    counters = np.arange(n, dtype=np.int64) * 1000
    series = SeriesSet.from_series([(0, T0, MIN, floats), (2, T0 + 5 * MIN, MIN, counters)])
    batches = encode_batches(series, "1", 1, max_bytes=100_000)
    assert len(batches) > 1
    for batch in batches:
        response = await configured.post_batch(batch.body)
        assert response.json() == {"ack": batch.seq}, response.text
    counts = configured.cloud.sample_counts(SERIAL)
    assert len(counts) == 2 * n
    assert set(counts.values()) == {1}
    samples = configured.cloud.samples(SERIAL)
    power = samples["mb-1/ActivePowerTotal"]
    assert [t for t, _ in power] == [T0 + j * MIN for j in range(n)]
    assert sum(v is None for _, v in power) == len(range(0, n, 7))
    energy = samples["mb-1/EnergyTotal"]
    assert energy[-1] == (T0 + (n + 4) * MIN, (n - 1) * 1000)
    # Sent again, the last batch is a duplicate: stored once.
    again = await configured.post_batch(batches[-1].body)
    assert again.json() == {"ack": batches[-1].seq, "duplicate": True}
    assert len(configured.cloud.sample_counts(SERIAL)) == 2 * n


def test_sequence_rules_against_a_model(tmp_path: Path) -> None:
    """Random sends (new, repeated, altered, ahead) answered exactly as spec §7 says."""

    sends = st.lists(st.tuples(st.integers(1, 6), st.integers(0, 2)), min_size=1, max_size=12)
    with (
        RefCloud(tmp_path) as cloud,
        httpx.Client(verify=ssl.create_default_context(cafile=cloud.ca_path)) as client,
    ):
        serials = iter(f"PS-{i:04d}" for i in range(10_000))

        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
        @given(sends=sends)
        def run(sends: list[tuple[int, int]]) -> None:
            serial = next(serials)
            key = cloud.enrol(serial)
            boot = client.post(
                f"{cloud.bootstrap_url}/v1/bootstrap",
                headers=bootstrap_headers(key, serial),
                json={**IDENTITY, "serial": serial},
            ).json()
            cloud.state.storage.add_config(
                boot["device_id"],
                {"measurements": [{"device": "d", "measurement": "m", "period_s": 60}]},
                raw=False,
            )
            url = f"{boot['hub_url']}/v1/devices/{boot['device_id']}/data"
            headers = {
                "Authorization": f"Bearer {boot['token']}",
                "Content-Type": "application/vnd.panelfast.batch+msgpack",
                "Content-Encoding": "zstd",
            }
            taken: dict[int, int] = {}
            for seq, content in sends:
                body = encode_batch(seq, "1", [group(T0 + seq * MIN, [0], [[float(content)]])])
                response = client.post(url, content=body, headers=headers)
                expected = len(taken) + 1
                if seq == expected:
                    assert response.json() == {"ack": seq}
                    taken[seq] = content
                elif seq < expected and taken[seq] == content:
                    assert response.json() == {"ack": seq, "duplicate": True}
                else:
                    assert response.status_code == 409
                    assert response.json()["expected"] == expected
            assert cloud.last_seq(serial) == len(taken)
            assert len(cloud.sample_counts(serial)) == len(taken)

        run()
