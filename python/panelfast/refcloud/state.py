"""What one reference cloud holds while it runs: settings, storage, faults, wake-ups."""

from __future__ import annotations

import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from panelfast.refcloud.faults import Faults
from panelfast.refcloud.presence import Presence
from panelfast.refcloud.signals import Signals
from panelfast.refcloud.storage import Storage
from panelfast.refcloud.tls import write_secret

__all__ = ["CloudState", "Settings"]

#: Spec requests remembered by :attr:`CloudState.requests`.
REQUEST_LOG = 10_000


@dataclass
class Settings:
    """How the cloud behaves; the URLs default to where it listens."""

    token_lifetime_s: int = 24 * 3600
    max_skew_s: int = 300
    ntp_server: str = "127.0.0.1:123"
    #: What bootstrap returns as ``hub_url`` / ``upload_url`` (e.g. another host name
    #: or port of this same cloud); ``None``: the address the hub/upload service listens on.
    hub_url: str | None = None
    upload_url: str | None = None
    upload_url_lifetime_s: int = 3600
    #: Longest a long poll may be asked to wait (spec: 30 s).
    max_wait_s: int = 30
    extra_hosts: tuple[str, ...] = field(default_factory=tuple)
    #: The cloud's clock is this machine's system clock plus this many seconds.
    #: A real cloud runs on true time; a test whose gateway has a wrong system
    #: clock (and NTP that knows better) runs its cloud on "true time" with
    #: this. Bootstrap's skew check and every expiry follow it.
    clock_offset_s: float = 0.0


class CloudState:
    """The live state shared by the HTTP app and the operator functions."""

    def __init__(self, state_dir: Path, settings: Settings | None = None) -> None:
        self.state_dir = state_dir
        self.settings = settings or Settings()
        state_dir.mkdir(parents=True, exist_ok=True)
        self.storage = Storage(state_dir / "cloud.db")
        self.signals = Signals()
        self.faults = Faults()
        #: Every spec request received, newest last: (unix s, service, route, path).
        #: Bounded; tests read it to check what a gateway sent, and when.
        self.requests: deque[tuple[float, str, str, str]] = deque(maxlen=REQUEST_LOG)
        self.presence = Presence(self.storage, self.settings.max_wait_s)
        self.upload_dir = state_dir / "uploads"
        self.upload_dir.mkdir(exist_ok=True)
        self.operator_token = self._operator_token(state_dir / "operator_token")
        self.upload_secret = self.storage.secret("upload_url")
        #: port -> service, when the services listen on separate ports (else empty).
        self.port_services: dict[int, str] = {}
        # Where each service is reached; set once the sockets are bound.
        self.bootstrap_url = ""
        self.hub_url = ""
        self.upload_url = ""
        self.operator_url = ""

    @staticmethod
    def _operator_token(path: Path) -> str:
        if path.exists():
            return path.read_text().strip()
        token = secrets.token_urlsafe(32)
        write_secret(path, token.encode())
        return token

    def set_urls(self, bootstrap: str, hub: str, upload: str, operator: str) -> None:
        """Record where the services listen; the settings' URLs take precedence for bootstrap."""
        self.bootstrap_url = bootstrap
        self.hub_url = self.settings.hub_url or hub
        self.upload_url = self.settings.upload_url or upload
        self.operator_url = operator

    def now(self) -> float:
        """Unix seconds by the cloud's clock (see ``Settings.clock_offset_s``)."""
        return time.time() + self.settings.clock_offset_s

    def close(self) -> None:
        self.presence.flush()
        self.storage.close()
