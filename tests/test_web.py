"""The web listener as a client sees it, over HTTPS from another process: the daemon is
``panelfast run`` with ``[web] listen``, against the reference cloud and the simulator.

Nothing is read or changed without a session; every change needs the
session's CSRF token; the certificate is made once (key 0600) or is the
user's; ``/metrics`` takes the web password as basic auth; log-ins are
rate-limited; changes are audited under the web user. Without ``[web]`` the
daemon loads none of the web stack.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import select
import socket
import ssl
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from cloud_support import free_port
from panelfast.commands import RISK
from panelfast.control._schema import openapi_document
from panelfast.embedded import EmbeddedSystem, embedded_system
from panelfast.web import PasswordFile
from reliability_support import GatewayProcess, wait_until
from web_support import (
    PASSWORD,
    HttpsClient,
    WebGateway,
    enable_web,
    set_password,
    start_web_gateway,
)


@pytest.fixture
def system(tmp_path: Path) -> Iterator[EmbeddedSystem]:
    with embedded_system(tmp_path, poll_period_ms=500) as s:
        yield s


@pytest.fixture
def web(system: EmbeddedSystem, tmp_path: Path) -> Iterator[WebGateway]:
    gateway = start_web_gateway(system, tmp_path / "gateway.log")
    try:
        yield gateway
    finally:
        gateway.daemon.close()
        if gateway.daemon.log_path.exists():
            print(gateway.daemon.tail(40))  # shown when the test failed


def _routes() -> list[tuple[str, str]]:
    """Every route of the control API (its OpenAPI document), with a sample path."""
    document = openapi_document()
    routes = [
        (method.upper(), path.replace("{key}", "time.mode").replace("{device_id}", "mb-1"))
        for path, operations in document["paths"].items()
        for method in operations
    ]
    return [*routes, ("GET", "/openapi.json")]


def test_no_route_reads_or_changes_anything_without_a_session(web: WebGateway) -> None:
    client = web.client()
    routes = [*_routes(), ("GET", "/settings/publication?section=cloud"), ("GET", "/metrics")]
    assert len(routes) >= 18
    for method, path in routes:
        body = b'{"value": "ntp"}' if method in ("PUT", "POST") else None
        answer = client.request(method, path, body=body, headers={"Accept": "application/json"})
        assert answer.status == 401, (method, path, answer.status, answer.text)
        assert answer.json()["error"] == "unauthorized"
    # A browser asking for a page is sent to the log-in page, to come back after.
    page = client.request("GET", "/devices", headers={"Accept": "text/html"})
    assert page.status == 303
    assert page.headers["location"] == "/login?next=%2Fdevices"
    # Nothing happened: no connection, no setting changed, nothing audited.
    status = json.loads(web.cli("status", "--json").stdout)
    assert status["cloud"]["connection"] == "Not connected"
    assert 'mode = "manual"' in web.system.config_path.read_text()
    assert web.cli("audit").stdout.strip() in ("", "no changes recorded yet")
    assert web.system.cloud.requests() == []


def test_every_change_needs_the_session_s_csrf_token(web: WebGateway) -> None:
    client = web.client()
    assert client.log_in().status == 303
    for headers in ({}, {"X-CSRF-Token": "not-the-token"}):
        refused = client.request("POST", "/v1/connect", headers=headers)
        assert refused.status == 403, refused.text
        assert refused.json()["error"] == "csrf"
    token = client.csrf()
    other_site = client.request(
        "POST", "/v1/connect", headers={"X-CSRF-Token": token, "Origin": "https://evil.example"}
    )
    assert other_site.status == 403
    assert "another site" in other_site.json()["message"]
    assert json.loads(web.cli("status", "--json").stdout)["cloud"]["connection"] == (
        "Not connected"
    )
    # The same token from another session is no token at all.
    stranger = web.client()
    assert stranger.log_in().status == 303
    assert stranger.request("POST", "/v1/connect", headers={"X-CSRF-Token": token}).status == 403

    connected = client.request("POST", "/v1/connect", headers={"X-CSRF-Token": token})
    assert connected.status == 200, connected.text
    assert connected.json()["connection"] == "Connected"
    changed = client.request(
        "PUT",
        "/v1/settings/storage.quota_mb",
        body=b'{"value": 1200}',
        headers={"X-CSRF-Token": token, "Content-Type": "application/json"},
    )
    assert changed.status == 200, changed.text
    audit = web.cli("audit").stdout.splitlines()
    mine = [line for line in audit if "web:admin" in line]
    assert [line.split()[3] for line in mine] == [
        "web.login",
        "web.login",
        "connect",
        "settings.change",
    ], audit


def test_a_cloud_managed_setting_is_refused_over_the_web(web: WebGateway) -> None:
    client = web.client()
    client.log_in()
    refused = client.request(
        "PUT",
        "/v1/settings/publisher.period_s",
        body=b'{"value": 5}',
        headers={"X-CSRF-Token": client.csrf(), "Content-Type": "application/json"},
    )
    assert refused.status == 403
    assert "managed by the cloud" in refused.json()["message"]
    assert "web:admin" in web.cli("audit").stdout


def test_outputs_remote_control_is_enabled_only_with_the_risk_confirmed(web: WebGateway) -> None:
    client = web.client()
    client.log_in()

    def section(name: str) -> str:
        answer = client.request("GET", f"/settings/publication?section={name}")
        assert answer.status == 200, answer.text
        return answer.text

    def change(body: object, token: str | None) -> Any:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token is not None:
            headers["X-CSRF-Token"] = token
        return client.request(
            "POST", "/v1/outputs/remote-control", body=json.dumps(body).encode(), headers=headers
        )

    shown = section("outputs")
    assert 'aria-labelledby="outputs-title"' in shown
    assert "Outputs remote control" in shown
    assert ">Disabled</span>" in shown
    assert 'data-dialog="#remote-control-dialog"' in shown, "enabling goes through the pop-up"
    assert RISK in shown, "the pop-up names the risk"
    assert 'data-output="io-1/Q1"' in shown
    assert 'data-output="io-1/Q2"' in shown
    assert "No schedule received from the cloud." in shown
    assert "No command or output change recorded yet." in shown
    header = section("header")
    assert 'id="control-scheduling" role="status"></p>' in header, "nothing while no schedule"

    confirmed = {"enabled": True, "confirmation": RISK}
    token = client.csrf()
    assert change(confirmed, None).status == 403, "no CSRF token"
    assert change(confirmed, "not-the-token").status == 403
    for unconfirmed in ({"enabled": True}, {"enabled": True, "confirmation": "yes"}):
        refused = change(unconfirmed, token)
        assert refused.status == 400, refused.text
        assert refused.json()["error"] == "confirmation_required"
        assert refused.json()["risk"] == RISK
    status = web.cli("outputs", "remote-control", "status")
    assert "Outputs remote control: disabled" in status.stdout, status.stdout

    enabled = change(confirmed, token)
    assert enabled.status == 200, enabled.text
    assert enabled.json()["enabled"] is True
    assert enabled.json()["changed_by"] == "web:admin"
    shown = section("outputs")
    assert ">Enabled</span>" in shown
    assert "by web:admin" in shown
    assert "Disable remote control" in shown

    # A local switch from the page: the device's output follows, the history names who.
    switched = client.request(
        "POST",
        "/v1/outputs/io-1/Q1",
        body=b'{"action": "on"}',
        headers={"X-CSRF-Token": token, "Content-Type": "application/json"},
    )
    assert switched.status == 200, switched.text
    assert switched.json()["readback"] == "on"
    assert web.system.simulator.outputs("io-1")["Q1"] is True
    shown = section("outputs")
    assert "Local (web:admin)" in shown
    assert "done, read back on" in shown

    # A schedule from the cloud: the header says "Control scheduling" while it may act.
    assert client.request("POST", "/v1/connect", headers={"X-CSRF-Token": token}).status == 200
    schedule = {
        "id": "night-lights",
        "output": "io-1/Q2",
        "timezone": "UTC",
        "entries": [{"days": ["mon", "tue", "wed", "thu", "fri"], "at": "03:00", "action": "on"}],
    }
    web.system.cloud.queue_command(web.system.serial, {"type": "schedule", "schedule": schedule})
    wait_until(
        lambda: "Control scheduling</span>" in section("header"), 60, "Control scheduling shown"
    )
    shown = section("outputs")
    assert "night-lights" in shown
    assert "mon, tue, wed, thu, fri 03:00: on" in shown
    assert "UTC time" in shown

    disabled = change({"enabled": False}, token)
    assert disabled.status == 200, disabled.text
    assert 'id="control-scheduling" role="status"></p>' in section("header")
    assert "not acting: remote control disabled" in section("outputs")
    audit = [line.split()[3] for line in web.cli("audit").stdout.splitlines() if "web:" in line]
    assert audit.count("outputs.remote_control") == 4, audit  # two refused, two done
    assert "outputs.switch" in audit


def test_the_certificate_is_made_once_with_its_key_readable_by_the_daemon_only(
    web: WebGateway,
) -> None:
    key = web.certificate.parent / "key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    served = ssl.get_server_certificate(("127.0.0.1", web.port))
    assert ssl.PEM_cert_to_DER_cert(served) == ssl.PEM_cert_to_DER_cert(web.certificate.read_text())
    fingerprint = web.certificate.read_bytes()
    # A client that trusts only the system's CAs refuses it: it is self-signed.
    with (
        socket.create_connection(("127.0.0.1", web.port), timeout=10) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        ssl.create_default_context().wrap_socket(raw, server_hostname="localhost")
    web.daemon.stop()
    web.daemon.start()
    wait_until(lambda: _answers(web), 60, "the web pages answer again")
    assert web.certificate.read_bytes() == fingerprint, "kept across restarts"
    assert "certificate SHA-256" in web.daemon.tail(200)


def _answers(web: WebGateway) -> bool:
    try:
        return web.client().request("GET", "/login", timeout=5).status == 200
    except OSError:
        return False


def test_the_user_s_certificate_is_served_and_a_key_others_can_read_is_refused(
    system: EmbeddedSystem, tmp_path: Path
) -> None:
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "gateway.example")
    cert, key = tmp_path / "web-cert.pem", tmp_path / "web-key.pem"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    key.chmod(0o644)
    extra = f'certificate = "{cert}"\nkey = "{key}"\n'
    port = free_port()
    enable_web(system, port, extra)
    refused = subprocess.run(
        [sys.executable, "-m", "panelfast", "run", "--config", str(system.config_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 1
    assert "web.key" in refused.stderr
    assert "chmod 600" in refused.stderr
    assert "Traceback" not in refused.stderr

    key.chmod(0o600)
    assert set_password(system.config_path).returncode == 0
    daemon = GatewayProcess(system.config_path, tmp_path / "gateway.log")
    daemon.start()
    try:
        context = ssl.create_default_context()
        ca.configure_trust(context)

        def verified() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
                    context.wrap_socket(raw, server_hostname="gateway.example").close()
                return True
            except OSError:
                return False

        wait_until(verified, 60, "the web pages serve the user's certificate", every_s=0.3)
        assert not (system.settings.storage.dir / "web-tls").exists(), "nothing was made"
    finally:
        daemon.close()


def test_metrics_with_a_session_or_basic_auth(web: WebGateway) -> None:
    client = web.client()
    anonymous = client.request("GET", "/metrics")
    assert anonymous.status == 401
    assert anonymous.headers["www-authenticate"] == 'Basic realm="panelfast"'

    def basic(user: str, password: str) -> dict[str, str]:
        return {
            "Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        }

    scraped = client.request("GET", "/metrics", headers=basic("admin", PASSWORD))
    assert scraped.status == 200
    assert "panelfast_device_state" in scraped.text
    assert scraped.headers["content-type"].startswith("text/plain")
    assert not client.cookies, "basic auth opens no session"
    # Basic auth reads /metrics only.
    assert client.request("GET", "/v1/status", headers=basic("admin", PASSWORD)).status == 401
    assert client.request("GET", "/metrics", headers=basic("admin", "wrong!")).status == 401
    assert client.request("GET", "/metrics", headers=basic("root", PASSWORD)).status == 401
    client.log_in()
    assert client.request("GET", "/metrics").status == 200


def test_log_in_refused_then_rate_limited_with_the_wait_said(web: WebGateway) -> None:
    client = web.client()
    answers = [client.log_in(password=f"guess number {n}") for n in range(5)]
    assert [a.status for a in answers] == [401] * 5
    assert "Wrong user name or password. 4 more attempts before a pause." in answers[0].text
    assert "Wrong user name or password." in answers[4].text
    limited = client.log_in()  # even the right password now waits
    assert limited.status == 429
    assert "Too many failed log-ins from this address (127.0.0.1): try again in " in limited.text
    assert int(limited.headers["retry-after"]) > 200
    assert "__Host-panelfast" not in client.cookies
    assert "web: log-in refused" in web.daemon.tail(50)
    assert PASSWORD not in web.daemon.log_path.read_text()
    # basic auth on /metrics counts against the same limit
    header = {"Authorization": "Basic " + base64.b64encode(b"admin:" + PASSWORD.encode()).decode()}
    assert client.request("GET", "/metrics", headers=header).status == 429


def test_the_session_cookie_is_secure_and_logout_ends_it(web: WebGateway) -> None:
    client = web.client()
    answer = client.log_in()
    assert answer.status == 303
    assert answer.headers["location"] == "/settings/publication"
    cookie = next(c for c in answer.set_cookies if c.startswith("__Host-panelfast="))
    for attribute in ("__Host-panelfast=", "HttpOnly", "Secure", "SameSite=strict", "Path=/"):
        assert attribute.lower() in cookie.lower(), cookie
    page = client.request("GET", "/settings/publication", headers={"Accept": "text/html"})
    assert page.status == 200
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    assert page.headers["cache-control"] == "no-store"
    session = dict(client.cookies)
    csrf = page.text.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
    out = client.form("/logout", {"csrf": csrf})
    assert out.status == 303
    stale = HttpsClient(web.port, web.certificate, cookies=session)
    assert stale.request("GET", "/v1/status").status == 401


def test_a_new_password_ends_every_session(web: WebGateway) -> None:
    client = web.client()
    client.log_in()
    assert client.request("GET", "/v1/status").status == 200
    changed = set_password(web.system.config_path, "a brand new passphrase")
    assert changed.returncode == 0, changed.stderr
    assert client.request("GET", "/v1/status").status == 401
    assert client.log_in().status == 401
    assert client.log_in(password="a brand new passphrase").status == 303
    short = set_password(web.system.config_path, "short")
    assert short.returncode == 1
    assert "at least 10 characters" in short.stderr


def test_a_first_password_is_made_and_shown_once(system: EmbeddedSystem, tmp_path: Path) -> None:
    web = start_web_gateway(system, tmp_path / "gateway.log", password=None)
    try:
        storage = system.settings.storage.dir
        shown = storage / "web-initial-password"
        assert stat.S_IMODE(shown.stat().st_mode) == 0o600
        assert stat.S_IMODE((storage / "web-password").stat().st_mode) == 0o600
        password = shown.read_text().split("password: ", 1)[1].strip()
        log = web.daemon.log_path.read_text()
        assert str(shown) in log
        assert password not in log
        assert password not in (storage / "web-password").read_text(), "kept hashed"
        assert (storage / "web-password").read_text().startswith("$argon2id$")
        client = web.client()
        assert client.log_in(password=password).status == 303
        web.daemon.stop()
        web.daemon.start()
        wait_until(lambda: _answers(web), 60, "the web pages answer again")
        assert client.log_in(password=password).status == 303, "the same password"
        assert set_password(system.config_path).returncode == 0
        assert not shown.exists(), "gone once a password is set"
    finally:
        web.daemon.close()


def test_live_values_of_a_device_from_the_snapshot(web: WebGateway) -> None:
    client = web.client()
    client.log_in()

    def voltage() -> float | None:
        readings = client.request("GET", "/v1/devices/mb-1/values").json()
        by_id = {r["id"]: r for r in readings}
        assert by_id["VoltageAN"]["unit"] == "V"
        value = by_id["VoltageAN"]["value"]
        return float(value) if value is not None else None

    wait_until(lambda: voltage() is not None, 30, "mb-1 answered")
    reading = voltage()
    assert reading is not None
    assert 200 < reading < 260  # the simulated mains
    by_id = {r["id"]: r for r in client.request("GET", "/v1/devices/mb-1/values").json()}
    assert by_id["MeterModel"]["value"] == "PM5560", "text from the device"
    assert isinstance(by_id["ActiveEnergyDelivered"]["value"], int), "an exact counter"
    assert by_id["VoltageAN"]["read_at_ms"] > (time.time() - 60) * 1000
    missing = client.request("GET", "/v1/devices/nope/values")
    assert missing.status == 404
    assert "no device 'nope'" in missing.json()["message"]


def test_the_event_stream_over_the_web_needs_a_session(web: WebGateway) -> None:
    client = web.client()
    assert client.request("GET", "/v1/events").status == 401
    client.log_in()
    connection = http.client.HTTPSConnection(
        "127.0.0.1", web.port, context=client.tls_context(), timeout=30
    )
    try:
        cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
        connection.request("GET", "/v1/events", headers={"Cookie": cookie})
        response = connection.getresponse()
        assert response.status == 200
        assert response.getheader("content-type", "").startswith("text/event-stream")
        seen = b""
        while b"event: status" not in seen:
            seen += response.read1(4096)
        assert b'"connection":"Not connected"' in seen
    finally:
        connection.close()


def _modules_of_a_running_daemon(config_path: Path, storage: Path) -> list[str]:
    """Which of the web stack's modules ``panelfast.daemon.serve`` has loaded once up."""
    probe = f"""
import asyncio, os, signal, sys
from pathlib import Path
from panelfast.config import load_settings
from panelfast.control._lock import StorageLock
from panelfast.daemon import serve

path = Path({str(config_path)!r})
settings = load_settings(path)

async def main():
    async def stop_when_up():
        sock = settings.storage.dir / "control.sock"
        while not sock.exists():
            await asyncio.sleep(0.05)
        heavy = ("jinja2", "argon2", "cryptography", "panelfast.web", "markupsafe")
        print(sorted(m for m in heavy if m in sys.modules), flush=True)
        os.kill(os.getpid(), signal.SIGTERM)
    watcher = asyncio.ensure_future(stop_when_up())
    await serve(settings, config_path=path)
    await watcher

with StorageLock(settings.storage.dir):
    asyncio.run(main())
"""
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().replace("'", '"'))


def test_without_web_the_daemon_loads_none_of_the_web_stack(system: EmbeddedSystem) -> None:
    storage = system.settings.storage.dir
    assert _modules_of_a_running_daemon(system.config_path, storage) == []
    enable_web(system, free_port())
    # The first start makes the certificate (cryptography); the next ones only read it.
    _modules_of_a_running_daemon(system.config_path, storage)
    assert _modules_of_a_running_daemon(system.config_path, storage) == [
        "argon2",
        "jinja2",
        "markupsafe",
        "panelfast.web",
    ]


def test_a_session_ends_when_idle_and_at_its_absolute_limit_whatever_happens() -> None:
    from panelfast.web._sessions import LoginLimiter, Sessions

    now = [1000.0]
    sessions = Sessions(idle_s=60, max_s=300, clock=lambda: now[0])
    cookie, session = sessions.open("admin", "pw1")
    assert sessions.get(cookie, "pw1", activity=True) is session
    now[0] += 50
    assert sessions.get(cookie, "pw1", activity=False) is session  # background: not kept alive
    now[0] += 15
    assert sessions.get(cookie, "pw1", activity=True) is None, "65 s idle"
    cookie, _ = sessions.open("admin", "pw1")
    for _ in range(5):  # a person active every 55 s...
        now[0] += 55
        assert sessions.get(cookie, "pw1", activity=True) is not None
    now[0] += 55
    assert sessions.get(cookie, "pw1", activity=True) is None, "...is logged out at 300 s"
    cookie, _ = sessions.open("admin", "pw1")
    assert sessions.get(cookie, "pw2", activity=True) is None, "the password changed"
    assert sessions.get("forged", "pw1", activity=True) is None
    assert len(sessions) == 0
    many = Sessions(idle_s=60, max_s=300, limit=3, clock=lambda: now[0])
    first, _ = many.open("admin", "pw")
    for _ in range(3):
        many.open("admin", "pw")
    assert len(many) == 3
    assert many.get(first, "pw", activity=True) is None, "the least recent went"

    limiter = LoginLimiter(attempts=2, window_s=100, clock=lambda: now[0])
    limiter.failed("10.0.0.1")
    assert limiter.wait_s("10.0.0.1") == 0
    limiter.failed("10.0.0.1")
    assert limiter.wait_s("10.0.0.1") == 100
    assert limiter.wait_s("10.0.0.2") == 0, "per client"
    now[0] += 100
    assert limiter.wait_s("10.0.0.1") == 0


def test_the_event_stream_ends_with_the_session(web: WebGateway) -> None:
    client = web.client()
    client.log_in()
    connection = http.client.HTTPSConnection(
        "127.0.0.1", web.port, context=client.tls_context(), timeout=60
    )
    try:
        cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
        connection.request("GET", "/v1/events", headers={"Cookie": cookie})
        response = connection.getresponse()
        assert response.status == 200
        seen = b""
        while b"event: status" not in seen:
            seen += response.read1(65536)
        started = time.monotonic()
        assert set_password(web.system.config_path, "another passphrase").returncode == 0
        while response.read1(65536):  # keeps coming until the daemon ends it
            assert time.monotonic() - started < 30, "the stream outlived its session"
        assert response.isclosed(), "a complete response, its last chunk sent"
    finally:
        connection.close()
    assert " ERROR " not in web.daemon.tail(100)


def test_set_password_asks_twice_on_a_terminal(system: EmbeddedSystem) -> None:
    """As a person types it: hidden, asked again, a mismatch asked anew."""
    terminal, tty = os.openpty()
    # setsid --ctty: the command's own session, this pseudo-terminal its terminal
    # (where a hidden prompt reads from), as in a shell.
    command = [
        "setsid", "--ctty", "--wait", sys.executable, "-m", "panelfast",
        "web", "set-password", "--config", str(system.config_path),
    ]  # fmt: skip
    child = subprocess.Popen(command, stdin=tty, stdout=tty, stderr=tty)
    os.close(tty)
    shown = b""

    def read(timeout: float = 0.5) -> bytes:
        if not select.select([terminal], [], [], timeout)[0]:
            return b""
        try:
            return os.read(terminal, 1024)
        except OSError:  # the command ended: its terminal closed
            return b""

    def answer(prompt: bytes, line: bytes) -> None:
        nonlocal shown
        deadline = time.monotonic() + 60
        while prompt not in shown:
            assert time.monotonic() < deadline, shown
            shown += read()
        shown = shown.split(prompt, 1)[1]
        os.write(terminal, line + b"\n")

    try:
        answer(b"(at least 10 characters): ", b"first passphrase")
        answer(b"Repeat it: ", b"another passphrase")
        answer(b"(at least 10 characters): ", b"the same passphrase")
        answer(b"Repeat it: ", b"the same passphrase")
        assert child.wait(timeout=60) == 0
        while chunk := read(0.2):
            shown += chunk
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        os.close(terminal)
    assert b"web password set for 'admin'" in shown
    assert b"passphrase" not in shown, "typed without echo"
    stored = system.settings.storage.dir / "web-password"
    assert PasswordFile(stored.parent).verify("the same passphrase")
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
