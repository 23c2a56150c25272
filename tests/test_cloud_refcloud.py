"""The connection diagnostics (§4) against the reference cloud and its generated CA."""

from __future__ import annotations

from pathlib import Path

import trustme

from panelfast.cloud import CloudSession, ConnectionStatus, Diagnostic, RetryPolicy
from panelfast.embedded import embedded_system

FAST = RetryPolicy(initial_s=0.05, max_s=0.2, max_attempts=2)


async def test_diagnostics_follow_the_reference_cloud(tmp_path: Path) -> None:
    with embedded_system(tmp_path) as system:
        settings = system.settings
        session = CloudSession(settings, retry=FAST)
        try:
            status = await session.connect()
            assert status.connection is ConnectionStatus.CONNECTED
            assert status.diagnostic is Diagnostic.ACTIVATED

            # Token expiry mid-run: transparent bootstrap again.
            system.cloud.expire_tokens(system.serial)
            assert await session.attempt()
            assert session.status().diagnostic is Diagnostic.ACTIVATED

            # De-enrolled: the hub refuses the still valid token.
            system.cloud.de_enrol(system.serial)
            await session.attempt()
            status = session.status()
            assert status.diagnostic is Diagnostic.NOT_REGISTERED
            assert system.serial in status.hint
        finally:
            await session.aclose()

        # A CA that did not sign the cloud's certificate: Bad credentials.
        other_ca = tmp_path / "other-ca.pem"
        trustme.CA().cert_pem.write_to_path(str(other_ca))
        cloud = settings.cloud.model_copy(update={"ca_bundle": other_ca})
        storage = settings.storage.model_copy(update={"dir": tmp_path / "other"})
        wrong = CloudSession(
            settings.model_copy(update={"cloud": cloud, "storage": storage}), retry=FAST
        )
        try:
            status = await wrong.connect()
            assert status.diagnostic is Diagnostic.BAD_CREDENTIALS
            assert "ca_bundle" in status.hint or "certificate" in status.hint
        finally:
            await wrong.aclose()
