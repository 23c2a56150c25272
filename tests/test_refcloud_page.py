"""The operator page over HTTP (its login, its headers, its errors), the plots' reduction,
and the connection diagnostics behind the page; the browser tests are test_refcloud_web.py."""

from __future__ import annotations

import math
import re
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from panelfast.cli import main
from panelfast.refcloud import RefCloud, RefCloudProcess
from panelfast.refcloud.presence import Presence
from panelfast.refcloud.storage import Storage
from panelfast.refcloud.web import plot, session
from refcloud_support import (
    IDENTITY,
    SERIAL,
    TOPOLOGY,
    Session,
    bootstrap_headers,
    cloud_fixture,
    encode_batch,
    http_fixture,
    session_fixture,
)

__all__ = ["cloud_fixture", "http_fixture", "session_fixture"]  # fixtures used by name

FORM = {"content-type": "application/x-www-form-urlencoded"}


def _page(cloud: RefCloud, path: str = "") -> str:
    return f"{cloud.operator_page_url}{path}"


def _cookie(response: httpx.Response, http: httpx.AsyncClient) -> dict[str, str]:
    """The session cookie a login set, as a header (the client's own jar is emptied)."""
    http.cookies.clear()
    return {"Cookie": f"{session.COOKIE}={response.cookies[session.COOKIE]}"}


async def _log_in(session_: Session) -> dict[str, str]:
    cloud = session_.cloud
    response = await session_.http.post(
        _page(cloud, "login"), content=f"token={cloud.operator_token}", headers=FORM
    )
    assert response.status_code == 303, response.text
    return _cookie(response, session_.http)


# -- login ---------------------------------------------------------------------------------


async def test_every_page_needs_a_login_and_sends_strict_headers(session: Session) -> None:
    http, cloud = session.http, session.cloud
    for path in ("", f"gateways/{SERIAL}", f"gateways/{SERIAL}/series/mb-1/VoltageAN?from=1"):
        response = await http.get(_page(cloud, path))
        assert response.status_code == 303
        location = response.headers["location"]
        assert location.startswith("/operator/web/login?next=")
        assert httpx.URL(location).params["next"] == httpx.URL(_page(cloud, path)).raw_path.decode()
    login = await http.get(_page(cloud, "login"))
    assert login.status_code == 200
    policy = login.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert login.headers["x-content-type-options"] == "nosniff"
    assert login.headers["cache-control"] == "no-store"
    assert '<label for="token">Operator token</label>' in login.text
    script = await http.get(_page(cloud, "static/operator.js"))
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert "pointerdown" in script.text
    css = await http.get(_page(cloud, "static/operator.css"))
    assert css.headers["content-type"].startswith("text/css")
    assert (await http.get(_page(cloud, "static/..%2Fsession.py"))).status_code == 404
    # The page is not part of the protocol's published document.
    document = await http.get(cloud.bootstrap_url.removesuffix("/bootstrap") + "/openapi.json")
    assert not [p for p in document.json()["paths"] if p.startswith("/operator/web")]


async def test_a_wrong_token_is_refused_and_login_goes_back_only_to_this_page(
    session: Session,
) -> None:
    http, cloud = session.http, session.cloud
    wrong = await http.post(_page(cloud, "login"), content="token=nope", headers=FORM)
    assert wrong.status_code == 401
    assert "That is not the operator token of this cloud." in wrong.text
    assert "set-cookie" not in wrong.headers
    empty = await http.post(_page(cloud, "login"), content="token=", headers=FORM)
    assert "Enter the operator token." in empty.text
    for target, expected in (
        ("/operator/web/gateways/PS-1", "/operator/web/gateways/PS-1"),
        ("https://elsewhere.example/", "/operator/web/"),
        ("//elsewhere.example/operator/web/", "/operator/web/"),
        ("/operator/web//elsewhere.example", "/operator/web/"),
        ("/operator/enrolments", "/operator/web/"),
    ):
        body = httpx.QueryParams({"token": cloud.operator_token, "next": target})
        response = await http.post(_page(cloud, "login"), content=str(body), headers=FORM)
        assert (response.status_code, response.headers["location"]) == (303, expected)
    cookie = response.headers["set-cookie"]
    for attribute in ("HttpOnly", "Secure", "SameSite=strict", "Path=/operator/web", "Max-Age="):
        assert attribute in cookie
    assert cloud.operator_token not in cookie
    cookies = _cookie(response, http)
    assert (await http.get(_page(cloud))).status_code == 303
    assert (await http.get(_page(cloud), headers=cookies)).status_code == 200
    # The page's cookie is not the operator API's credential.
    api = await http.get(f"{cloud.operator_url}/enrolments", headers=cookies)
    assert api.status_code == 401
    out = await http.post(_page(cloud, "logout"), headers=cookies)
    assert out.status_code == 303
    assert 'pf_operator=""' in out.headers["set-cookie"] or "Max-Age=0" in out.headers["set-cookie"]


def test_session_cookies_expire_and_cannot_be_forged() -> None:
    token = "operator-token"
    now = 1_800_000_000.0
    value = session.new_session(token, now=now)
    assert session.valid_session(value, token, now=now + session.SESSION_S - 1)
    assert not session.valid_session(value, token, now=now + session.SESSION_S)
    assert not session.valid_session(value, "another token", now=now)
    expires, _, signature = value.partition(".")
    later = str(int(expires) + 3600)
    assert not session.valid_session(f"{later}.{signature}", token, now=now)
    assert not session.valid_session(f"{expires}.{'0' * 64}", token, now=now)
    for garbage in ("", "x", ".", "1e9.abc", f"-{expires}.{signature}", None):
        assert not session.valid_session(garbage, token, now=now)


# -- pages and their errors ----------------------------------------------------------------------


async def _send_voltage(session: Session, values: list[float | None], t0: int) -> None:
    await session.put_topology(TOPOLOGY)
    served = session.cloud.generate_config(SERIAL, period_s=1)
    index = [m["measurement"] for m in served["document"]["measurements"]].index("VoltageAN")
    for seq, first in enumerate(range(0, len(values), 1000), start=1):
        group = {"t0": t0 + first * 1000, "dt": 1000, "m": [index], "v": [values[first:][:1000]]}
        response = await session.post_batch(encode_batch(seq, served["version"], [group]))
        assert response.status_code == 200, response.text


async def test_unknown_gateways_and_bad_ranges_are_said_plainly(session: Session) -> None:
    http, cloud = session.http, session.cloud
    cookies = await _log_in(session)
    t0 = 1_790_000_000_000
    await _send_voltage(session, [230.0, 231.0, 232.0], t0)

    async def get(path: str) -> httpx.Response:
        return await http.get(_page(cloud, path), headers=cookies)

    missing = await get("gateways/PS-NOPE")
    assert missing.status_code == 404
    assert "No gateway with serial PS-NOPE was ever enrolled." in missing.text
    unsent = await get(f"gateways/{SERIAL}/series/mb-1/EnergyTotal")
    assert unsent.status_code == 404
    assert f"{SERIAL} has sent no samples of mb-1/EnergyTotal." in unsent.text
    series = f"gateways/{SERIAL}/series/mb-1/VoltageAN"
    bad = await get(f"{series}?from=yesterday")
    assert bad.status_code == 400
    assert "from=&#39;yesterday&#39; is not a time" in bad.text
    backwards = await get(f"{series}?from={t0 + 2000}&to={t0}")
    assert backwards.status_code == 400
    assert "The end of the range (to) is before its start (from)." in backwards.text
    iso = await get(f"{series}?from=2026-09-21T14:13:20Z&to=2026-09-21T14:13:21")
    assert iso.status_code == 200
    assert re.search(r'data-from="1790000000000" data-to="1790000001000"', iso.text)
    assert iso.text.count('class="point"') == 2 * 2  # two samples, in the wide and narrow plots
    one = await get(f"{series}?from={t0 + 1000}&to={t0 + 1000}")
    assert 'data-from="1789999971000" data-to="1790000031000"' in one.text


async def test_a_long_series_is_drawn_as_an_envelope_keeping_its_extremes(
    session: Session,
) -> None:
    cookies = await _log_in(session)
    t0 = 1_790_000_000_000
    values: list[float | None] = [230.0 + math.sin(i / 50) for i in range(3000)]
    values[1234] = 250.0  # one spike, far above the rest
    values[2000] = None
    await _send_voltage(session, values, t0)
    response = await session.http.get(
        _page(session.cloud, f"gateways/{SERIAL}/series/mb-1/VoltageAN"), headers=cookies
    )
    wide = response.text.split('<svg xmlns="http://www.w3.org/2000/svg" class="plot plot--wide"')[1]
    wide = wide.split("</svg>")[0]
    assert 'class="point"' not in wide
    line = re.search(r'<path class="series" d="([^"]+)"', wide)
    assert line is not None
    vertices = re.findall(r"([0-9.]+),([0-9.]+)", line.group(1))
    assert len(vertices) <= 2 * plot.BUCKETS
    vmax = float(re.search(r'data-vmax="([0-9.]+)"', wide).group(1))  # type: ignore[union-attr]
    vmin = float(re.search(r'data-vmin="([0-9.]+)"', wide).group(1))  # type: ignore[union-attr]
    y0, y1 = plot.WIDE.top, plot.WIDE.height - plot.WIDE.bottom
    highest = vmax - (min(float(y) for _, y in vertices) - y0) * (vmax - vmin) / (y1 - y0)
    assert highest == pytest.approx(250.0, abs=0.05)
    assert "3000 (1 could not be read)" in response.text
    assert "250 V" in response.text


def test_reduce_keeps_every_sample_or_a_bounded_envelope() -> None:
    rows = [(1_000, 1_000, [1.0, None, 3.0]), (10_000, 1_000, [4.0, 5.0])]
    few = plot.reduce(rows, 2_000, 10_000)
    assert few.raw == [(2_000, None, 1_000), (3_000, 3.0, 1_000), (10_000, 4.0, 1_000)]
    assert (few.count, few.nils, few.low, few.high) == (3, 1, 3.0, 4.0)
    many = plot.reduce([(0, 10, [float(i % 97) for i in range(100_000)])], 0, 999_990)
    assert many.raw is None
    assert len(many.columns) == plot.BUCKETS
    assert all(column == (0.0, 96.0) for column in many.columns)
    assert (many.count, many.low, many.high) == (100_000, 0.0, 96.0)
    svg = plot.render(many, plot.NARROW, title="x <y>", unit="W", plot_id="p")
    assert "x &lt;y&gt;" in svg
    assert 'viewBox="0 0 400 300"' in svg


# -- connection and diagnostics --------------------------------------------------------------


async def test_diagnostics_keep_the_errors_answered_to_each_gateway(session: Session) -> None:
    http, cloud = session.http, session.cloud
    presence = cloud.state.presence
    device_id = session.device_id
    assert presence.connection(device_id, last_disconnect=None).status == "Connected"
    forged = {"Authorization": "Bearer forged"}
    await http.get(f"{session.hub_url}/v1/devices/d-nobody/config", headers=forged)
    await http.get(session.hub("/config"), headers=forged)
    cloud.inject_fault("unavailable", "commands")
    await session.call("GET", "/commands")
    cloud.inject_fault("drop", "alarms")
    with pytest.raises(httpx.TransportError):
        await session.call("POST", "/alarms", json={"events": []})
    headers = bootstrap_headers(session.key)
    headers["X-PF-Signature"] = "0" * 64
    await http.post(f"{cloud.bootstrap_url}/v1/bootstrap", headers=headers, json=IDENTITY)
    errors = presence.connection(device_id, last_disconnect=None).errors
    assert [(e.route, e.status, e.code) for e in errors] == [
        ("bootstrap", 401, "bad_credentials"),
        ("alarms", 0, "dropped"),
        ("commands", 503, "unavailable"),
        ("config", 401, "bad_credentials"),
    ]
    assert "token not issued by this cloud" in errors[-1].message
    assert presence.connection("d-nobody", last_disconnect=None).errors == ()


def test_last_seen_survives_a_restart_and_ages(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "cloud.db")
    presence = Presence(storage, max_wait_s=30)
    presence.seen("d-1")
    presence.seen("d-1")  # within the write interval: kept in memory only
    seen = presence.connection("d-1", last_disconnect=None).last_seen
    assert seen is not None
    presence.flush()
    storage.close()
    storage = Storage(tmp_path / "cloud.db")
    again = Presence(storage, max_wait_s=30)
    state = again.connection("d-1", last_disconnect=None, now=seen + 59)
    assert (state.status, state.last_seen) == ("Connected", seen)
    assert again.connection("d-1", last_disconnect=None, now=seen + 61).status == "Not connected"
    assert again.connection("d-1", last_disconnect=seen + 1).status == "Disconnected"
    with again.polling("d-1"):
        assert again.connection("d-1", last_disconnect=None, now=seen + 999).status == "Connected"
    assert again.connection("d-2", last_disconnect=None).status == "Never connected"
    storage.close()


# -- command line and packaging -----------------------------------------------------------------


def test_the_page_command_says_where_the_page_is(tmp_path: Path) -> None:
    state = tmp_path / "cloud"
    with RefCloudProcess(state) as cloud:
        result = CliRunner().invoke(main, ["refcloud", "page", "--state", str(state)])
        token = (state / "operator_token").read_text()
        assert result.exit_code == 0, result.output
        assert f"Operator page: {cloud.operator.page_url}" in result.output
        assert str(state / "operator_token") in result.output
        assert token not in result.output
        context = ssl.create_default_context(cafile=cloud.operator.ca_path)
        response = httpx.get(cloud.operator.page_url, verify=context)
        assert response.status_code == 303


def test_without_the_refcloud_extra_the_commands_say_what_to_install(tmp_path: Path) -> None:
    # jinja2 hidden as if the extra were not installed.
    probe = "import sys; sys.modules['jinja2'] = None; from panelfast.cli import main; main()"
    result = subprocess.run(
        [sys.executable, "-c", probe, "refcloud", "enrolments", "--state", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "the reference cloud needs jinja2, from the refcloud extra" in result.stderr
    assert "pip install 'panelfast[refcloud]'" in result.stderr
    assert "Traceback" not in result.stderr
