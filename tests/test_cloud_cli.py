"""``panelfast connect|status|disconnect|identification|firewall``, run as real processes."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme

from cli_support import panelfast
from cloud_support import CLAIM_KEY, SERIAL, MakeCloud, ca_fixture, make_cloud_fixture, write_config
from cloud_testserver import TestCloud

__all__ = ["ca_fixture", "make_cloud_fixture"]  # fixtures used by name


@pytest.fixture
def cloud(make_cloud: MakeCloud) -> TestCloud:
    return make_cloud(ntp_server="time.cloud.example:1123")


def test_connect_status_identification_firewall_disconnect(
    cloud: TestCloud, ca: trustme.CA, tmp_path: Path
) -> None:
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    config = str(
        write_config(
            tmp_path,
            bootstrap_url=cloud.url("bootstrap"),
            ca_bundle=ca_file,
            proxy="http://user:pw@127.0.0.1:3128",
            mode="cloud",
            filename="via-proxy.toml",
        )
    )
    # Through a proxy that is not there: the attempt fails and says why.
    failed = panelfast("connect", "--config", config, "--attempts", "1")
    assert failed.returncode == 1
    assert "Connection status:      Connection in progress" in failed.stdout
    assert "Network unreachable" in failed.stdout
    assert "the proxy 127.0.0.1:3128" in failed.stdout

    direct = str(
        write_config(
            tmp_path, bootstrap_url=cloud.url("bootstrap"), ca_bundle=ca_file, mode="manual"
        )
    )
    done = panelfast("connect", "--config", direct)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Connected" in done.stdout
    assert "Device activated" in done.stdout

    status = panelfast("status", "--config", direct)
    assert status.returncode == 3, "no gateway runs: it says so, and what it saved last"
    assert "Gateway:                not running" in status.stdout
    assert "Connection status:      Connected" in status.stdout
    assert "Connection diagnostics: Device activated" in status.stdout
    assert "Time synchronisation:   manual" in status.stdout

    ident = panelfast("identification", "--config", direct)
    assert ident.returncode == 0
    assert f"Serial number:    {SERIAL}" in ident.stdout
    assert f"Claim key:        {CLAIM_KEY[:4]}…" in ident.stdout
    assert CLAIM_KEY not in ident.stdout
    assert f"Cloud device id:  {cloud.devices[SERIAL]}" in ident.stdout

    fw = panelfast("firewall", "--config", config).stdout.splitlines()
    assert fw == [
        "tcp 127.0.0.1:3128  HTTP proxy",
        f"tcp 127.0.0.1:{cloud.port('bootstrap')}  bootstrap (HTTPS) (through the proxy)",
        f"tcp 127.0.0.1:{cloud.port('hub')}  hub (HTTPS) (through the proxy)",
        f"tcp 127.0.0.1:{cloud.port('upload')}  upload (HTTPS) (through the proxy)",
        "udp time.cloud.example:1123  NTP (time mode cloud) (not proxied)",
    ]

    off = panelfast("disconnect", "--config", direct)
    assert off.returncode == 0
    assert "Not connected" in off.stdout
    assert cloud.disconnects == [cloud.devices[SERIAL]]
    assert "Connection status:      Not connected" in panelfast("status", "--config", direct).stdout


def test_firewall_before_the_first_bootstrap(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        bootstrap_url="https://boot.example.net",
        ca_bundle=None,
        mode="ntp",
        ntp_server="ntp.example.net",
    )
    lines = panelfast("firewall", "--config", str(config)).stdout.splitlines()
    assert lines == [
        "tcp boot.example.net:443  bootstrap (HTTPS)",
        "tcp (known after the first bootstrap):443  hub (HTTPS)",
        "tcp (known after the first bootstrap):443  upload (HTTPS)",
        "udp ntp.example.net:123  NTP (time mode ntp) (not proxied)",
    ]


def test_bad_config_is_a_clear_error(tmp_path: Path) -> None:
    config = write_config(tmp_path, bootstrap_url="http://insecure.example", ca_bundle=None)
    result = panelfast("status", "--config", str(config))
    assert result.returncode == 2
    assert "cloud.bootstrap_url" in result.stderr
    assert "HTTPS" in result.stderr
    assert "Traceback" not in result.stderr


def test_unsafe_claim_key_file_is_refused(tmp_path: Path) -> None:
    config = write_config(tmp_path, bootstrap_url="https://boot.example.net", ca_bundle=None)
    (tmp_path / "claim.key").chmod(0o644)
    result = panelfast("identification", "--config", str(config))
    assert result.returncode == 2
    assert "chmod 600" in result.stderr
    assert CLAIM_KEY not in result.stderr
