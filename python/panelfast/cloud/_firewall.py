"""Every host and port the site's firewall must let the gateway reach.

Sites open their firewall per host (§1): the bootstrap host always; the hub
and upload hosts once bootstrap named them; the NTP server (UDP 123) unless
time is manual. With a proxy, HTTPS goes to the proxy only, and it is the
proxy that must reach the cloud hosts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from panelfast.cloud._state import CloudState
from panelfast.cloud._timesync import parse_ntp_server
from panelfast.cloud._transport import Endpoint
from panelfast.config import Settings

__all__ = ["FirewallRule", "firewall_rules"]


@dataclass(frozen=True)
class FirewallRule:
    purpose: str
    host: str
    port: int
    protocol: Literal["tcp", "udp"]
    note: str = ""

    def text(self) -> str:
        line = f"{self.protocol} {Endpoint(self.host, self.port)}  {self.purpose}"
        return f"{line} ({self.note})" if self.note else line


def firewall_rules(settings: Settings, state: CloudState) -> list[FirewallRule]:
    """The rules, from the configuration and what the last bootstrap returned."""
    via = "through the proxy" if settings.cloud.proxy else ""
    rules: list[FirewallRule] = []
    if settings.cloud.proxy:
        proxy = Endpoint.of(str(settings.cloud.proxy))
        rules.append(FirewallRule("HTTP proxy", proxy.host, proxy.port, "tcp"))
    services = [("bootstrap (HTTPS)", str(settings.cloud.bootstrap_url), "")]
    for purpose, url in (("hub (HTTPS)", state.hub_url), ("upload (HTTPS)", state.upload_url)):
        if url:
            services.append((purpose, url, ""))
        else:
            rules.append(
                FirewallRule(purpose, "(known after the first bootstrap)", 443, "tcp", via)
            )
    for purpose, url, _ in services:
        endpoint = Endpoint.of(url)
        rules.append(FirewallRule(purpose, endpoint.host, endpoint.port, "tcp", via))
    mode = settings.time.mode
    if mode != "manual":
        server = (
            state.ntp_server if mode == "cloud" and state.ntp_server else settings.time.ntp_server
        )
        try:
            host, port = parse_ntp_server(server)
        except ValueError:
            host, port = server, 123
        rules.append(FirewallRule(f"NTP (time mode {mode})", host, port, "udp", "not proxied"))
    # Keep the order the user reads: proxy, bootstrap, hub, upload, NTP.
    order = ("HTTP proxy", "bootstrap", "hub", "upload", "NTP")
    return sorted(
        rules, key=lambda r: next(i for i, o in enumerate(order) if r.purpose.startswith(o))
    )
