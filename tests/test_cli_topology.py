"""``panelfast topology show|publish`` against the reference cloud, as a user runs them."""

from __future__ import annotations

from pathlib import Path

from cli_support import panelfast
from panelfast.embedded import embedded_system


def test_show_publish_and_show_again(tmp_path: Path) -> None:
    with embedded_system(tmp_path) as system:
        config = str(system.config_path)
        shown = panelfast("topology", "show", "--config", config)
        assert shown.returncode == 0, shown.stderr
        assert "3 devices" in shown.stdout
        assert "never published" in shown.stdout
        refused = panelfast("topology", "publish", "--config", config)
        assert refused.returncode != 0, "not connected yet"
        assert "Connect" in refused.stderr
        assert panelfast("connect", "--config", config).returncode == 0
        published = panelfast("topology", "publish", "--config", config)
        assert published.returncode == 0, published.stderr
        version = published.stdout.split("version ")[1].strip()
        at_cloud = system.cloud.topology(system.serial)
        assert at_cloud is not None
        assert at_cloud["version"] == version
        assert [d["id"] for d in at_cloud["document"]["devices"]] == ["io-1", "mb-1", "mb-2"]
        again = panelfast("topology", "show", "--config", config)
        assert f"published as version {version}" in again.stdout
        document = panelfast("topology", "show", "--config", config, "--json")
        assert '"schema": "panelfast.topology/1"' in document.stdout
        assert "127.0.0.1" not in document.stdout, "no network address in the topology"
        assert '"VoltageAN"' in document.stdout
        assert '"MeterName"' not in document.stdout, "text fields identify, they are not sampled"
