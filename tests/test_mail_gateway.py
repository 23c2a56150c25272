"""Email publication in the running gateway, as a site engineer uses it.

``panelfast run`` in one process, each command in another; the simulator,
the reference cloud and an SMTP server (aiosmtpd, STARTTLS with a certificate
from a trustme CA, AUTH) are real servers on loopback. An alarm is raised on
the simulator by switching the IO module's output Q1 on (its read-back state
crosses the threshold 0.5) and cleared by switching it off.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
from pymodbus.client import ModbusTcpClient

from mail_support import (
    PASSWORD,
    RECIPIENTS,
    Mailbox,
    Received,
    SmtpCA,
    SmtpServer,
    append_email,
    free_port,
    write_password,
)
from panelfast.control.wire import GatewayNotRunning, Wire
from panelfast.embedded import EmbeddedSystem, embedded_system
from reliability_support import GatewayProcess, wait_until

Q1_ALARM = {
    "id": "q1-on",
    "device": "io-1",
    "measurement": "OutputQ1",
    "condition": "over",
    "threshold": 0.5,
    "hysteresis": 0.0,
    "delay_s": 0,
    "severity": "high",
}


@pytest.fixture
def system(tmp_path: Path) -> Iterator[EmbeddedSystem]:
    with embedded_system(tmp_path, poll_period_ms=200) as s:
        yield s


@pytest.fixture
def ca(tmp_path: Path) -> SmtpCA:
    return SmtpCA(tmp_path / "smtp")


@pytest.fixture
def daemon(system: EmbeddedSystem, tmp_path: Path) -> Iterator[GatewayProcess]:
    process = GatewayProcess(system.config_path, tmp_path / "gateway.log")
    try:
        yield process
    finally:
        process.close()
        if process.log_path.exists():
            print(process.tail(60))  # shown when the test failed


def cli(system: EmbeddedSystem, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "panelfast", *args, "--config", str(system.config_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def api(system: EmbeddedSystem) -> Wire:
    return Wire(system.settings.storage.dir / "control.sock", timeout=60)


#: A remote configuration watching the same output as Q1_ALARM, as the cloud's alarm.
CLOUD_CONFIG = {
    "version": "0",
    "measurements": [{"device": "io-1", "measurement": "OutputQ1", "period_s": 1}],
    "alarms": [{**Q1_ALARM, "id": "cloud-q1"}],
    "publisher": {"period_s": 1},
}


def status_of(system: EmbeddedSystem) -> dict[str, Any]:
    status: dict[str, Any] = api(system).request("GET", "/v1/status").json()
    return status


def cloud_alarms(system: EmbeddedSystem) -> list[tuple[str, str]]:
    return [(e["alarm"], e["state"]) for e in system.cloud.alarm_events(system.serial)]


def mail(system: EmbeddedSystem) -> dict[str, Any]:
    """The alarm emails' status, as the daemon's API gives it."""
    email: dict[str, Any] = status_of(system)["publication"]["email"]
    return email


def _answers(system: EmbeddedSystem) -> bool:
    try:
        return api(system).request("GET", "/v1/status").ok
    except (GatewayNotRunning, OSError):
        return False


def start(daemon: GatewayProcess, system: EmbeddedSystem) -> None:
    daemon.start()
    wait_until(
        lambda: _answers(system) or not daemon.alive, 60, "the daemon serves its control API"
    )
    assert daemon.alive, daemon.tail()


def set_q1(system: EmbeddedSystem, on: bool) -> None:
    """Command the IO module's output Q1 (1 off, 2 on), as any Modbus client may."""
    host, port, unit, _ = system.simulator.endpoint("io-1")
    client = ModbusTcpClient(host, port=port, timeout=5, retries=1)
    assert client.connect()
    with client:
        assert not client.write_register(37050, 2 if on else 1, device_id=unit).isError()
    assert system.simulator.outputs("io-1")["Q1"] is on


def email_config(
    system: EmbeddedSystem,
    tmp_path: Path,
    ca: SmtpCA,
    port: int,
    *,
    method: str,
    password: str = PASSWORD,
) -> Path:
    password_file = write_password(tmp_path / "smtp-password", password)
    append_email(
        system.config_path,
        port=port,
        ca_bundle=ca.ca_pem,
        password_file=password_file,
        method=method,
        alarms=[Q1_ALARM],
    )
    return password_file


def rows(text: str) -> dict[str, str]:
    """What the CLI printed as ``Label:   value`` rows, by label."""
    return {
        label.strip(): value.strip()
        for label, sep, value in (line.partition(":") for line in text.splitlines())
        if sep
    }


def subject(message: EmailMessage) -> str:
    # A long subject is folded before its first word (legal, RFC 5322 §3.2.2), which
    # Python's parser leaves as a leading space; mail clients show it without.
    return str(message["Subject"]).strip()


def state_of(message: EmailMessage) -> str:
    said = subject(message)
    assert said.startswith(("ALARM (high): io-1 OutputQ1 = ", "Alarm cleared: io-1 OutputQ1 = "))
    return "on" if said.startswith("ALARM") else "off"


def check_each_to_every_recipient_once(received: list[Received]) -> None:
    for r in received:
        assert sorted(r.recipients) == sorted(RECIPIENTS)
        assert str(r.message["To"]).split(", ") == list(RECIPIENTS)
    ids = [r.message_id for r in received]
    assert len(set(ids)) == len(ids), f"an email was sent twice: {ids}"


def test_an_alarm_raised_on_the_simulator_reaches_every_recipient_once(
    system: EmbeddedSystem, daemon: GatewayProcess, ca: SmtpCA, tmp_path: Path
) -> None:
    mailbox = Mailbox()
    with SmtpServer(ca, mailbox) as server:
        email_config(system, tmp_path, ca, server.port, method="email")
        start(daemon, system)

        set_q1(system, True)
        (raised,) = mailbox.wait_for(1)
        set_q1(system, False)
        received = mailbox.wait_for(2)
        wait_until(lambda: mail(system)["sent"] == 2, 30, "both marked sent")

        raised, cleared = received
        assert [state_of(r.message) for r in received] == ["on", "off"]
        assert subject(raised.message) == (
            "ALARM (high): io-1 OutputQ1 = 1, over 0.5 [Panel Server demo PS-0042-7A19]"
        )
        assert raised.message["X-Panelfast-Alarm"] == "q1-on"
        body = raised.message.get_body(("plain",))
        assert body is not None
        text = body.get_content()
        assert "IO module (io-1)" in text
        assert "over 0.5 (hysteresis 0, delay 0 s)" in text
        raised_at = parsedate_to_datetime(str(raised.message["Date"]))
        assert raised_at <= parsedate_to_datetime(str(cleared.message["Date"]))
        check_each_to_every_recipient_once(received)

        status = cli(system, "status")
        assert status.returncode == 0, status.stderr
        shown = rows(status.stdout)
        assert shown["Publication method"] == "email (alarms of [[email.alarms]] by email)"
        assert shown["Alarm emails"] == "0 queued, 2 sent, 0 dropped"
        publication = cli(system, "publication")
        assert publication.returncode == 0, publication.stderr
        shown = rows(publication.stdout)
        assert shown["SMTP server"] == f"127.0.0.1:{server.port} (starttls, user gateway)"
        assert shown["Recipients"] == ", ".join(RECIPIENTS)
        assert shown["q1-on"] == "io-1 OutputQ1 over 0.5 (hysteresis 0, delay 0 s, severity high)"
        assert PASSWORD not in publication.stdout + status.stdout

        # A restart while the alarm is active: it is not emailed again (its state
        # was kept with its event). Emails go in order, so a repeat would come
        # before the email of the alarm's clearing.
        set_q1(system, True)
        mailbox.wait_for(3)
        wait_until(lambda: mail(system)["sent"] == 3, 30, "the third marked sent")
        daemon.stop()
        start(daemon, system)
        set_q1(system, False)
        received = mailbox.wait_for(4)
        assert [state_of(r.message) for r in received] == ["on", "off", "on", "off"]
        check_each_to_every_recipient_once(received)

        # The test email, through the daemon: the server's answer.
        tested = cli(system, "email", "test")
        assert tested.returncode == 0, tested.stderr
        assert tested.stdout.splitlines() == [
            f"test email sent by 127.0.0.1:{server.port} to 3 recipient(s)",
            "server answer: 250 2.0.0 accepted",
        ]
        test_email = mailbox.wait_for(5)[-1].message
        assert subject(test_email) == "Test email from Panel Server demo PS-0042-7A19"
    audit = cli(system, "audit")
    assert "email.test" in audit.stdout


def test_while_the_server_is_down_emails_wait_then_go_in_order_once_even_after_a_sigkill(
    system: EmbeddedSystem, daemon: GatewayProcess, ca: SmtpCA, tmp_path: Path
) -> None:
    mailbox = Mailbox()
    server = SmtpServer(ca, mailbox, port=free_port())  # down for now
    email_config(system, tmp_path, ca, server.port, method="email")
    start(daemon, system)
    for n, on in enumerate((True, False, True), 1):
        set_q1(system, on)
        wait_until(lambda n=n: mail(system)["queued"] == n, 60, f"alarm event {n} stored")
    failing = mail(system)
    assert failing["failing"] is True
    assert failing["last_error"]["stage"] == "connect"
    assert (
        f"cannot reach the SMTP server 127.0.0.1:{server.port}"
        in (failing["last_error"]["message"])
    )
    shown = rows(cli(system, "publication", "show").stdout)
    assert shown["Alarm emails"] == "3 queued, 0 sent, 0 dropped"
    assert shown["Last email error"].startswith(
        "FAILING, retried: connect: cannot reach the SMTP server"
    )

    daemon.kill()  # as a power cut, with the alarm active: no cleanup of any kind
    start(daemon, system)
    assert mail(system)["queued"] == 3, "every event stored survived"
    set_q1(system, False)  # its clearing, while the server is still down
    wait_until(lambda: mail(system)["queued"] == 4, 60, "the fourth alarm event stored")

    server.start()
    try:
        received = mailbox.wait_for(4, within_s=120)
        wait_until(lambda: mail(system)["queued"] == 0, 30, "the queue drained")
        # A repeat of any would come before the next alarm's email.
        set_q1(system, True)
        received = mailbox.wait_for(5)
    finally:
        server.stop()
    assert [state_of(r.message) for r in received] == ["on", "off", "on", "off", "on"]
    dates = [parsedate_to_datetime(str(r.message["Date"])) for r in received]
    assert dates == sorted(dates), "in the order of the events"
    check_each_to_every_recipient_once(received)
    after = mail(system)
    assert (after["queued"], after["sent"], after["dropped"]) == (0, 5, 0)
    assert after["failing"] is False


def test_a_wrong_password_is_shown_with_the_servers_answer_until_it_is_fixed(
    system: EmbeddedSystem, daemon: GatewayProcess, ca: SmtpCA, tmp_path: Path
) -> None:
    mailbox = Mailbox()
    with SmtpServer(ca, mailbox) as server:
        password_file = email_config(
            system, tmp_path, ca, server.port, method="email", password="hunter2"
        )
        start(daemon, system)
        set_q1(system, True)
        wait_until(
            lambda: (m := mail(system))["failing"] and m["last_error"]["stage"] == "login",
            60,
            "the login refused",
        )
        error = mail(system)["last_error"]
        assert (error["code"], error["text"]) == (535, "5.7.8 Authentication credentials invalid")
        answer = (
            "login: the server refused the login: "
            "the server answered 535 5.7.8 Authentication credentials invalid"
        )
        assert error["message"] == answer
        status = cli(system, "status")
        shown = rows(status.stdout)
        assert shown["Last email error"].startswith(f"FAILING, retried: {answer} (at ")
        assert shown["Alarm emails"] == "1 queued, 0 sent, 0 dropped"

        tested = cli(system, "email", "test")
        assert tested.returncode == 1
        assert tested.stderr.splitlines() == [
            f"test email not sent: {answer}",
            "server answer: 535 5.7.8 Authentication credentials invalid",
        ]
        assert mailbox.messages() == []

        # Fixed: the email waiting goes at the next try, once.
        write_password(password_file, PASSWORD)
        (received,) = mailbox.wait_for(1, within_s=120)
        assert state_of(received.message) == "on"
        wait_until(lambda: mail(system)["failing"] is False, 30, "the mailer recovered")
    everything = "".join(
        [daemon.tail(10_000), status.stdout, status.stderr, tested.stdout, tested.stderr]
    )
    assert "hunter2" not in everything


def test_email_is_refused_while_cloud_services_are_on_and_connect_while_email_is_on(
    system: EmbeddedSystem, daemon: GatewayProcess, ca: SmtpCA, tmp_path: Path
) -> None:
    mailbox = Mailbox()
    with SmtpServer(ca, mailbox) as server:
        email_config(system, tmp_path, ca, server.port, method="cloud")
        start(daemon, system)
        connected = cli(system, "connect")
        assert connected.returncode == 0, connected.stdout + connected.stderr
        assert cli(system, "topology", "publish").returncode == 0
        # In cloud mode the remote configuration's alarms are watched, to the cloud.
        version = system.cloud.set_config(system.serial, CLOUD_CONFIG)["version"]
        wait_until(
            lambda: status_of(system)["remote_config"]["applied_version"] == version,
            60,
            "the remote configuration applied",
        )
        set_q1(system, True)
        wait_until(
            lambda: cloud_alarms(system) == [("cloud-q1", "active")], 60, "the cloud's alarm"
        )
        original = system.config_path.read_text(encoding="utf-8")

        # Enabling email while cloud services are on: refused, saying what to turn off.
        for command in (("publication", "method", "email"), ("set", "publication.method", "email")):
            refused = cli(system, *command)
            assert refused.returncode == 1, refused.stdout
            assert refused.stderr.splitlines() == [
                "Error: cannot enable email publication of alarms: cloud services are on "
                "(connected), and the two are mutually exclusive; Disconnect first, then set "
                "the publication method to email",
                "hint: run: panelfast disconnect",
            ]
        refused = cli(system, "publication", "method", "none")
        assert refused.returncode == 1
        assert "Disconnect first" in refused.stderr
        answer = api(system).request("PUT", "/v1/publication", {"method": "email"})
        assert answer.status == 409
        body = answer.json()
        assert (body["error"], body["turn_off"]) == ("publication_conflict", "cloud services")
        assert body["hint"] == "run: panelfast disconnect"
        assert system.config_path.read_text(encoding="utf-8") == original
        shown = api(system).request("GET", "/v1/publication").json()
        assert (shown["method"], shown["cloud_services"]) == ("cloud", True)
        assert shown["email"]["recipients"] == list(RECIPIENTS)
        assert "password_file" not in shown["email"]

        # Disconnected, the switch is taken: in the file and at once in the gateway.
        assert cli(system, "disconnect").returncode == 0
        switched = cli(system, "publication", "method", "email")
        assert switched.returncode == 0, switched.stderr
        assert switched.stdout.startswith("publication method changed from cloud to email\n")
        assert rows(switched.stdout)["Cloud services"] == "off"
        document = tomllib.loads(system.config_path.read_text(encoding="utf-8"))
        assert document["publication"]["method"] == "email"
        # At once: the local alarms are watched (Q1 is on: raised), and emailed;
        # the first email is that one (nothing of the cloud's alarm went by email).
        (received,) = mailbox.wait_for(1)
        assert state_of(received.message) == "on"
        assert received.message["X-Panelfast-Alarm"] == "q1-on"
        set_q1(system, False)
        assert state_of(mailbox.wait_for(2)[-1].message) == "off"

        # Connect while email is on: refused, from the CLI and the API.
        refused = cli(system, "connect")
        assert refused.returncode == 1
        assert refused.stderr.splitlines() == [
            "Error: cloud services are off: the publication method is email; set it to cloud "
            "first (that turns email publication of alarms off: the two are mutually "
            "exclusive), then Connect",
            "hint: run: panelfast publication method cloud",
        ]
        answer = api(system).request("POST", "/v1/connect")
        assert answer.status == 409
        assert answer.json()["turn_off"] == "email publication"
        assert status_of(system)["cloud"]["connection"] == "Not connected"

        # Back to cloud: the mailer stops and Connect is taken again.
        back = cli(system, "publication", "method", "cloud")
        assert back.returncode == 0, back.stderr
        again = cli(system, "connect")
        assert again.returncode == 0, again.stdout + again.stderr
        assert "Connection status:      Connected" in again.stdout
        assert api(system).request("GET", "/v1/publication").json()["mail"]["sent"] == 2
        # The cloud's alarms are watched again at once: Q1 went off meanwhile.
        wait_until(
            lambda: cloud_alarms(system) == [("cloud-q1", "active"), ("cloud-q1", "inactive")],
            60,
            "the cloud's alarm cleared",
        )

    audit = [
        line.split(None, 4)[3:]  # date, time, who | action, outcome and detail
        for line in cli(system, "audit", "--limit", "50").stdout.splitlines()
    ]
    publication = [
        (action, rest.split()[0].rstrip(":"))
        for action, rest in audit
        if action in ("publication.method", "connect")
    ]
    assert publication == [
        ("connect", "ok"),
        ("publication.method", "PublicationConflict"),
        ("publication.method", "PublicationConflict"),
        ("publication.method", "PublicationConflict"),
        ("publication.method", "PublicationConflict"),
        ("publication.method", "ok"),
        ("connect", "PublicationConflict"),
        ("connect", "PublicationConflict"),
        ("publication.method", "ok"),
        ("connect", "ok"),
    ]


def test_a_gateway_started_in_email_mode_while_connected_disconnects(
    system: EmbeddedSystem, daemon: GatewayProcess, ca: SmtpCA, tmp_path: Path
) -> None:
    """The file edited by hand to email while the Connect held: the two never run together."""
    email_config(system, tmp_path, ca, free_port(), method="cloud")
    start(daemon, system)
    assert cli(system, "connect").returncode == 0
    daemon.stop()
    text = system.config_path.read_text(encoding="utf-8")
    system.config_path.write_text(
        text.replace('method = "cloud"', 'method = "email"'), encoding="utf-8"
    )

    start(daemon, system)
    publication = api(system).request("GET", "/v1/publication").json()
    assert (publication["method"], publication["cloud_services"]) == ("email", False)
    status = api(system).request("GET", "/v1/status").json()
    assert status["cloud"]["connection"] == "Not connected"
    assert system.cloud.disconnects(system.serial), "the cloud was told (§11)"
    assert "cloud services stay off: the publication method is email" in daemon.tail()
