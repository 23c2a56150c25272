"""The reference cloud's operator page, in Chromium, against ``panelfast refcloud serve``
fed by a gateway's side of the protocol (plain httpx, tests/refcloud_support.py).

One cloud process serves the module; the data every test reads is sent once, and a
test that changes something does it on a gateway of its own.
"""

from __future__ import annotations

import math
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from browser_support import (
    PHONE,
    Screenshots,
    browser,
    page,
    phone_page,
    playwright_driver,
    screenshots,
    wait_for,
)
from panelfast.refcloud import RefCloudProcess
from refcloud_support import SERIAL, TOPOLOGY, SyncGateway

__all__ = ["browser", "page", "phone_page", "playwright_driver", "screenshots"]

QUIET_SERIAL = "PS-0042-7B20"  # enrolled, never connected
#: Seconds of 1 s samples sent for mb-1/VoltageAN and mb-1/ActivePowerTotal.
SECONDS = 600
NIL_AT = 100  # VoltageAN could not be read at this sample
ALARM = {
    "id": "v-high",
    "device": "mb-1",
    "measurement": "VoltageAN",
    "condition": "over",
    "threshold": 232.5,
    "hysteresis": 0.5,
    "delay_s": 5,
    "severity": "high",
}
REJECTION = [
    {"path": "measurements[0].device", "message": "mb-9/Power is not in the published topology"},
    {"path": "publisher.period_s", "message": "must be an integer >= 1"},
]


def voltage(i: int) -> float | None:
    return None if i == NIL_AT else round(230.0 + 3.0 * math.sin(i / 15.0), 2)


@dataclass
class Fed:
    """The running cloud and what was sent to it."""

    cloud: RefCloudProcess
    page_url: str
    token: str
    t0: int  # unix ms of the first sample

    def voltage_sent(self, start: int, end: int) -> list[tuple[int, float]]:
        """``(t, value)`` of the VoltageAN samples sent in ``[start, end]`` (nil ones left out)."""
        sent = []
        for i in range(SECONDS):
            t, value = self.t0 + i * 1000, voltage(i)
            if start <= t <= end and value is not None:
                sent.append((t, value))
        return sent

    def gateway(self, serial: str) -> SyncGateway:
        key = self.cloud.operator.enrol(serial)
        return SyncGateway(
            self.cloud.operator.bootstrap_url, self.cloud.operator.ca_path, serial, key
        )


def _feed(fed: Fed) -> None:
    operator = fed.cloud.operator
    operator.enrol(QUIET_SERIAL)
    with fed.gateway(SERIAL) as gw:
        gw.bootstrap()
        gw.put_topology(TOPOLOGY)
        operator.generate_config(SERIAL, period_s=1, alarms=[ALARM])
        config = gw.config()
        gw.report(config["version"], "applied")
        index = {m["measurement"]: k for k, m in enumerate(config["measurements"])}
        for seq, first in enumerate(range(0, SECONDS, 200), start=1):
            group = {
                "t0": fed.t0 + first * 1000,
                "dt": 1000,
                "m": [index["VoltageAN"], index["ActivePowerTotal"]],
                "v": [
                    [voltage(i) for i in range(first, first + 200)],
                    [1000 + i for i in range(first, first + 200)],
                ],
            }
            response = gw.post_batch(seq, config["version"], [group])
            assert response.json() == {"ack": seq}, response.text
        # A batch numbered beyond the expected one: the cloud answers 409 (a diagnostic).
        assert gw.post_batch(9, config["version"], []).status_code == 409
        events = [
            {
                "id": str(uuid.uuid4()),
                "alarm": "v-high",
                "state": state,
                "ts": fed.t0 + at,
                "value": v,
            }
            for state, at, v in (("active", 20_000, 232.9), ("inactive", 60_000, 231.8))
        ]
        assert gw.call("POST", "/alarms", json={"events": events}).json() == {"ack": 2}
        logs = operator.queue_command(SERIAL, {"type": "upload_logs"})
        switch = operator.queue_command(
            SERIAL, {"type": "output", "output": "io-1/Q1", "action": "on"}
        )
        assert len(gw.call("GET", "/commands").json()["commands"]) == 2
        done = gw.call("POST", f"/commands/{logs['id']}/result", json={"status": "done"})
        assert done.status_code == 204
        refused = {"status": "rejected", "reason": "remote_control_disabled"}
        assert gw.call("POST", f"/commands/{switch['id']}/result", json=refused).status_code == 204
        invalid = {
            "version": "2",
            "measurements": [{"device": "mb-9", "measurement": "Power", "period_s": 60}],
            "alarms": [],
            "publisher": {"period_s": 0},
        }
        operator.set_config(SERIAL, invalid, raw=True)
        rejected = gw.config(held=config["version"])
        assert rejected["version"] == "2"
        gw.report("2", "rejected", REJECTION)


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fed]:
    state = tmp_path_factory.mktemp("refweb") / "cloud"
    with RefCloudProcess(state) as cloud:
        # Whole minutes, 20 minutes ago: aligned instants, as a gateway samples them.
        t0 = (int(time.time()) // 60 - 20) * 60_000
        fed = Fed(cloud, cloud.operator.page_url, (state / "operator_token").read_text(), t0)
        _feed(fed)
        yield fed


@pytest.fixture(scope="module")
def trusted_certificates(fed: Fed) -> list[Path]:
    return [fed.cloud.state_dir / "tls" / "server.pem"]


def _log_in(page: Page, fed: Fed, path: str = "") -> None:
    page.goto(fed.page_url + path)
    page.get_by_label("Operator token").fill(fed.token)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_label("Operator token")).to_have_count(0)


def _series_url(fed: Fed, measurement: str = "VoltageAN") -> str:
    return f"{fed.page_url}gateways/{SERIAL}/series/mb-1/{measurement}"


def _plot(page: Page, which: str = "wide") -> dict[str, Any]:
    """The drawn plot: its range and axes, its markers and its line, as the browser has them."""
    info: dict[str, Any] = page.locator(f"svg.plot--{which}").evaluate(
        """svg => ({
            from: Number(svg.dataset.from), to: Number(svg.dataset.to),
            x0: Number(svg.dataset.x0), x1: Number(svg.dataset.x1),
            y0: Number(svg.dataset.y0), y1: Number(svg.dataset.y1),
            vmin: Number(svg.dataset.vmin), vmax: Number(svg.dataset.vmax),
            viewWidth: svg.viewBox.baseVal.width,
            points: [...svg.querySelectorAll("circle.point")].map(c => [
                Number(c.dataset.t), Number(c.dataset.v),
                Number(c.getAttribute("cx")), Number(c.getAttribute("cy"))]),
            line: svg.querySelector("path.series")?.getAttribute("d") ?? "",
        })"""
    )
    return info


def _instant_at(plot: dict[str, Any], x: float) -> float:
    return plot["from"] + (x - plot["x0"]) * (plot["to"] - plot["from"]) / (plot["x1"] - plot["x0"])


def _value_at(plot: dict[str, Any], y: float) -> float:
    return plot["vmax"] - (y - plot["y0"]) * (plot["vmax"] - plot["vmin"]) / (
        plot["y1"] - plot["y0"]
    )


def _tolerances(plot: dict[str, Any]) -> tuple[float, float]:
    """What rounding coordinates to 0.01 of a unit may cost, in ms and in value."""
    ms = 0.011 * (plot["to"] - plot["from"]) / (plot["x1"] - plot["x0"])
    value = 0.011 * (plot["vmax"] - plot["vmin"]) / (plot["y1"] - plot["y0"])
    return ms, value


# -- log in ----------------------------------------------------------------------------


def test_the_page_needs_the_operator_token(page: Page, fed: Fed, screenshots: Screenshots) -> None:
    page.goto(f"{fed.page_url}gateways/{SERIAL}")
    expect(page).to_have_title(re.compile("Log in"))
    page.get_by_label("Operator token").fill("not-the-token")
    page.get_by_role("button", name="Log in").click()
    alert = page.get_by_role("alert")
    expect(alert).to_have_text("That is not the operator token of this cloud.")
    expect(page.get_by_label("Operator token")).to_have_attribute("aria-invalid", "true")
    screenshots.take(page, "wrong-token")
    page.get_by_label("Operator token").fill(fed.token)
    page.get_by_label("Operator token").press("Enter")
    # Back where it was going: the gateway's page.
    expect(page.get_by_role("heading", level=1)).to_have_text(SERIAL)
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_label("Operator token")).to_be_visible()
    page.goto(fed.page_url)
    expect(page.get_by_label("Operator token")).to_be_visible()


# -- the gateways and a gateway's page ----------------------------------------------------


def test_gateways_list(page: Page, fed: Fed, screenshots: Screenshots) -> None:
    _log_in(page, fed)
    expect(page.get_by_role("heading", level=1)).to_have_text("Gateways")
    # From the keyboard: the first stop skips to the content.
    page.keyboard.press("Tab")
    expect(page.locator(":focus")).to_have_text("Skip to content")
    expect(page.get_by_role("table")).to_have_accessible_name(re.compile("gateways enrolled"))
    fed_row = page.locator(f'tr[data-serial="{SERIAL}"]')
    expect(fed_row.locator(".data-seq")).to_have_text("3")
    expect(fed_row.locator(".config")).to_contain_text("version 2:")
    expect(fed_row.locator(".config")).to_contain_text("rejected (2 errors)")
    expect(fed_row.locator(".config")).to_contain_text("version 1 in force")
    expect(fed_row.locator(".diagnostics")).to_contain_text("409 conflict on data")
    expect(fed_row.locator(".connection .badge")).to_have_text(
        re.compile("^(Connected|Not connected)$")
    )
    quiet = page.locator(f'tr[data-serial="{QUIET_SERIAL}"]')
    expect(quiet.locator(".connection .badge")).to_have_text("Never connected")
    expect(quiet.locator(".data-seq")).to_have_text("0")
    expect(quiet.locator(".config")).to_have_text("none issued")
    screenshots.take(page, "gateways")
    fed_row.get_by_role("link", name=SERIAL).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(SERIAL)


def test_gateway_topology_configuration_and_report(
    page: Page, fed: Fed, screenshots: Screenshots
) -> None:
    _log_in(page, fed, f"gateways/{SERIAL}")
    devices = page.locator("#topology-devices > li")
    expect(devices).to_have_count(2)
    expect(devices.nth(0)).to_contain_text("mb-1 — Main incomer")
    expect(devices.nth(0).get_by_role("cell", name="VoltageAN")).to_be_visible()
    expect(devices.nth(1)).to_contain_text("io-1/Q1 (Lighting, contactor)")
    # The configuration in force is version 1's content; the latest issued was rejected.
    expect(page.locator(".config-state")).to_have_text(re.compile(r"version 2:\s*rejected"))
    rejection = page.locator("#rejection")
    for error in REJECTION:
        expect(rejection).to_contain_text(f"{error['path']}: {error['message']}")
    expect(page.locator(".config-in-force")).to_have_text("version 1")
    in_force = page.locator("#config-in-force-measurements tbody tr")
    expect(in_force).to_have_count(3)
    expect(in_force.nth(1)).to_have_text(re.compile(r"mb-1\s*VoltageAN\s*1 s"))
    expect(page.locator("#config-in-force-alarms tbody tr")).to_have_text(
        re.compile(r"v-high\s*mb-1/VoltageAN\s*over\s*232.5\s*0.5\s*5 s\s*high")
    )
    expect(page.locator("#config-latest-measurements tbody tr")).to_have_text(
        re.compile(r"mb-9\s*Power\s*60 s")
    )
    reports = page.locator("#config-reports tbody tr")
    expect(reports).to_have_count(2)
    expect(reports.nth(0)).to_contain_text("rejected")
    expect(reports.nth(1)).to_contain_text("applied")
    expect(page.locator("#data .data-seq")).to_have_text("3")
    expect(page.locator("#series tbody tr")).to_have_count(2)
    events = page.locator("#alarm-events tbody tr")
    expect(events).to_have_count(2)
    expect(events.nth(0)).to_contain_text("inactive")
    expect(events.nth(1)).to_contain_text("232.9")
    commands = page.locator("#command-list tbody tr")
    expect(commands.nth(0)).to_contain_text('output: "io-1/Q1", action: "on"')
    expect(commands.nth(0)).to_contain_text("rejected remote_control_disabled")
    expect(commands.nth(1)).to_contain_text("done")
    expect(page.locator("#diagnostics")).to_contain_text("is beyond the expected 4")
    screenshots.take(page, "gateway")


def test_connection_state_follows_the_gateway(page: Page, fed: Fed) -> None:
    serial = "PS-0042-7C31"
    with fed.gateway(serial) as gw:
        _log_in(page, fed, f"gateways/{serial}")
        status = page.locator(".connection-status")
        expect(status).to_have_text("Never connected")
        gw.bootstrap()
        polled: list[int] = []
        poll = threading.Thread(
            target=lambda: polled.append(
                gw.call("GET", "/commands", params={"wait": 30}).status_code
            )
        )
        poll.start()
        try:
            wait_for(
                lambda: (
                    page.reload() is not None
                    and page.locator("#connection .polls").inner_text() == "1"
                ),
                what="the page to show the long poll held",
            )
            expect(status).to_have_text("Connected")
        finally:
            fed.cloud.operator.queue_command(serial, {"type": "upload_logs"})  # ends the poll
            poll.join(40)
        assert polled == [200]
        assert gw.call("POST", "/disconnect").status_code == 204
        page.reload()
        expect(status).to_have_text("Disconnected")


# -- plots ---------------------------------------------------------------------------------


def test_plot_points_match_what_was_sent(page: Page, fed: Fed, screenshots: Screenshots) -> None:
    _log_in(page, fed, f"gateways/{SERIAL}")
    page.get_by_role("link", name="mb-1/VoltageAN").click()
    expect(page.locator("#summary .count")).to_have_text(f"{SECONDS} (1 could not be read)")
    plot_image = page.get_by_role("img", name="mb-1/VoltageAN (V)", exact=True)
    expect(plot_image).to_be_visible()
    expect(plot_image).to_have_accessible_description(
        re.compile(r"^600 samples from .* lowest 227 V, highest 233 V; 1 could not be read$")
    )
    whole = _plot(page)
    assert (whole["from"], whole["to"]) == (fed.t0, fed.t0 + (SECONDS - 1) * 1000)
    # Every sample is a vertex of the line, which breaks where one could not be read.
    runs = [run.strip() for run in whole["line"].split("M") if run.strip()]
    assert len(runs) == 2
    vertices = [
        tuple(float(c) for c in vertex.split(","))
        for run in runs
        for vertex in run.replace("L", " ").split()
        if vertex != "h0"
    ]
    sent = fed.voltage_sent(whole["from"], whole["to"])
    assert len(vertices) == len(sent) == SECONDS - 1
    ms, volts = _tolerances(whole)
    for (x, y), (t, value) in zip(vertices, sent, strict=True):
        assert abs(_instant_at(whole, x) - t) <= ms
        assert abs(_value_at(whole, y) - value) <= volts
    screenshots.take(page, "all-samples")

    # A minute: each sample marked, with its instant and value.
    start, end = fed.t0 + 120_000, fed.t0 + 179_000
    page.goto(f"{_series_url(fed)}?from={start}&to={end}")
    minute = _plot(page)
    sent = fed.voltage_sent(start, end)
    assert [(t, v) for t, v, _, _ in minute["points"]] == sent
    ms, volts = _tolerances(minute)
    for t, value, cx, cy in minute["points"]:
        assert abs(_instant_at(minute, cx) - t) <= ms
        assert abs(_value_at(minute, cy) - value) <= volts
    first = page.locator("svg.plot--wide circle.point").first
    expect(first.locator("title")).to_have_text(
        re.compile(rf"UTC: {sent[0][1]:g} V$"), use_inner_text=False
    )
    page.get_by_text("samples of this range as a table").click()
    expect(page.locator("#samples tbody tr")).to_have_count(len(sent))
    screenshots.take(page, "one-minute")


def test_zoom_to_a_time_range(page: Page, fed: Fed, screenshots: Screenshots) -> None:
    _log_in(page, fed, f"gateways/{SERIAL}/series/mb-1/VoltageAN")
    before = _plot(page)
    svg = page.locator("svg.plot--wide")
    box = svg.bounding_box()
    assert box is not None
    scale = box["width"] / before["viewWidth"]

    def screen_x(fraction: float) -> float:
        return box["x"] + (before["x0"] + fraction * (before["x1"] - before["x0"])) * scale

    # Drag across 40 % .. 50 % of the plot: a minute of the ten.
    y = box["y"] + box["height"] / 2
    page.mouse.move(screen_x(0.4), y)
    page.mouse.down()
    page.mouse.move(screen_x(0.45), y, steps=4)
    page.mouse.move(screen_x(0.5), y, steps=4)
    page.mouse.up()
    page.wait_for_url(re.compile(r"from=\d+&to=\d+"))
    after = _plot(page)
    span = before["to"] - before["from"]
    pixel_ms = span / (box["width"] * (before["x1"] - before["x0"]) / before["viewWidth"])
    # Within two pixels of where the drag began and ended (and rounded to the second).
    assert abs(after["from"] - (before["from"] + 0.4 * span)) <= 2 * pixel_ms + 500
    assert abs(after["to"] - (before["from"] + 0.5 * span)) <= 2 * pixel_ms + 500
    assert after["from"] % 1000 == after["to"] % 1000 == 0
    sent = fed.voltage_sent(after["from"], after["to"])
    assert [(t, v) for t, v, _, _ in after["points"]] == sent
    assert 55 <= len(sent) <= 62
    expect(page.locator("#summary .count")).to_have_text(str(len(sent)))
    screenshots.take(page, "dragged")

    page.get_by_role("link", name="Zoom out ×2").click()
    page.wait_for_load_state()
    wider = _plot(page)
    assert wider["to"] - wider["from"] == pytest.approx(2 * (after["to"] - after["from"]), abs=2)

    # The range form, by keyboard: from 00:01:00 to 00:02:00 past the first sample.
    start = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(fed.t0 / 1000 + 60))
    end = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(fed.t0 / 1000 + 120))
    page.get_by_label("From (UTC)").fill(start)
    page.get_by_label("To (UTC)").fill(end)
    page.get_by_label("To (UTC)").press("Enter")
    page.wait_for_url(re.compile("from=.*T"))
    chosen = _plot(page)
    chosen_range = (fed.t0 + 60_000, fed.t0 + 120_000)
    assert (chosen["from"], chosen["to"]) == chosen_range
    # 61 instants, one of which could not be read.
    assert [(t, v) for t, v, _, _ in chosen["points"]] == fed.voltage_sent(*chosen_range)
    assert len(chosen["points"]) == 60
    expect(page.locator("figcaption .range-start")).to_contain_text(start.replace("T", " "))


# -- a phone's width -------------------------------------------------------------------------


def _fits_the_width(page: Page) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"))


def test_phone_width(phone_page: Page, fed: Fed, screenshots: Screenshots) -> None:
    page = phone_page
    _log_in(page, fed)
    assert _fits_the_width(page)
    row = page.locator(f'tr[data-serial="{SERIAL}"]')
    box = row.bounding_box()
    assert box is not None
    assert box["width"] <= PHONE["width"]
    # As a card, each cell says what it is.
    assert (
        page.locator(f'tr[data-serial="{SERIAL}"] td.data-seq').evaluate(
            "td => getComputedStyle(td, '::before').content"
        )
        == '"Data seq"'
    )
    screenshots.take(page, "gateways")
    row.get_by_role("link", name=SERIAL).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(SERIAL)
    assert _fits_the_width(page)
    screenshots.take(page, "gateway")
    page.goto(_series_url(fed))
    expect(page.locator("svg.plot--narrow")).to_be_visible()
    expect(page.locator("svg.plot--wide")).to_be_hidden()
    assert _fits_the_width(page)
    narrow = page.locator("svg.plot--narrow").bounding_box()
    assert narrow is not None
    assert narrow["width"] <= PHONE["width"]
    screenshots.take(page, "series")
    assert len(screenshots.taken) == 3
    assert all(path.stat().st_size > 10_000 for path in screenshots.taken)
