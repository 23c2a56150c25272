"""Prometheus metrics scraped from a running ``panelfast run`` daemon (a separate process).

The daemon runs against the embedded system (reference cloud over HTTPS and
the device simulator, in this process); the metrics are read as Prometheus
reads them, over HTTP, and parsed with prometheus-client's parser. The
values must follow what happens: a device going offline and back, the cloud
going away (a backlog grows) and coming back (it drains).
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cloud_support import free_port
from ops_support import Scrape, append_sections
from panelfast.embedded import EmbeddedSystem, embedded_system
from panelfast.refcloud import RefCloud
from panelfast.simulator import Faults
from reliability_support import GatewayProcess, commission, config_document


def scrape_until(
    port: int, condition: Callable[[Scrape], bool], timeout_s: float, what: str
) -> Scrape:
    """Scrape until ``condition`` holds on a scrape; fail naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout_s
    last: Scrape | None = None
    while True:
        try:
            last = Scrape.of(port)
        except OSError:
            last = None  # not listening yet
        if last is not None and condition(last):
            return last
        if time.monotonic() > deadline:
            shown = last.text if last is not None else "(no answer)"
            raise AssertionError(f"not within {timeout_s} s: {what}\nlast scrape:\n{shown}")
        time.sleep(0.25)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[EmbeddedSystem, GatewayProcess, int]]:
    with embedded_system(tmp_path) as system:
        asyncio.run(commission(system))
        system.cloud.set_config(system.serial, config_document(publisher_period_s=1))
        port = free_port()
        append_sections(system.config_path, {"metrics": {"listen": f"127.0.0.1:{port}"}})
        process = GatewayProcess(system.config_path, tmp_path / "gateway.log")
        try:
            process.start()
            yield system, process, port
            process.stop()
        finally:
            process.close()


def test_metrics_follow_a_device_offline_and_back_and_a_cloud_outage(
    daemon: tuple[EmbeddedSystem, GatewayProcess, int], tmp_path: Path
) -> None:
    system, _, port = daemon
    first = scrape_until(
        port,
        lambda s: (
            s.get("panelfast_cloud_batches_total", outcome="acknowledged") not in (None, 0)
            and s.get("panelfast_device_state", device="mb-2", state="ok") == 1
        ),
        60,
        "data acknowledged and mb-2 polled",
    )
    # Types and conventions, as Prometheus sees them.
    assert first.types["panelfast_modbus_requests"] == "counter"
    assert first.types["panelfast_modbus_round_trip_seconds"] == "histogram"
    assert first.types["panelfast_outbox_samples"] == "gauge"
    assert first.value("panelfast_cloud_connection", status="connected") == 1
    assert first.value("panelfast_cloud_diagnostic", diagnostic="device_activated") == 1
    assert first.value("panelfast_remote_config_valid") == 1
    assert first.value("panelfast_remote_config_measurements") == 4
    assert first.value("panelfast_remote_config_last_apply_duration_seconds") > 0
    assert first.value("panelfast_modbus_round_trip_seconds_count", device="mb-1") > 0
    assert first.value("panelfast_modbus_round_trip_seconds_sum", device="mb-1") > 0
    # The histogram's buckets: cumulative, the last one every answered request.
    answered = first.value("panelfast_modbus_round_trip_seconds_count", device="mb-1")
    buckets = sorted(
        (float(dict(labels)["le"]), value)
        for (name, labels), value in first.samples.items()
        if name == "panelfast_modbus_round_trip_seconds_bucket" and ("device", "mb-1") in labels
    )
    assert buckets[0][0] == 0.001
    assert buckets[-1] == (float("inf"), answered)
    counts = [count for _, count in buckets]
    assert counts == sorted(counts), "cumulative"
    # On loopback the simulator answers within 250 ms, nearly always within 25 ms.
    assert first.value("panelfast_modbus_round_trip_seconds_bucket", device="mb-1", le="0.25") > 0
    assert first.value("panelfast_modbus_registers_lacking", device="mb-1") == 0
    assert first.value("process_resident_memory_bytes") > 10e6
    assert first.get("process_cpu_seconds_total") is not None
    info = [k for k in first.samples if k[0] == "panelfast_remote_config_info"]
    assert len(info) == 1
    assert ("applied_version", "1") in info[0][1]
    # No label is a measurement: the series are per device at most.
    for _, labels in first.samples:
        assert {k for k, _ in labels} <= {
            "device", "state", "kind", "code", "le", "status", "diagnostic", "outcome",
            "applied_version", "received_version", "version",
        }  # fmt: skip

    # -- a device goes offline, then comes back
    errors_before = first.value("panelfast_modbus_errors_total", device="mb-2", kind="transport")
    nil_before = first.value("panelfast_sampling_nil_samples_total")
    system.simulator.set_faults("mb-2", Faults(offline=True))
    offline = scrape_until(
        port,
        lambda s: (
            s.value("panelfast_device_state", device="mb-2", state="offline") == 1
            and s.value("panelfast_sampling_nil_samples_total") >= nil_before + 2
        ),
        60,
        "mb-2 offline, its samples nil",
    )
    # Powered off: its connections are refused or dropped (transport), not timeouts.
    assert offline.value("panelfast_modbus_errors_total", device="mb-2", kind="transport") > (
        errors_before
    )
    assert offline.value("panelfast_device_state", device="mb-1", state="ok") == 1
    system.simulator.set_faults("mb-2", Faults())
    back = scrape_until(
        port,
        lambda s: s.value("panelfast_device_state", device="mb-2", state="ok") == 1,
        60,
        "mb-2 back",
    )
    # Once back, sampling goes on without nil: the nil count stops growing.
    settled = scrape_until(
        port,
        lambda s: (
            s.value("panelfast_sampling_samples_total")
            >= back.value("panelfast_sampling_samples_total") + 8
        ),
        30,
        "sampling goes on",
    )
    later = scrape_until(
        port,
        lambda s: (
            s.value("panelfast_sampling_samples_total")
            >= settled.value("panelfast_sampling_samples_total") + 16
        ),
        30,
        "sampling goes on",
    )
    assert later.value("panelfast_sampling_nil_samples_total") == settled.value(
        "panelfast_sampling_nil_samples_total"
    )

    # -- a busy device: its exception answers are counted by code
    system.simulator.set_faults("mb-1", Faults(busy_fraction=0.5))
    busy = scrape_until(
        port,
        lambda s: (s.get("panelfast_modbus_exceptions_total", device="mb-1", code="6") or 0) >= 3,
        60,
        "mb-1's busy answers (exception 0x06) counted",
    )
    assert busy.value("panelfast_modbus_errors_total", device="mb-1", kind="exception") >= 3
    system.simulator.set_faults("mb-1", Faults())

    # -- the cloud goes away: a backlog grows, requests are retried, nothing is acknowledged
    cloud = system.cloud
    hub_port = cloud.ports["hub"]
    cloud.stop()
    down = scrape_until(
        port,
        lambda s: (
            s.value("panelfast_outbox_samples") >= 24
            and s.value("panelfast_cloud_request_retries_total") > 0
            and s.value("panelfast_outbox_oldest_sample_age_seconds") >= 4
        ),
        60,
        "a backlog while the cloud is down",
    )
    acknowledged = down.value("panelfast_cloud_batches_total", outcome="acknowledged")
    last_ack = down.value("panelfast_cloud_last_data_ack_timestamp_seconds")
    growing = scrape_until(
        port,
        lambda s: s.value("panelfast_outbox_samples") >= down.value("panelfast_outbox_samples") + 8,
        30,
        "the backlog grows",
    )
    assert growing.value("panelfast_cloud_batches_total", outcome="acknowledged") == acknowledged
    assert growing.value("panelfast_cloud_last_data_ack_timestamp_seconds") == last_ack
    assert growing.value("panelfast_outbox_oldest_sample_age_seconds") > down.value(
        "panelfast_outbox_oldest_sample_age_seconds"
    )

    # -- it comes back on the same port and state: the backlog drains
    with RefCloud(tmp_path / "cloud", port=hub_port):
        drained = scrape_until(
            port,
            lambda s: (
                s.value("panelfast_outbox_samples") < 12
                and s.value("panelfast_cloud_batches_total", outcome="acknowledged") > acknowledged
            ),
            120,
            "the backlog delivered after the outage",
        )
        assert drained.value("panelfast_cloud_last_data_ack_timestamp_seconds") > last_ack
        assert drained.value("panelfast_cloud_connection", status="connected") == 1


def test_a_metrics_address_in_use_is_refused_naming_the_key(tmp_path: Path) -> None:
    with embedded_system(tmp_path) as system, socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        append_sections(system.config_path, {"metrics": {"listen": f"127.0.0.1:{port}"}})
        result = subprocess.run(
            [sys.executable, "-m", "panelfast", "run", "--config", str(system.config_path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1, result.stderr
    assert "metrics.listen" in result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
    # Refused before the gateway opened anything.
    assert not (tmp_path / "gateway" / "outbox.sqlite").exists()


def test_a_malformed_metrics_address_is_a_configuration_error(tmp_path: Path) -> None:
    with embedded_system(tmp_path) as system:
        append_sections(system.config_path, {"metrics": {"listen": "localhost"}})
        result = subprocess.run(
            [sys.executable, "-m", "panelfast", "run", "--config", str(system.config_path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 2, "a configuration the command cannot use"
    assert "metrics.listen" in result.stderr
    assert "host:port" in result.stderr
    assert "Traceback" not in result.stderr
