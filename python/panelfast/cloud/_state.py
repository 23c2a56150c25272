"""The cloud connection's durable state: Connect/Disconnect, tokens, last outcome.

One JSON file in the storage folder, ``cloud-state.json``, mode 0600 because it
holds the hub token. It is replaced atomically (written beside, fsynced, then
renamed), so a power cut leaves either the old or the new state. What it keeps:

- whether the user asked to be connected, so a gateway that was connected
  reconnects after a reboot;
- what the last bootstrap returned (device id, hub and upload URLs, token and
  its expiry, NTP server, the cloud's last acknowledged data seq);
- the last connection outcome and time synchronisation, so ``panelfast
  status`` shows them without talking to the cloud.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError, field_serializer

from panelfast._durable import write_atomically
from panelfast.cloud._hub import HubAccess

if TYPE_CHECKING:
    from panelfast.cloud._bootstrap import BootstrapResult

__all__ = ["CloudState", "StateStore"]

log = logging.getLogger(__name__)

STATE_FILE = "cloud-state.json"


class CloudState(BaseModel):
    """Everything about the cloud connection that must survive a restart."""

    model_config = ConfigDict(extra="ignore")

    connect: bool = False
    device_id: str | None = None
    hub_url: str | None = None
    upload_url: str | None = None
    token: SecretStr | None = None
    token_expires_at: int | None = None
    ntp_server: str | None = None
    data_seq: int = 0
    # The last outcome, for display only.
    status: str = "Not connected"
    diagnostic: str | None = None
    hint: str = ""
    attempt_at: float | None = None
    time: dict[str, Any] | None = None

    @field_serializer("token")
    def _reveal_token(self, token: SecretStr | None) -> str | None:
        # Only ever serialised into the 0600 state file.
        return token.get_secret_value() if token is not None else None

    def hub_access(self) -> HubAccess | None:
        """Where the hub is and the token to use there; none before a bootstrap."""
        if not (self.device_id and self.hub_url and self.upload_url and self.token):
            return None
        token = self.token.get_secret_value()
        return HubAccess(self.device_id, self.hub_url, self.upload_url, token)

    def token_fresh(self, now: float, margin_s: float) -> bool:
        """Whether the token is still good ``margin_s`` after ``now``."""
        return (self.token_expires_at or 0) > now + margin_s

    def take_bootstrap(self, result: BootstrapResult) -> None:
        """Keep what a bootstrap gave (the caller saves the state)."""
        self.device_id, self.hub_url, self.upload_url = (
            result.device_id,
            result.hub_url,
            result.upload_url,
        )
        self.token, self.token_expires_at = result.token, result.token_expires_at
        self.ntp_server, self.data_seq = result.ntp_server, result.data_seq

    def forget_bootstrap(self) -> None:
        """Drop what bootstrap gave (token refused, serial de-enrolled)."""
        self.token = None
        self.token_expires_at = None


class StateStore:
    """Loads and atomically saves :class:`CloudState` in the storage folder."""

    def __init__(self, storage_dir: Path) -> None:
        self.path = storage_dir / STATE_FILE

    def load(self) -> CloudState:
        """The saved state; a missing file is a gateway never connected.

        An unreadable file is set aside as ``cloud-state.json.corrupt`` (and
        logged), and the gateway starts from scratch: it can bootstrap again.
        """
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return CloudState()
        try:
            return CloudState.model_validate(json.loads(text))
        except (ValueError, ValidationError) as exc:
            aside = self.path.with_name(STATE_FILE + ".corrupt")
            os.replace(self.path, aside)
            # Only the kind of error: its text could quote the token.
            log.warning(
                "cloud state %s is unreadable (%s); moved to %s",
                self.path,
                type(exc).__name__,
                aside,
            )
            return CloudState()

    def save(self, state: CloudState) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps(state.model_dump(mode="json"), indent=1).encode("utf-8")
        write_atomically(self.path, data)
