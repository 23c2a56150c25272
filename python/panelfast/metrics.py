"""Prometheus metrics of a running gateway, read from it at each scrape.

Nothing is counted twice: :class:`GatewayCollector` keeps no state of its
own and reads, when Prometheus asks, what the gateway already holds — its
typed API (``status()``, ``diagnostics()``) and the plain counters of its
parts (:mod:`panelfast._probe`). A gateway that nobody scrapes pays nothing.

Names follow Prometheus conventions: ``panelfast_`` prefix, base units in the
name (``_seconds``, ``_bytes``), ``_total`` counters, and bounded labels —
``device`` (the commissioned device id) and small fixed sets (``state``,
``kind``, ``diagnostic``); never a measurement. The process's CPU and memory
come from prometheus-client's own process collector.

This module imports prometheus-client: the daemon imports it only when
metrics are served (``[metrics] listen``, or the control API's ``/metrics``).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    ProcessCollector,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)

from panelfast import __version__, _probe
from panelfast.cloud import ConnectionStatus, Diagnostic
from panelfast.config import split_host_port

if TYPE_CHECKING:
    from panelfast.acquisition import DeviceDiagnostics
    from panelfast.cloud import CloudStatus
    from panelfast.gateway import Gateway, GatewayStatus
    from panelfast.publisher import Backlog

__all__ = [
    "CONTENT_TYPE_LATEST",
    "GatewayCollector",
    "MetricsServer",
    "exposition",
    "metrics_registry",
    "serve_metrics",
    "watch_gateway",
]

_DEVICE_STATES = ("unknown", "ok", "degraded", "offline")


def _label(value: str) -> str:
    """``Connection in progress`` → ``connection_in_progress``: a label value to match on."""
    return value.lower().replace(" ", "_")


class GatewayCollector:
    """Every gateway metric, read from ``gateway`` at scrape time."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway

    def describe(self) -> Iterable[Metric]:
        # Registration must not read a gateway that may not have started yet.
        return ()

    def collect(self) -> Iterator[Metric]:
        gateway = self._gateway
        status = gateway.status()
        counters = _probe.counters(gateway)
        yield from _devices(gateway.diagnostics())
        yield from _sampling(counters)
        yield from _outbox(gateway, status.backlog)
        yield from _cloud(gateway, status.cloud, counters)
        yield from _remote_config(status, counters)
        yield from _alarms(status.active_alarms, counters)
        info = InfoMetricFamily("panelfast_build", "The gateway's software version.")
        info.add_metric([], {"version": __version__})
        yield info


def _devices(devices: list[DeviceDiagnostics]) -> Iterator[Metric]:
    labels = ["device"]
    state = GaugeMetricFamily(
        "panelfast_device_state",
        "The device's polling state: 1 for the state it is in, 0 for the others.",
        labels=["device", "state"],
    )
    requests = CounterMetricFamily(
        "panelfast_modbus_requests_total",
        "Modbus requests sent (reads, retries, writes).",
        labels=labels,
    )
    errors = CounterMetricFamily(
        "panelfast_modbus_errors_total",
        "Modbus requests that got no data, by kind: timeout (no answer in time; a "
        "frame with a bad CRC is dropped and ends so), exception (the device answered "
        "an exception code), transport (connection refused, reset or closed), protocol "
        "(an answer that did not match its request).",
        labels=["device", "kind"],
    )
    exceptions = CounterMetricFamily(
        "panelfast_modbus_exceptions_total",
        "Exception answers by code (2: IllegalDataAddress, 6: ServerDeviceBusy...).",
        labels=["device", "code"],
    )
    rtt = HistogramMetricFamily(
        "panelfast_modbus_round_trip_seconds",
        "Round-trip time of the answered Modbus requests.",
        labels=labels,
    )
    rtt_max = GaugeMetricFamily(
        "panelfast_modbus_round_trip_max_seconds", "Longest round trip so far.", labels=labels
    )
    cycles = CounterMetricFamily(
        "panelfast_modbus_poll_cycles_total", "Poll cycles run.", labels=labels
    )
    overruns = CounterMetricFamily(
        "panelfast_modbus_overruns_total",
        "Poll ticks skipped because the cycle before ran past them.",
        labels=labels,
    )
    cycle = GaugeMetricFamily(
        "panelfast_modbus_cycle_duration_seconds",
        "How long the last poll cycle's reads took, back to back.",
        labels=labels,
    )
    reads = GaugeMetricFamily(
        "panelfast_modbus_reads_per_cycle", "Reads in the device's poll plan.", labels=labels
    )
    answered = GaugeMetricFamily(
        "panelfast_device_last_answer_timestamp_seconds",
        "When the device last answered (unix time).",
        labels=labels,
    )
    lacking = GaugeMetricFamily(
        "panelfast_modbus_registers_lacking",
        "Registers (or bits) the device said it does not have (exception 0x02, or 0x01 "
        "for a function), no longer asked for until it reconnects.",
        labels=labels,
    )
    for d in devices:
        device = [d.device_id]
        for name in _DEVICE_STATES:
            state.add_metric([d.device_id, name], float(d.state == name))
        requests.add_metric(device, d.requests)
        for kind, count in (
            ("timeout", d.timeouts),
            ("exception", d.exceptions),
            ("transport", d.transport_errors),
            ("protocol", d.protocol_errors),
        ):
            errors.add_metric([d.device_id, kind], count)
        for code, count in d.exception_codes:
            exceptions.add_metric([d.device_id, str(code)], count)
        buckets = [(_le(bound), count) for bound, count in d.rtt_buckets]
        rtt.add_metric(device, buckets, d.rtt_sum_s)
        rtt_max.add_metric(device, d.rtt_max_ms / 1000)
        cycles.add_metric(device, d.cycles)
        overruns.add_metric(device, d.overruns)
        cycle.add_metric(device, d.last_cycle_duration_ms / 1000)
        reads.add_metric(device, d.reads_per_cycle)
        if d.last_answer_ms is not None:
            answered.add_metric(device, d.last_answer_ms / 1000)
        lacking.add_metric(device, sum(r.count for r in d.lacking))
    yield from (state, requests, errors, exceptions, rtt, rtt_max, cycles, overruns, cycle, reads)
    yield from (answered, lacking)


def _le(bound: float) -> str:
    """A bucket's ``le`` label as Prometheus writes it (``0.001``, ``+Inf``)."""
    return "+Inf" if math.isinf(bound) else repr(bound)


def _sampling(counters: _probe.GatewayCounters) -> Iterator[Metric]:
    yield CounterMetricFamily(
        "panelfast_sampling_samples_total",
        "Samples taken at sampling instants, nil ones included.",
        value=counters.samples_taken,
    )
    yield CounterMetricFamily(
        "panelfast_sampling_nil_samples_total",
        "Samples taken as nil: no fresh reading at the instant (device offline, "
        "value not available), or an instant that passed unseen.",
        value=counters.nil_samples,
    )
    yield CounterMetricFamily(
        "panelfast_sampling_instants_missed_total",
        "Sampling instants that passed unseen (process busy or suspended, or the clock "
        "stepped forward): taken as nil, or skipped beyond what the rings hold.",
        value=counters.instants_missed,
    )


def _outbox(gateway: Gateway, backlog: Backlog) -> Iterator[Metric]:
    stats = gateway.outbox.stats()
    now_ms = gateway.clock.now_ms()
    yield GaugeMetricFamily(
        "panelfast_outbox_samples", "Samples waiting for the cloud.", value=stats.pending_samples
    )
    yield GaugeMetricFamily(
        "panelfast_outbox_batches",
        "Data batches waiting for the cloud (estimated from the batches sent lately).",
        value=backlog.batches_left,
    )
    yield GaugeMetricFamily(
        "panelfast_outbox_alarm_events",
        "Alarm events waiting for the cloud.",
        value=stats.pending_events,
    )
    age = max(0.0, (now_ms - stats.oldest_ms) / 1000) if stats.oldest_ms is not None else 0.0
    yield GaugeMetricFamily(
        "panelfast_outbox_oldest_sample_age_seconds",
        "Age of the oldest sample waiting (0 when none waits).",
        value=age,
    )
    yield GaugeMetricFamily(
        "panelfast_outbox_used_bytes",
        "Bytes the outbox holds, as its quota counts them.",
        value=stats.bytes_used,
    )
    yield GaugeMetricFamily(
        "panelfast_outbox_disk_bytes",
        "Size of the outbox's files on disk (database and write-ahead log).",
        value=stats.file_bytes,
    )
    yield GaugeMetricFamily(
        "panelfast_outbox_quota_bytes", "The outbox's disk quota.", value=stats.quota_bytes
    )
    yield CounterMetricFamily(
        "panelfast_outbox_dropped_samples_total",
        "Samples dropped, oldest first, because the outbox reached its quota "
        "(counted across restarts).",
        value=stats.dropped_samples,
    )
    yield GaugeMetricFamily(
        "panelfast_outbox_refused_batches",
        "Data batches the cloud refused (400), set aside in the outbox.",
        value=stats.refused_batches,
    )
    yield GaugeMetricFamily(
        "panelfast_outbox_delivery_rate_samples_per_second",
        "Samples acknowledged per second over the last batches.",
        value=backlog.rate_samples_per_s,
    )


def _cloud(
    gateway: Gateway, cloud: CloudStatus, counters: _probe.GatewayCounters
) -> Iterator[Metric]:
    connection = GaugeMetricFamily(
        "panelfast_cloud_connection",
        "Connection status (§4): 1 for the status the gateway is in, 0 for the others.",
        labels=["status"],
    )
    for value in ConnectionStatus:
        connection.add_metric([_label(value.value)], float(cloud.connection is value))
    yield connection
    diagnostic = GaugeMetricFamily(
        "panelfast_cloud_diagnostic",
        "Connection diagnostic of the last attempt: 1 for the current one (none: all 0).",
        labels=["diagnostic"],
    )
    for d in Diagnostic:
        diagnostic.add_metric([_label(d.value)], float(cloud.diagnostic is d))
    yield diagnostic
    p = counters.publisher
    batches = CounterMetricFamily(
        "panelfast_cloud_batches_total",
        "Data batches by outcome: sent (each post), acknowledged, duplicate (acknowledged as "
        "already held), refused (400), renumbered (409), split (413).",
        labels=["outcome"],
    )
    for outcome, count in (
        ("sent", p.batches_sent),
        ("acknowledged", p.batches_acknowledged),
        ("duplicate", p.batches_duplicate),
        ("refused", p.batches_refused),
        ("renumbered", p.batches_renumbered),
        ("split", p.batches_split),
    ):
        batches.add_metric([outcome], count)
    yield batches
    yield CounterMetricFamily(
        "panelfast_cloud_publication_failures_total",
        "Data publications that ended on an error (everything is kept and sent later).",
        value=p.failures,
    )
    yield CounterMetricFamily(
        "panelfast_cloud_request_retries_total",
        "Cloud requests sent again after a failure (5xx, timeout, refused or reset, 429).",
        value=counters.cloud_retries,
    )
    yield CounterMetricFamily(
        "panelfast_cloud_alarm_events_acknowledged_total",
        "Alarm events the cloud acknowledged.",
        value=p.alarm_events_acknowledged,
    )
    if p.last_ack_ms is not None:
        yield GaugeMetricFamily(
            "panelfast_cloud_last_data_ack_timestamp_seconds",
            "When the cloud last acknowledged a data batch (unix time, the gateway's clock).",
            value=p.last_ack_ms / 1000,
        )
    yield GaugeMetricFamily(
        "panelfast_clock_offset_seconds",
        "Offset of the gateway's clock to the system clock, as time synchronisation measured it.",
        value=cloud.time.offset_s,
    )


def _remote_config(status: GatewayStatus, counters: _probe.GatewayCounters) -> Iterator[Metric]:
    remote = status.remote_config
    info = InfoMetricFamily(
        "panelfast_remote_config",
        "The remote configuration in force (applied) and the last one received.",
    )
    info.add_metric(
        [],
        {
            "applied_version": remote.applied_version or "",
            "received_version": remote.received_version or "",
        },
    )
    yield info
    if remote.valid is not None:
        yield GaugeMetricFamily(
            "panelfast_remote_config_valid",
            "1 if the last remote configuration received was valid and applied, 0 if it "
            "was rejected (data publication then stops, §6).",
            value=float(remote.valid),
        )
    yield GaugeMetricFamily(
        "panelfast_remote_config_measurements", "Measurements sampled.", value=remote.measurements
    )
    if remote.publisher_period_s is not None:
        yield GaugeMetricFamily(
            "panelfast_remote_config_publisher_period_seconds",
            "The publication period in force.",
            value=remote.publisher_period_s,
        )
    if counters.last_apply_s is not None:
        yield GaugeMetricFamily(
            "panelfast_remote_config_last_apply_duration_seconds",
            "How long applying the last remote configuration took (prepare and persist).",
            value=counters.last_apply_s,
        )
    yield GaugeMetricFamily(
        "panelfast_remote_config_apply_progress_ratio",
        "While a remote configuration is being applied: how far (0..1); 0 otherwise.",
        value=status.applying.fraction if status.applying is not None else 0.0,
    )
    yield GaugeMetricFamily(
        "panelfast_topology_must_be_published",
        "1 when the devices changed since the topology was last published.",
        value=float(status.topology_must_be_published),
    )


def _alarms(active: tuple[str, ...], counters: _probe.GatewayCounters) -> Iterator[Metric]:
    yield GaugeMetricFamily("panelfast_alarms_active", "Alarms active now.", value=len(active))
    yield CounterMetricFamily(
        "panelfast_alarm_events_total",
        "Alarm transitions (active or inactive) since the start.",
        value=counters.alarm_events,
    )


def metrics_registry(gateway: Gateway | None = None) -> CollectorRegistry:
    """A registry of the process's CPU and memory, and of ``gateway``'s metrics if
    given (or later: :func:`watch_gateway`, once a listener is already up)."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    if gateway is not None:
        watch_gateway(registry, gateway)
    return registry


def watch_gateway(registry: CollectorRegistry, gateway: Gateway) -> None:
    registry.register(GatewayCollector(gateway))


def exposition(registry: CollectorRegistry) -> bytes:
    """The text exposition (``CONTENT_TYPE_LATEST``): what ``/metrics`` answers."""
    return generate_latest(registry)


class MetricsServer:
    """``/metrics`` on a port of its own, served from a thread (reads are thread-safe:
    the outbox and stores lock, the native parts hold the GIL)."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    def close(self) -> None:
        """Stop serving (idempotent)."""
        if not self._thread.is_alive():
            return
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve_metrics(registry: CollectorRegistry, listen: str) -> MetricsServer:
    """Serve ``registry`` at ``http://listen/metrics``; OSError if it cannot listen."""
    host, port = split_host_port(listen)
    server, thread = start_http_server(port, addr=host, registry=registry)
    return MetricsServer(server, thread)
