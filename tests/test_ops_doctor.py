"""``panelfast doctor`` from the command line, against a site that works and sites that do not.

The site is real: the reference cloud over HTTPS, the device simulator over
Modbus TCP, an SNTP server, tinyproxy. Each broken site must show the
failing check with ✗ and the fix that names what to change; exit status 0
only when every check passed.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from cloud_support import sntp_server, tinyproxy
from panelfast.embedded import EmbeddedSystem, embedded_system
from panelfast.simulator import Faults
from reliability_support import commission


@dataclass(frozen=True)
class Line:
    mark: str
    what: str
    found: str
    fix: str


@dataclass(frozen=True)
class Report:
    code: int
    lines: list[Line]
    stdout: str

    def one(self, what: str) -> Line:
        found = [line for line in self.lines if line.what.startswith(what)]
        assert len(found) == 1, f"{what!r}: {found}\n{self.stdout}"
        return found[0]


async def doctor(config: Path) -> Report:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "panelfast", "doctor", "--config", str(config), "--timeout", "3",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    text = out.decode()
    assert "Traceback" not in err.decode(), err.decode()
    lines: list[Line] = []
    for raw in text.splitlines():
        if raw.startswith("    fix: "):
            last = lines.pop()
            lines.append(Line(last.mark, last.what, last.found, raw.removeprefix("    fix: ")))
        elif raw[:1] in "✓✗–":
            what, _, found = raw[2:].partition(": ")
            lines.append(Line(raw[0], what, found, ""))
    return Report(process.returncode, lines, text)


def set_line(config: Path, section: str, key: str, value: str | int) -> None:
    """Set ``key = value`` in ``[section]`` (replacing it if present)."""
    text = config.read_text(encoding="utf-8")
    head, sep, rest = text.partition(f"[{section}]\n")
    assert sep, section
    body, nxt, tail = rest.partition("\n[")
    body = "\n".join(line for line in body.split("\n") if not line.startswith(f"{key} ="))
    shown = value if isinstance(value, int) else f'"{value}"'
    body = f"{key} = {shown}\n" + body.lstrip("\n")
    config.write_text(head + sep + body + nxt + tail, encoding="utf-8")


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[tuple[EmbeddedSystem, str]]:
    """A commissioned embedded system, its time from a local SNTP server."""
    async with sntp_server(offset_s=0.0) as (ntp, _):
        with embedded_system(tmp_path / "site") as system:
            await commission(system)
            set_line(system.config_path, "time", "mode", "ntp")
            set_line(system.config_path, "time", "ntp_server", ntp)
            yield system, ntp


ORDER = [
    "DNS",
    "proxy",
    "TCP",
    "TLS",
    "clock",
    "claim key",
    "storage",
    "device mb-1",
    "device mb-2",
]


async def test_a_site_that_works_passes_every_check(site: tuple[EmbeddedSystem, str]) -> None:
    system, ntp = site
    report = await doctor(system.config_path)
    assert report.code == 0, report.stdout
    assert not [line for line in report.lines if line.mark == "✗"]
    assert report.one("TCP").mark == "✓"
    tls = report.one("TLS")
    assert tls.mark == "✓"
    assert "verified against [cloud] ca_bundle" in tls.found
    assert "valid until" in tls.found
    clock = report.one("clock")
    assert clock.mark == "✓"
    assert ntp in clock.what
    assert "offset" in clock.found
    assert report.one("claim key").mark == "✓"
    assert report.one("storage").mark == "✓"
    for device, answer in (("mb-1", "PM5560"), ("mb-2", "iEM3255"), ("io-1", "IO-C")):
        line = report.one(f"device {device}")
        assert line.mark == "✓"
        assert repr(answer) in line.found
    # In the order a site is fixed: network first, devices last.
    whats = [line.what for line in report.lines]
    positions = [next(i for i, what in enumerate(whats) if what.startswith(w)) for w in ORDER]
    assert positions == sorted(positions)
    assert report.stdout.rstrip().endswith("all checks passed")


async def test_a_site_that_works_through_a_proxy(
    site: tuple[EmbeddedSystem, str], tmp_path: Path
) -> None:
    system, _ = site
    with tinyproxy(tmp_path / "proxy", auth=("gw", "pw-for-doctor")) as (port, proxy_log):
        set_line(system.config_path, "cloud", "proxy", f"http://gw:pw-for-doctor@127.0.0.1:{port}")
        report = await doctor(system.config_path)
        log = proxy_log.read_text()
    assert report.code == 0, report.stdout
    assert report.one("DNS 127.0.0.1 (HTTP proxy)").mark == "✓"
    assert report.one("TCP").what == f"TCP 127.0.0.1:{port} (HTTP proxy)"
    assert report.one("proxy CONNECT").found.startswith("HTTP/1.")
    assert report.one("TLS").mark == "✓"
    assert f"CONNECT 127.0.0.1:{system.cloud.ports['hub']}" in log
    assert "pw-for-doctor" not in report.stdout


async def test_a_stopped_cloud_a_dead_device_and_site_mistakes_each_fail_with_the_fix(
    site: tuple[EmbeddedSystem, str],
) -> None:
    system, _ = site
    port = system.cloud.ports["bootstrap"]
    system.cloud.stop()
    system.simulator.set_faults("mb-2", Faults(offline=True))  # powered off: port closed
    system.simulator.set_faults("io-1", Faults(dead=True))  # accepts, never answers
    key = system.settings.identity.claim_key_file
    key.chmod(0o644)
    set_line(system.config_path, "storage", "quota_mb", 1_000_000_000)  # a petabyte

    report = await doctor(system.config_path)
    assert report.code == 1
    tcp = report.one("TCP")
    assert tcp.mark == "✗"
    assert "refused" in tcp.found.lower()
    assert f"nothing accepts HTTPS at 127.0.0.1:{port}" in tcp.fix
    assert "cloud service is up" in tcp.fix
    assert report.one("TLS").mark == "–"
    claim = report.one("claim key")
    assert claim.mark == "✗"
    assert claim.fix == f"chmod 600 {key}"
    storage = report.one("storage")
    assert storage.mark == "✗"
    assert "lower [storage] quota_mb" in storage.fix
    assert report.one("device mb-1").mark == "✓"
    off = report.one("device mb-2")
    assert off.mark == "✗"
    assert "devices[1].connection" in off.fix
    assert "powered" in off.fix
    dead = report.one("device io-1")
    assert dead.mark == "✗"
    assert "no answer" in dead.found
    assert "devices[2].connection.unit_id" in dead.fix
    assert report.stdout.rstrip().endswith("5 check(s) failed")


async def test_a_wrong_ca_fails_tls_naming_the_ca_bundle(
    site: tuple[EmbeddedSystem, str], tmp_path: Path
) -> None:
    system, _ = site
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    set_line(system.config_path, "cloud", "ca_bundle", str(other))
    report = await doctor(system.config_path)
    assert report.code == 1
    assert report.one("TCP").mark == "✓"
    tls = report.one("TLS")
    assert tls.mark == "✗"
    assert "certificate verify failed" in tls.found or "unable to get local issuer" in tls.found
    assert f"not signed by a CA in [cloud] ca_bundle ({other})" in tls.fix
    assert [line.what for line in report.lines if line.mark == "✗"] == [tls.what]


async def test_a_proxy_refusing_fails_its_answer_with_the_fix(
    site: tuple[EmbeddedSystem, str], tmp_path: Path
) -> None:
    system, _ = site
    hub = f"127.0.0.1:{system.cloud.ports['hub']}"
    with tinyproxy(tmp_path / "p1", connect_ports=(443,)) as (port, _):
        set_line(system.config_path, "cloud", "proxy", f"http://127.0.0.1:{port}")
        refusing = await doctor(system.config_path)
    with tinyproxy(tmp_path / "p2", auth=("gw", "right")) as (port, _):
        set_line(system.config_path, "cloud", "proxy", f"http://gw:wrong@127.0.0.1:{port}")
        wrong_password = await doctor(system.config_path)
    assert refusing.code == 1
    assert refusing.one("TCP").mark == "✓"  # the proxy itself is reached
    answer = refusing.one("proxy CONNECT")
    assert answer.mark == "✗"
    assert " 403 " in f"{answer.found} "
    assert f"the proxy must allow CONNECT to {hub}" in answer.fix
    assert refusing.one("TLS").mark == "–"
    assert wrong_password.code == 1
    answer = wrong_password.one("proxy CONNECT")
    assert answer.mark == "✗"
    assert re.search(r" 40[17] ", f"{answer.found} ")
    assert "user and password in [cloud] proxy" in answer.fix
    assert "wrong" not in wrong_password.stdout


async def test_a_cloud_host_that_does_not_resolve_fails_dns_with_the_fix(
    site: tuple[EmbeddedSystem, str], tmp_path: Path
) -> None:
    system, _ = site
    # .invalid never resolves (RFC 2606); no other cloud host is known yet.
    set_line(system.config_path, "cloud", "bootstrap_url", "https://cloud.invalid/bootstrap")
    set_line(system.config_path, "storage", "dir", str(tmp_path / "fresh"))
    report = await doctor(system.config_path)
    assert report.code == 1
    dns = report.one("DNS cloud.invalid")
    assert dns.mark == "✗"
    assert "/etc/resolv.conf" in dns.fix
    assert "cloud.invalid" in dns.fix
    assert report.one("cloud hosts (hub, upload)").mark == "–"
    assert report.one("TCP").found == "not checked: not resolved"
