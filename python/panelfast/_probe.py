"""What the daemon's observers read from a running :class:`~panelfast.gateway.Gateway`.

The metrics, the systemd watchdog and its ``STATUS=`` line read, besides the
gateway's typed API (``status()``, ``diagnostics()``, ``backlog()``), counters
kept by the parts that own them: the sampling loop, the alarm watch, the
publisher, the cloud transport, the remote configuration. This module is the
one place that knows where each lives, so a restructured gateway changes
only here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from panelfast.publisher import PublisherCounters

if TYPE_CHECKING:
    from panelfast.gateway import Gateway

__all__ = ["GatewayCounters", "counters", "loops_alive"]


@dataclass(frozen=True, slots=True)
class GatewayCounters:
    """Counts since the gateway started, read in one go."""

    #: Samples taken at sampling instants (nil ones included).
    samples_taken: int
    #: Samples taken as nil: no fresh reading (device offline, value not available),
    #: or an instant that passed unseen.
    nil_samples: int
    #: Sampling instants that passed unseen (busy, or a clock step) and were taken as nil.
    instants_missed: int
    #: The last sampling instant the loop reached (unix ms): its heartbeat.
    last_instant_ms: int | None
    alarm_events: int
    publisher: PublisherCounters
    #: Cloud requests sent again after a failure.
    cloud_retries: int
    #: How long applying the last remote configuration took.
    last_apply_s: float | None


def counters(gateway: Gateway) -> GatewayCounters:
    sampling = gateway.sampling
    return GatewayCounters(
        samples_taken=sampling.samples_taken,
        nil_samples=sampling.nil_samples,
        instants_missed=sampling.instants.missed_total + sampling.instants.skipped_total,
        last_instant_ms=sampling.instants.last,
        alarm_events=gateway.alarms.events_total,
        # A copy: the publisher goes on counting while the caller reads.
        publisher=dataclasses.replace(gateway.publisher.counters),
        cloud_retries=gateway.session.request_retries,
        last_apply_s=gateway.remote.applied.last_apply_s,
    )


def loops_alive(gateway: Gateway) -> bool:
    """Every loop of the gateway runs, and so does the acquisition engine."""
    return gateway.alive() and gateway.acquisition.running
