"""The web pages in Chromium, as a Panel Server user works with them.

Each test has its own site: the reference cloud (on a fixed port, so that it
can be stopped and brought back), the device simulator, a real SMTP server,
and ``panelfast run`` with its web pages on, as a separate process. The
daemons serve one certificate of a test CA (``[web] certificate``), which the
browser trusts by its key, and nothing else (the certificate the gateway makes
itself is tested in ``test_web.py``). Every screenshot is kept under
``tests/artifacts/screenshots/``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from browser_support import (
    DESKTOP,
    PHONE,
    Screenshots,
    browser,
    page,
    phone_page,
    playwright_driver,
    screenshots,
    wait_for,
)
from cloud_support import free_port
from mail_support import Mailbox, SmtpCA, SmtpServer, append_email, write_password
from panelfast.commands import RISK
from panelfast.embedded import embedded_system
from panelfast.refcloud import RefCloud
from web_support import PASSWORD, WebGateway, WebTls, start_web_gateway

__all__ = ["browser", "page", "phone_page", "playwright_driver", "screenshots"]


@dataclass
class Site:
    web: WebGateway
    cloud: RefCloud
    folder: Path
    mailbox: Mailbox

    @property
    def url(self) -> str:
        return self.web.url

    @property
    def serial(self) -> str:
        return self.web.system.serial


@pytest.fixture(scope="module")
def web_tls(tmp_path_factory: pytest.TempPathFactory) -> WebTls:
    return WebTls.make(tmp_path_factory.mktemp("web-tls"))


@pytest.fixture(scope="module")
def trusted_certificates(web_tls: WebTls) -> list[Path]:
    return [web_tls.certificate]


@pytest.fixture
def site(tmp_path: Path, web_tls: WebTls) -> Iterator[Site]:
    mailbox = Mailbox()
    with (
        embedded_system(tmp_path, poll_period_ms=500, cloud_port=free_port()) as system,
        SmtpServer(SmtpCA(tmp_path / "smtp"), mailbox) as smtp,
    ):
        # Email publication set up (the method stays cloud), for its part of the page.
        append_email(
            system.config_path,
            port=smtp.port,
            ca_bundle=smtp.ca.ca_pem,
            password_file=write_password(tmp_path / "smtp-password"),
            method="cloud",
        )
        web = start_web_gateway(system, tmp_path / "gateway.log", tls=web_tls)
        here = Site(web, system.cloud, tmp_path, mailbox)
        try:
            yield here
        finally:
            web.daemon.close()
            print(web.daemon.tail(60))  # shown when the test failed
            if here.cloud is not system.cloud:
                here.cloud.stop()


def commission(site: Site) -> None:
    """Connect and publish the topology from the command line, as a site engineer
    may have done before opening the page."""
    for command in (("connect",), ("topology", "publish")):
        done = site.web.cli(*command)
        assert done.returncode == 0, done.stderr


def configure(site: Site, document: dict[str, Any]) -> str:
    """The cloud sends ``document``; returns its version once the gateway applied it."""
    version: str = site.cloud.set_config(site.serial, document)["version"]

    def applied() -> bool:
        status = json.loads(site.web.cli("status", "--json").stdout)
        return bool(status["remote_config"]["applied_version"] == version)

    wait_for(applied, what=f"configuration {version} applied", timeout=60)
    return version


def log_in(page: Page, site: Site, path: str = "/settings/publication") -> None:
    page.goto(site.url + path)
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.get_by_label("User name").fill("admin")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(site.url + path)


def section(page: Page, title: str) -> Any:
    return page.get_by_role("region", name=title)


def topology_measurements(site: Site) -> list[tuple[str, str]]:
    published = site.cloud.topology(site.serial)
    assert published is not None
    return [
        (device["id"], m["id"])
        for device in published["document"]["devices"]
        for m in device["measurements"]
    ]


def large_configuration(site: Site) -> dict[str, Any]:
    """Every measurement of the topology and the most alarms a configuration may hold (100)."""
    measured = topology_measurements(site)
    numeric = [pair for pair in measured if pair[1].startswith(("Voltage", "Current", "Active"))]
    return {
        "version": "0",
        "measurements": [{"device": d, "measurement": m, "period_s": 60} for d, m in measured],
        "alarms": [
            {
                "id": f"alarm-{k:03d}",
                "device": numeric[k % len(numeric)][0],
                "measurement": numeric[k % len(numeric)][1],
                "condition": "over" if k % 2 else "under",
                "threshold": 1000.0 + k,
                "hysteresis": 2.5,
                "delay_s": 10 + k % 50,
                "severity": ("low", "medium", "high")[k % 3],
            }
            for k in range(100)
        ],
        "publisher": {"period_s": 5},
    }


def test_log_in_refuses_a_wrong_password_then_pauses_this_address(
    page: Page, site: Site, screenshots: Screenshots
) -> None:
    page.goto(site.url + "/devices")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Fdevices$"))
    screenshots.take(page, "login")
    for attempt in range(5):
        page.get_by_label("User name").fill("admin")
        page.get_by_label("Password").fill(f"not the password {attempt}")
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("alert")).to_contain_text("Wrong user name or password.")
        expect(page.get_by_label("Password")).to_have_attribute("aria-invalid", "true")
        if attempt == 0:
            expect(page.get_by_role("alert")).to_contain_text("4 more attempts before a pause")
            screenshots.take(page, "wrong-password")
    page.get_by_label("User name").fill("admin")
    page.get_by_label("Password").fill(PASSWORD)  # right, but too late
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text(
        "Too many failed log-ins from this address (127.0.0.1): try again in"
    )
    expect(page).to_have_url(re.compile(r"/login"))
    screenshots.take(page, "rate-limited")


def test_connect_publish_and_the_cloud_service_icon(
    page: Page, site: Site, screenshots: Screenshots
) -> None:
    log_in(page, site)
    icon = page.locator(".cloud-service")
    expect(icon).to_have_attribute("aria-label", "Cloud service: not connected")
    cloud = section(page, "Cloud applications management")
    expect(cloud.locator("#connection-status")).to_have_text("Not connected")
    screenshots.take(page, "not-connected")

    cloud.get_by_role("button", name="Connect", exact=True).click()
    expect(cloud.locator("#connection-status")).to_have_text("Connected")
    expect(cloud.locator("#connection-diagnostics")).to_have_text("Device activated")
    expect(cloud.get_by_role("button", name="Connect", exact=True)).to_be_disabled()

    topology = section(page, "Publish topology")
    expect(topology.locator("#topology-published")).to_have_text("never published")
    publish = topology.get_by_role("button", name="Publish topology")
    publish.focus()
    page.keyboard.press("Enter")  # the keyboard works as well as the mouse
    expect(topology.locator("#topology-result")).to_have_text("Topology published.")
    expect(topology.locator("#topology-published")).to_contain_text(
        re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \w+ \(version t-")
    )
    expect(topology.locator("#publish-again")).to_have_count(0)

    # The cloud configures the gateway: the most alarms a configuration may hold.
    applied = page.locator("#apply")
    document = large_configuration(site)
    version = site.cloud.set_config(site.serial, document)["version"]
    expect(applied).to_be_visible()
    expect(applied.get_by_role("progressbar")).to_have_attribute(
        "aria-valuetext", re.compile(r"\d+%, (measurements|alarms|publisher)")
    )
    expect(page.locator("#top-status")).to_have_class(re.compile("is-applying"))
    screenshots.take(page, "applying", full_page=False)
    expect(applied).to_be_hidden()

    expect(icon).to_have_attribute("aria-label", "Cloud service: valid remote configuration")
    expect(icon).to_have_class(re.compile("cloud-service--valid"))
    remote = section(page, "Remote configuration")
    expect(remote.locator("#rc-state")).to_contain_text(
        f"Valid remote configuration: version {version}, {len(document['measurements'])} "
        "measurements, 100 alarms."
    )
    expect(remote.get_by_label("Publication period")).to_have_value("5 s")
    expect(remote.locator("table.alarms tbody tr")).to_have_count(100)
    first = remote.locator("table.alarms tbody tr").first
    expect(first).to_contain_text("alarm-000")
    expect(first).to_contain_text("1,000")
    expect(first).to_contain_text("2.5")
    expect(first).to_contain_text("10 s")
    expect(remote.locator("details.group").first).to_contain_text("Main incomer")
    wait_for(lambda: site.cloud.reports(site.serial)[-1]["status"] == "applied", what="report")
    screenshots.take(page, "valid")

    # An invalid configuration: rejected whole, the icon orange, the paths shown.
    invalid = large_configuration(site)
    invalid["measurements"][1]["period_s"] = 0
    invalid["measurements"].append({"device": "mb-1", "measurement": "NoSuchThing", "period_s": 60})
    rejected = site.cloud.set_config(site.serial, invalid)["version"]
    expect(icon).to_have_attribute("aria-label", "Cloud service: invalid remote configuration")
    expect(icon).to_have_class(re.compile("cloud-service--invalid"))
    rejection = remote.locator("#rejection")
    expect(rejection).to_contain_text(f"Why version {rejected} was rejected (2 errors)")
    paths = rejection.locator("code.path")
    expect(paths).to_have_count(2)
    assert set(paths.all_inner_texts()) == {
        "measurements[1].period_s",
        f"measurements[{len(invalid['measurements']) - 1}].measurement",
    }
    expect(remote.locator("#rc-state")).to_contain_text(
        f"version {rejected} was rejected; version {version} stays in force"
    )
    screenshots.take(page, "invalid")


def test_the_publication_method_and_why_a_switch_is_refused(
    page: Page, site: Site, screenshots: Screenshots
) -> None:
    commission(site)
    log_in(page, site)
    method = section(page, "Publication method")
    cloud = section(page, "Cloud applications management")
    expect(cloud.locator("#connection-status")).to_have_text("Connected")
    result = method.locator("#method-result")

    # Cloud services are on: email publication is refused, and the page says why.
    method.get_by_label("Email for alarms").check()
    method.get_by_role("button", name="Save").click()
    expect(result).to_contain_text(
        "Cannot enable email publication of alarms: cloud services are on (connected)"
    )
    expect(result).to_contain_text("Disconnect first")
    expect(result).not_to_contain_text("run: panelfast")
    screenshots.take(page, "email-refused")

    # The test email goes whatever the method.
    method.get_by_role("button", name="Send a test email").click()
    expect(method.locator("#email-result")).to_contain_text(
        re.compile(r"Test email sent by 127\.0\.0\.1:\d+ to 3 recipient\(s\); server answer: 250")
    )
    assert len(site.mailbox.wait_for(1)) == 1

    cloud.get_by_role("button", name="Disconnect").click()
    expect(cloud.locator("#connection-status")).to_have_text("Not connected")
    method.get_by_label("Email for alarms").check()
    method.get_by_role("button", name="Save").click()
    expect(result).to_have_text("Publication method: Email for alarms.")
    expect(method.locator(".choice", has_text="Email for alarms")).to_contain_text("in force")
    expect(cloud.locator("#cloud-off")).to_contain_text(
        "Cloud services are off: the publication method is Email for alarms."
    )
    cloud.get_by_role("button", name="Connect", exact=True).click()
    expect(cloud.locator("#cloud-result")).to_contain_text(
        "Cloud services are off: the publication method is email; set it to cloud first"
    )
    screenshots.take(page, "connect-refused")
    assert 'method = "email"' in site.web.system.config_path.read_text()

    method.get_by_label("Cloud services").check()
    method.get_by_role("button", name="Save").click()
    expect(result).to_have_text("Publication method: Cloud services.")
    expect(cloud.locator("#cloud-off")).to_have_count(0)
    cloud.get_by_role("button", name="Connect", exact=True).click()
    expect(cloud.locator("#connection-status")).to_have_text("Connected")
    actions = [
        line.split()[3] for line in site.web.cli("audit").stdout.splitlines() if "web:admin" in line
    ]
    assert actions[-7:] == [
        "publication.method",  # refused: connected
        "email.test",
        "disconnect",
        "publication.method",
        "connect",  # refused: email
        "publication.method",
        "connect",
    ], actions


def test_a_cloud_managed_setting_cannot_be_changed_here(
    page: Page, site: Site, screenshots: Screenshots
) -> None:
    log_in(page, site)
    remote = section(page, "Remote configuration")
    period = remote.get_by_label("Publication period")
    expect(period).not_to_be_editable()
    expect(period).to_have_attribute("aria-describedby", "managed-note")
    expect(page.locator("#managed-note")).to_have_text(
        "Managed by the cloud: read-only on the gateway. Change it in the cloud application."
    )
    settings = section(page, "Local settings")
    settings.get_by_label("Setting").fill("publisher.period_s")
    settings.get_by_label("New value").fill("10")
    settings.get_by_role("button", name="Change").click()
    result = settings.locator("#setting-result")
    expect(result).to_contain_text("publisher.period_s is managed by the cloud")
    expect(result).to_have_class(re.compile("result--bad"))
    screenshots.take(page, "refused")
    assert "period_s = 10" not in site.web.system.config_path.read_text()
    audit = site.web.cli("audit").stdout
    assert re.search(r"web:admin\s+settings\.change\s+RemoteConfigReadOnly", audit), audit

    # A setting of the gateway's own is changed, and the table follows.
    settings.get_by_label("Setting").fill("storage.quota_mb")
    settings.get_by_label("New value").fill("1800")
    settings.get_by_role("button", name="Change").click()
    expect(result).to_have_text("storage.quota_mb is now 1800.")
    expect(settings.locator("tbody tr", has_text="storage.quota_mb")).to_contain_text("1800")
    assert "quota_mb = 1800" in site.web.system.config_path.read_text()


def test_identification_and_the_firewall_list_are_copied(
    page: Page, site: Site, screenshots: Screenshots
) -> None:
    commission(site)  # the hub's and the upload service's hosts come with the bootstrap
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site.url)
    log_in(page, site)
    identification = section(page, "Identification")
    identification.get_by_role("button", name="Copy serial number").click()
    expect(identification.locator(".result")).to_have_text(f"Copied: {site.serial}")
    assert page.evaluate("navigator.clipboard.readText()") == site.serial
    identification.get_by_role("button", name="Copy mac address").click()
    assert page.evaluate("navigator.clipboard.readText()") == "aa:bb:cc:00:42:19"
    expect(identification.get_by_role("button", name="Copy claim key")).to_have_count(0)
    identification.get_by_role("button", name="Copy all").click()
    everything = page.evaluate("navigator.clipboard.readText()")
    assert f"Serial number:    {site.serial}" in everything
    assert "Claim key:" in everything
    claim_key = (site.folder / "claim.key").read_text().strip()
    assert claim_key not in everything, "never in full"
    assert claim_key not in page.content()
    screenshots.take(page, "identification-copied")

    firewall = section(page, "Firewall")
    firewall.get_by_role("button", name="Copy the list").click()
    rules = page.evaluate("navigator.clipboard.readText()")
    port = site.cloud.ports["hub"]
    assert f"tcp 127.0.0.1:{port}  hub (HTTPS)" in rules, rules


def test_publish_again_when_devices_changed(
    page: Page, site: Site, screenshots: Screenshots
) -> None:
    commission(site)
    log_in(page, site)
    topology = section(page, "Publish topology")
    expect(topology.locator("#topology-published")).to_contain_text("version t-")
    expect(topology.locator("#publish-again")).to_have_count(0)
    # The device is renamed in the file and the running gateway reloads it: the
    # open page says at once that the topology must be published again.
    config = site.web.system.config_path
    text = config.read_text()
    config.write_text(text.replace('name = "Lighting feeder"', 'name = "Lighting, floor 2"'))
    reloaded = site.web.cli("reload")
    assert reloaded.returncode == 0, reloaded.stderr
    topology = section(page, "Publish topology")
    notice = topology.locator("#publish-again")
    expect(notice).to_have_text(
        "Devices changed since the last publication: publish the topology again."
    )
    screenshots.take(page, "publish-again")
    topology.get_by_role("button", name="Publish topology").click()
    expect(notice).to_have_count(0)
    published = site.cloud.topology(site.serial)
    assert published is not None
    names = [d["name"] for d in published["document"]["devices"]]
    assert "Lighting, floor 2" in names


def test_devices_their_state_and_live_values(
    page: Page, site: Site, screenshots: Screenshots
) -> None:
    log_in(page, site, "/devices")
    meter = page.locator("#device-mb-1")
    expect(meter.get_by_role("heading")).to_contain_text("Main incomer")
    expect(meter.locator(".device-state .badge")).to_have_text("ok")
    expect(meter).to_contain_text("Registers it lacks")
    expect(meter).to_contain_text(re.compile(r"last \d+\.\d ms, mean \d+\.\d ms, max"))
    requests_before = meter.locator("dd", has_text="errors:").inner_text()
    # The diagnostics follow the event stream: the request counter moves on its own.
    expect(meter.locator("dd", has_text="errors:")).not_to_have_text(requests_before)
    meter.get_by_text("Live values of its measurements").click()
    voltage = meter.locator("tr", has_text="VoltageAN")
    expect(voltage).to_contain_text(re.compile(r"2[0-9]{2}\.[0-9]+ V"))
    expect(meter.locator("tr", has_text="MeterModel")).to_contain_text("PM5560")
    first = voltage.inner_text()
    expect(voltage).not_to_have_text(first)  # live: read again every two seconds
    screenshots.take(page, "devices")


def test_at_a_phone_s_width(phone_page: Page, site: Site, screenshots: Screenshots) -> None:
    commission(site)
    configure(site, large_configuration(site))
    page = phone_page
    log_in(page, site)
    expect(section(page, "Remote configuration")).to_be_visible()
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"the page is {overflow} px wider than the phone"
    screenshots.take(page, "publication")
    page.get_by_role("link", name="Devices").click()
    page.locator("#device-mb-2").get_by_text("Live values of its measurements").click()
    expect(page.locator("#device-mb-2 tr", has_text="ActivePower").first).to_contain_text("kW")
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"the Devices page is {overflow} px wider than the phone"
    screenshots.take(page, "devices")


def test_diagnostics_follow_the_cloud_away_and_back(
    page: Page, site: Site, screenshots: Screenshots
) -> None:
    commission(site)
    log_in(page, site)
    cloud = section(page, "Cloud applications management")
    expect(cloud.locator("#connection-diagnostics")).to_have_text("Device activated")
    port = site.cloud.ports["hub"]
    site.cloud.stop()
    down = time.monotonic()
    # No reload: the page follows the daemon's event stream.
    expect(cloud.locator("#connection-diagnostics")).to_have_text(
        "Network unreachable", timeout=60_000
    )
    expect(cloud.locator("#connection-status")).to_have_text("Connection in progress")
    expect(cloud.locator("#connection-hint")).to_contain_text(f"127.0.0.1:{port}")
    expect(page.locator(".cloud-service")).to_have_attribute(
        "aria-label", "Cloud service: not connected"
    )
    fixes = cloud.locator("details.fixes")
    fixes.locator("summary").click()
    expect(fixes.locator(".fix--now")).to_contain_text("check the proxy")
    screenshots.take(page, "network-unreachable")
    print(f"Network unreachable shown {time.monotonic() - down:.1f} s after the cloud stopped")

    site.cloud = RefCloud(site.folder / "cloud", port=port).start()
    expect(cloud.locator("#connection-diagnostics")).to_have_text(
        "Device activated", timeout=120_000
    )
    expect(cloud.locator("#connection-status")).to_have_text("Connected")
    expect(fixes).to_have_attribute("open", "")  # the person's choice survives the updates
    screenshots.take(page, "back")


def test_outputs_remote_control_the_pop_up_the_outputs_and_control_scheduling(
    page: Page, site: Site, screenshots: Screenshots
) -> None:
    commission(site)
    simulator = site.web.system.simulator
    log_in(page, site)
    outputs = section(page, "Outputs remote control")
    state = outputs.locator("#remote-control-state")
    expect(state).to_contain_text("Disabled")
    expect(outputs.locator("#no-schedules")).to_have_text("No schedule received from the cloud.")
    scheduling = page.locator("#control-scheduling")
    expect(scheduling).to_have_text("")
    expect(scheduling).to_be_hidden()

    # Enabling asks first, naming the risk; Cancel leaves it disabled.
    dialog = page.get_by_role("dialog", name="Enable outputs remote control?")
    expect(dialog).to_be_hidden()
    outputs.get_by_role("button", name="Enable remote control…").click()
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(
        "the cloud will be able to switch this gateway's outputs — and so the loads "
        "connected to its IO modules — remotely"
    )
    expect(dialog).to_contain_text("without anyone on site")
    expect(dialog).to_contain_text(RISK)
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    screenshots.take(page, "confirm", full_page=False)
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(state).to_contain_text("Disabled")
    status = site.web.cli("outputs", "remote-control", "status").stdout
    assert "Outputs remote control: disabled" in status, status

    outputs.get_by_role("button", name="Enable remote control…").click()
    dialog.get_by_role("button", name="I understand, enable remote control").click()
    expect(dialog).to_be_hidden()
    expect(outputs.locator("#remote-control-result")).to_have_text(
        "Outputs remote control enabled."
    )
    expect(state).to_contain_text("Enabled")
    expect(state).to_contain_text("by web:admin")
    status = site.web.cli("outputs", "remote-control", "status").stdout
    assert "Outputs remote control: enabled" in status, status

    # A local switch of the simulated IO module: the device follows, then the page.
    row = outputs.locator('tr[data-output="io-1/Q1"]')
    expect(row.locator(".output-state")).to_have_text("off")
    row.get_by_role("button", name="(io-1/Q1) on").click()
    expect(outputs.locator("#outputs-result")).to_have_text(
        "io-1/Q1 is on (read back from the device)."
    )
    wait_for(lambda: simulator.outputs("io-1")["Q1"] is True, what="Q1 on at the device")
    expect(row.locator(".output-state")).to_have_text("on")
    history = outputs.locator("table.history-table tbody tr").first
    expect(history).to_contain_text("io-1/Q1")
    expect(history).to_contain_text("Local (web:admin)")

    # A schedule from the cloud: the header says "Control scheduling", live.
    schedule = {
        "id": "night-lights",
        "output": "io-1/Q2",
        "timezone": "Europe/Paris",
        "entries": [{"days": ["mon", "tue", "wed", "thu", "fri"], "at": "03:00", "action": "on"}],
    }
    site.cloud.queue_command(site.serial, {"type": "schedule", "schedule": schedule})
    expect(scheduling).to_have_text("Control scheduling")
    expect(scheduling).to_be_visible()
    schedules = outputs.locator("table.schedules-table tbody tr")
    expect(schedules).to_have_count(1)
    expect(schedules.first).to_contain_text("night-lights")
    expect(schedules.first).to_contain_text("mon, tue, wed, thu, fri 03:00: on")
    screenshots.take(page.locator("header.top"), "header")
    screenshots.take(outputs, "section")  # docs/web-outputs.png is this one
    page.set_viewport_size(PHONE)
    expect(outputs.locator("table.history-table")).to_be_visible()
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"the page is {overflow} px wider than the phone"
    screenshots.take(outputs, "section-phone")
    page.set_viewport_size(DESKTOP)

    outputs.get_by_role("button", name="Disable remote control").click()
    expect(state).to_contain_text("Disabled")
    expect(scheduling).to_be_hidden()
    expect(schedules.first).to_contain_text("not acting: remote control disabled")

    # A command the cloud sends meanwhile is refused, and the history shows it live.
    # First let the status change of the Disable reach the page (the event stream
    # looks every 0.5 s): a refresh it brings must not be taken for the refusal's.
    page.wait_for_timeout(2000)
    site.cloud.queue_command(site.serial, {"type": "output", "output": "io-1/Q2", "action": "on"})
    wait_for(
        lambda: "remote_control_disabled" in site.web.cli("outputs", "history").stdout,
        what="the refusal in the command history",
    )
    refused = outputs.locator("table.history-table tbody tr").first
    expect(refused).to_contain_text("io-1/Q2")
    expect(refused).to_contain_text("remote_control_disabled")
    assert simulator.outputs("io-1")["Q2"] is False, "nothing written while disabled"
