"""The gateway's identity (cloud protocol §2) and its "Panel Server Identification".

The claim key is a secret: it is held as a :class:`~pydantic.SecretStr` and
only ever shown masked (its first 4 hex digits), enough to tell two keys apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import SecretStr

from panelfast.config import IdentitySettings

__all__ = ["Identity", "mask_secret"]


def mask_secret(secret: SecretStr, shown: int = 4) -> str:
    """The first ``shown`` characters and an ellipsis: recognisable, not usable."""
    return secret.get_secret_value()[:shown] + "…"


@dataclass(frozen=True)
class Identity:
    """Serial, model, firmware, MAC, claim key and, once bootstrapped, the cloud device id."""

    serial: str
    model: str
    firmware: str
    mac: str
    name: str
    claim_key: SecretStr
    device_id: str | None = None

    @classmethod
    def from_settings(cls, settings: IdentitySettings, device_id: str | None = None) -> Identity:
        """Read the identity; raises ConfigError if the claim key file is unsafe or malformed."""
        return cls(
            serial=settings.serial,
            model=settings.model,
            firmware=settings.firmware,
            mac=settings.mac,
            name=settings.name,
            claim_key=settings.claim_key(),
            device_id=device_id,
        )

    def bootstrap_body(self) -> dict[str, str]:
        """The body of ``POST /v1/bootstrap`` (§3)."""
        return {
            "serial": self.serial,
            "model": self.model,
            "firmware": self.firmware,
            "mac": self.mac,
        }

    def identification(self) -> list[tuple[str, str]]:
        """Panel Server Identification, as label/value rows (the claim key masked)."""
        return [
            ("Name", self.name),
            ("Serial number", self.serial),
            ("Model", self.model),
            ("Firmware version", self.firmware),
            ("MAC address", self.mac),
            ("Claim key", mask_secret(self.claim_key)),
            ("Cloud device id", self.device_id or "(not bootstrapped yet)"),
        ]

    def identification_text(self) -> str:
        """One ``label: value`` line per row: easy to copy into the cloud application."""
        rows = self.identification()
        width = max(len(label) for label, _ in rows)
        return "\n".join(f"{label + ':':<{width + 1}} {value}" for label, value in rows)

    def __repr__(self) -> str:
        return f"Identity(serial={self.serial!r}, device_id={self.device_id!r})"
